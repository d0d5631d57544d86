// The write side the Durable Streams conformance suite needs, which anycable-ts does not serve
// (writes are 405 by design: an application publishes with a broadcaster). A loopback HTTP proxy
// in front of the server's --ds_path: the suite's PUT (create) is answered here and creates
// nothing; its POST (append) becomes one POST /_broadcast of the same JSON items, answered once
// the server's HEAD shows them in the stream's history; everything else (GET, HEAD, OPTIONS and
// the writes the suite checks, DELETE) goes to the server unchanged and its answer comes back as
// it is streamed (SSE, long polls). Node APIs only: it runs inside vitest (Node).
import { createServer, type IncomingMessage, request, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface AdapterOptions {
  /** The server's origin, e.g. http://127.0.0.1:8080 */
  upstream: string;
  /** The server's --ds_path. */
  dsPath: string;
  /** The server's broadcast key (Authorization: Bearer). */
  broadcastKey: string;
}

export interface Adapter {
  url: string;
  /** Appends made through /_broadcast. */
  appends: number;
  close(): Promise<void>;
}

const HOP_BY_HOP = new Set(["connection", "keep-alive", "transfer-encoding", "upgrade", "host"]);
const MAX_BODY = 32 * 1024 * 1024;
const VISIBLE_TIMEOUT_MS = 5_000;

function isJson(contentType: string | undefined): boolean {
  return (contentType ?? "").split(";")[0]!.trim().toLowerCase() === "application/json";
}

function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size <= MAX_BODY) chunks.push(c);
    });
    req.on("end", () => resolve(size > MAX_BODY ? undefined : Buffer.concat(chunks)));
    req.on("error", () => resolve(undefined));
  });
}

/**
 * The items an append carries: a JSON stream's body is one value, or an array whose elements are
 * the items (DS JSON mode flattens one level); any other stream's body is one item, its text as a
 * JSON string (anycable-ts serves JSON only, so such a stream reads as JSON strings).
 */
export function appendItems(body: Buffer, json: boolean): string[] | { error: string } {
  const text = body.toString("utf8");
  if (!json) return text === "" ? { error: "empty body" } : [JSON.stringify(text)];
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { error: "invalid JSON" };
  }
  if (!Array.isArray(value)) return [JSON.stringify(value)];
  if (value.length === 0) return { error: "empty JSON array" };
  return value.map((v) => JSON.stringify(v));
}

export async function startAdapter(opts: AdapterOptions): Promise<Adapter> {
  const upstream = new URL(opts.upstream);
  /** Content type of each stream the suite created (by path). */
  const created = new Map<string, string>();
  let appends = 0;

  const headOffset = async (path: string): Promise<string | undefined> => {
    const res = await fetch(`${opts.upstream}${opts.dsPath}${path}`, { method: "HEAD" });
    return res.headers.get("stream-next-offset") ?? undefined;
  };
  const tailOf = async (path: string): Promise<number> =>
    Number(((await headOffset(path)) ?? "0").split("::")[0]);

  /** Publishes items to the path's stream and waits until the server's history holds them. */
  const append = async (path: string, items: string[]): Promise<string> => {
    const stream = decodeURIComponent(path.slice(1));
    const before = await tailOf(path);
    const res = await fetch(`${opts.upstream}/_broadcast`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${opts.broadcastKey}` },
      body: JSON.stringify(items.map((data) => ({ stream, data }))),
    });
    if (res.status !== 201) throw new Error(`/_broadcast answered ${res.status}`);
    appends++;
    const deadline = Date.now() + VISIBLE_TIMEOUT_MS;
    for (;;) {
      const offset = (await headOffset(path)) ?? "0";
      if (Number(offset.split("::")[0]) >= before + items.length) return offset;
      if (Date.now() > deadline)
        throw new Error(`append to ${stream} not visible after ${VISIBLE_TIMEOUT_MS} ms`);
      await new Promise((r) => setTimeout(r, 5));
    }
  };

  const write = async (req: IncomingMessage, res: ServerResponse, path: string): Promise<void> => {
    const body = await readBody(req);
    if (body === undefined) return void res.writeHead(413).end();
    const known = created.get(path);
    if (req.method === "PUT") {
      const contentType = req.headers["content-type"] ?? "application/octet-stream";
      if (known === undefined) created.set(path, contentType);
      if (body.length > 0) {
        const items = appendItems(body, isJson(contentType));
        // an empty JSON array creates an empty stream
        if (!("error" in items)) await append(path, items);
        else if (!(isJson(contentType) && items.error === "empty JSON array")) {
          return void res.writeHead(400).end();
        }
      }
      const offset = (await headOffset(path)) ?? "0";
      res.writeHead(known === undefined ? 201 : 200, {
        "content-type": contentType,
        "stream-next-offset": offset,
        location: `http://${req.headers.host}${path}`,
      });
      return void res.end();
    }
    // POST: append
    const contentType = known ?? "application/json";
    const items = appendItems(body, isJson(contentType));
    if ("error" in items) return void res.writeHead(400).end();
    const offset = await append(path, items);
    res.writeHead(204, { "stream-next-offset": offset });
    res.end();
  };

  /** Everything else goes to the server as it came; its answer is streamed back. */
  const forward = (req: IncomingMessage, res: ServerResponse, pathAndQuery: string): void => {
    const headers: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(req.headers)) {
      if (v !== undefined && !HOP_BY_HOP.has(k)) headers[k] = v;
    }
    const up = request(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: `${opts.dsPath}${pathAndQuery}`,
        headers,
      },
      (answer) => {
        const out: Record<string, string | string[]> = {};
        for (const [k, v] of Object.entries(answer.headers)) {
          if (v !== undefined && !HOP_BY_HOP.has(k)) out[k] = v;
        }
        res.writeHead(answer.statusCode ?? 502, out);
        res.flushHeaders();
        answer.pipe(res);
      },
    );
    up.on("error", () => {
      if (!res.headersSent) res.writeHead(502);
      res.destroy();
    });
    res.on("close", () => up.destroy());
    req.pipe(up);
  };

  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://adapter");
    const path = url.pathname;
    if (req.method === "PUT" || req.method === "POST") {
      write(req, res, path).catch((err: Error) => {
        if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" });
        res.end(err.message);
      });
      return;
    }
    forward(req, res, `${path}${url.search}`);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    get appends() {
      return appends;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
