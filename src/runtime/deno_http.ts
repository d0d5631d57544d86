// Deno's standalone listener: node:http instead of Deno.serve. Deno.serve has no header, request or
// keep-alive deadline (a slowloris socket stays open for ever) and Deno's WebSocket cannot be cut
// while it has unsent data; node:http gives both the deadlines and the socket. WebSockets are framed
// on the upgraded sockets (socket_ws.ts). HTTP/1.1 only (Deno.serve also spoke HTTP/2).
//
// Written against node: built-ins only, so tsc checks it; deno.ts serves with it.
import { Buffer } from "node:buffer";
import { readFileSync } from "node:fs";
import {
  createServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
  STATUS_CODES,
} from "node:http";
import { createServer as createTlsServer } from "node:https";
import { connect, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import { clearInterval, setInterval } from "node:timers";
import { SocketWebSocket } from "./socket_ws.ts";
import type { ListenerLog, RunningServer, ServeSpec } from "./types.ts";
import { negotiateDeflate } from "./ws_deflate.ts";
import { acceptKey } from "./ws_frames.ts";

/** A complete request head within 5 s of connecting or of the previous response (anycable-go's ReadHeaderTimeout). */
export const HEADERS_TIMEOUT_MS = 5_000;
/** A whole request, body included. */
export const REQUEST_TIMEOUT_MS = 10_000;
/** An idle keep-alive connection is closed after this. */
export const KEEP_ALIVE_TIMEOUT_MS = 10_000;
/** How often node:http looks for requests past their deadlines. */
const CHECK_INTERVAL_MS = 500;
/** Longest request head accepted (node's default is 16 KiB). */
const MAX_HEADER_BYTES = 64 * 1024;
/** How long stop() lets closing WebSockets finish their handshake before cutting them. */
const STOP_GRACE_MS = 1_000;
/** A closing WebSocket is cut this long after its close frame at the latest (HandlerSpec.closeTimeoutMs). */
const DEFAULT_CLOSE_TIMEOUT_MS = 2_000;
/** How often closing WebSockets are looked at (one timer per listener, only while any is closing). */
const CLOSE_SWEEP_MS = 250;
/** How often the listener makes sure it still accepts connections (acceptWatchdog). */
const WATCHDOG_MS = 1_000;
/** Frames are capped like Bun's maxPayloadLength default when no --max_message_size is set. */
const DEFAULT_MAX_MESSAGE = 16 * 1024 * 1024;

const remoteOf = (socket: Socket | Duplex): string => {
  const a = (socket as Socket).remoteAddress ?? "";
  return a.startsWith("::ffff:") ? a.slice(7) : a;
};

/** The request body as a web stream that pauses the socket when unread (backpressure). */
function bodyStream(req: IncomingMessage): ReadableStream<Uint8Array> {
  let done = false;
  return new ReadableStream<Uint8Array>(
    {
      start(controller) {
        req.on("data", (chunk: Buffer) => {
          if (done) return;
          controller.enqueue(new Uint8Array(chunk));
          if ((controller.desiredSize ?? 0) <= 0) req.pause();
        });
        req.on("end", () => {
          if (done) return;
          done = true;
          controller.close();
        });
        const fail = (err?: Error) => {
          if (done) return;
          done = true;
          controller.error(err ?? new Error("the connection was closed"));
        };
        req.on("error", fail);
        // 'close' before 'end': the client went away mid-body, or a deadline cut it
        req.on("close", () => fail());
        req.pause();
      },
      pull() {
        if (!done) req.resume();
      },
      cancel() {
        // not read any further: the response (e.g. 413, Connection: close) ends the connection
        done = true;
        req.pause();
      },
    },
    { highWaterMark: 64 * 1024, size: (c) => c?.byteLength ?? 0 },
  );
}

function hasBody(req: IncomingMessage): boolean {
  if (req.method === "GET" || req.method === "HEAD") return false;
  const len = req.headers["content-length"];
  return req.headers["transfer-encoding"] !== undefined || (len !== undefined && len !== "0");
}

function webRequest(
  req: IncomingMessage,
  scheme: string,
  fallbackHost: string,
  withBody: boolean,
  signal?: AbortSignal,
): Request {
  const headers = new Headers();
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) headers.append(raw[i]!, raw[i + 1]!);
  const host = req.headers.host || fallbackHost;
  const target = req.url ?? "/";
  const url = target.startsWith("/")
    ? `${scheme}://${host}${target}`
    : /^https?:\/\//i.test(target)
      ? target
      : `${scheme}://${host}/`;
  const init: RequestInit & { duplex?: "half" } = { method: req.method ?? "GET", headers, signal };
  if (withBody && hasBody(req)) {
    init.body = bodyStream(req);
    init.duplex = "half";
  }
  return new Request(url, init);
}

function setHeaders(res: ServerResponse, response: Response): void {
  res.statusCode = response.status;
  const cookies = response.headers.getSetCookie();
  response.headers.forEach((value, name) => {
    if (name !== "set-cookie") res.setHeader(name, value);
  });
  if (cookies.length > 0) res.setHeader("set-cookie", cookies);
}

async function writeResponse(
  res: ServerResponse,
  response: Response,
  head: boolean,
  gone?: AbortSignal,
): Promise<void> {
  setHeaders(res, response);
  const body = response.body;
  if (!body || head) {
    body?.cancel().catch(() => {});
    res.end();
    return;
  }
  if (!(response.headers.get("content-type") ?? "").startsWith("text/event-stream")) {
    // one piece with its Content-Length (every route of ours answers small bodies)
    res.end(Buffer.from(await response.arrayBuffer()));
    return;
  }
  const reader = body.getReader();
  // the client may be gone already (it left while the request was being decided)
  if (gone?.aborted || res.destroyed) {
    reader.cancel().catch(() => {});
    return;
  }
  res.on("close", () => {
    if (!res.writableFinished) reader.cancel().catch(() => {});
  });
  // the head goes out now, not with the first event (a raw-mode SSE stream may wait long for one)
  res.flushHeaders();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (gone?.aborted || res.destroyed) {
        reader.cancel().catch(() => {});
        return;
      }
      if (!res.write(value)) {
        // both listeners go once either fires: a long-lived event stream waits here many times
        await new Promise<void>((resolve) => {
          const done = () => {
            res.off("drain", done);
            res.off("close", done);
            resolve();
          };
          res.on("drain", done);
          res.on("close", done);
        });
      }
    }
  } catch {
    res.destroy();
    return;
  }
  res.end();
}

/** An answer on a socket node:http handed over for an upgrade, then the end of the connection. */
async function respondRaw(socket: Duplex, response: Response): Promise<void> {
  const body = Buffer.from(await response.arrayBuffer());
  let head = `HTTP/1.1 ${response.status} ${STATUS_CODES[response.status] ?? ""}\r\n`;
  response.headers.forEach((value, name) => {
    if (name !== "content-length" && name !== "connection" && name !== "transfer-encoding")
      head += `${name}: ${value}\r\n`;
  });
  head += `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n`;
  if (!socket.destroyed) socket.end(Buffer.concat([Buffer.from(head, "latin1"), body]));
}

const text = (status: number, body: string, headers: Record<string, string> = {}) =>
  new Response(body, { status, headers: { "content-type": "text/plain", ...headers } });

/**
 * Deno's node:http stops accepting for good once accept() fails with EMFILE (deno 2.9.6: no
 * 'error' event, the port stays bound, connections pile up in the backlog; Deno.serve instead
 * ends its serve loop with an unhandled rejection that exits the process). Nothing reports it,
 * so the listener checks: while no connection was accepted since the previous check, it connects
 * to itself; a connection the kernel took but the server did not accept by the next check (two
 * in a row, or one once descriptors were seen to run out) means the accept loop is gone, and the
 * server listens again. One line per burst when descriptors run out, one when accepting again.
 */
function acceptWatchdog(server: Server, log: ListenerLog | undefined): () => void {
  let accepted = 0;
  server.on("connection", () => {
    accepted++;
  });
  let seen = 0;
  let probe: { socket: Socket; connected: boolean } | undefined;
  let misses = 0;
  let exhausted = false;
  let burst = false;
  let relistening = false;
  const where = () => {
    const a = server.address();
    return a && typeof a === "object" ? { addr: `${a.address}:${a.port}` } : undefined;
  };
  const startBurst = () => {
    if (burst) return;
    burst = true;
    log?.warn("too many open files: new connections wait or are refused until descriptors free up", where());
  };
  const endBurst = () => {
    if (!burst) return;
    burst = false;
    exhausted = false;
    log?.info("accepting connections again", where());
  };
  const relisten = () => {
    const address = server.address();
    if (!address || typeof address !== "object") return;
    startBurst();
    relistening = true;
    try {
      server.close();
    } catch {
      // not listening any more
    }
    server.listen(address.port, address.address, () => {
      relistening = false;
      misses = 0;
      endBurst();
    });
  };
  // a listen that failed (out of descriptors again) is retried at the next check
  server.on("error", () => {
    relistening = false;
  });
  const check = () => {
    if (relistening) return;
    // something accepted since the previous check (the previous probe included): the loop runs
    const alive = accepted !== seen;
    seen = accepted;
    if (probe) {
      // the kernel took the probe's connection, the server did not
      if (probe.connected && !alive) misses++;
      probe.socket.destroy();
      probe = undefined;
    }
    if (alive) {
      misses = 0;
      exhausted = false;
      endBurst();
      return;
    }
    if (misses >= 2 || (misses >= 1 && exhausted)) {
      relisten();
      return;
    }
    const address = server.address();
    if (!address || typeof address !== "object") return;
    const host =
      address.address === "0.0.0.0" ? "127.0.0.1" : address.address === "::" ? "::1" : address.address;
    const current = { socket: connect({ port: address.port, host }), connected: false };
    probe = current;
    current.socket.on("connect", () => {
      current.connected = true;
    });
    current.socket.on("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "EMFILE" || err.code === "ENFILE") {
        exhausted = true;
        startBurst();
      }
    });
  };
  const timer = setInterval(check, WATCHDOG_MS);
  timer.unref();
  return () => {
    clearInterval(timer);
    probe?.socket.destroy();
  };
}

export async function serveNodeHttp<D>(spec: ServeSpec<D>): Promise<RunningServer> {
  const options = {
    headersTimeout: HEADERS_TIMEOUT_MS,
    requestTimeout: REQUEST_TIMEOUT_MS,
    keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
    connectionsCheckingInterval: CHECK_INTERVAL_MS,
    maxHeaderSize: MAX_HEADER_BYTES,
  };
  const server: Server = spec.tls
    ? createTlsServer({
        ...options,
        cert: readFileSync(spec.tls.certFile),
        key: readFileSync(spec.tls.keyFile),
      })
    : createServer(options);
  server.headersTimeout = HEADERS_TIMEOUT_MS;
  server.requestTimeout = REQUEST_TIMEOUT_MS;
  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
  const scheme = spec.tls ? "https" : "http";
  const maxMessage = spec.maxMessageSize > 0 ? spec.maxMessageSize : DEFAULT_MAX_MESSAGE;
  const sockets = new Set<SocketWebSocket<D>>();
  let onSocketGone: (() => void) | undefined;
  // Closing WebSockets and when their close began: a client that stops reading would otherwise
  // keep its connection, and everything queued for it, until it reads again.
  const closing = new Map<SocketWebSocket<D>, number>();
  const closeTimeout =
    spec.closeTimeoutMs && spec.closeTimeoutMs > 0 ? spec.closeTimeoutMs : DEFAULT_CLOSE_TIMEOUT_MS;
  let sweeper: ReturnType<typeof setInterval> | undefined;
  const sweep = () => {
    const cutBefore = Date.now() - Math.max(closeTimeout - CLOSE_SWEEP_MS, 0);
    for (const [ws, since] of closing) {
      if (since > cutBefore) continue;
      closing.delete(ws);
      ws.destroy();
    }
    if (closing.size === 0) {
      clearInterval(sweeper);
      sweeper = undefined;
    }
  };
  const hooks = {
    closing(ws: SocketWebSocket<D>) {
      closing.set(ws, Date.now());
      sweeper ??= setInterval(sweep, CLOSE_SWEEP_MS);
    },
    gone(ws: SocketWebSocket<D>) {
      sockets.delete(ws);
      closing.delete(ws);
      onSocketGone?.();
    },
  };
  const log = spec.log;
  let fallbackHost = `${spec.hostname}:${spec.port}`;

  /**
   * The handler's answer. A function of its own, so that the web Request (a copy of every
   * header) is not kept by the frame that streams a long-lived response (SSE) afterwards.
   */
  const answer = async (req: IncomingMessage, signal: AbortSignal): Promise<Response> => {
    let request: Request;
    try {
      request = webRequest(req, scheme, fallbackHost, true, signal);
    } catch {
      return text(400, "Bad Request\n");
    }
    try {
      const handled = await spec.handle(request, remoteOf(req.socket));
      // an upgrade asked for without `Connection: Upgrade` (node:http's condition for one)
      return handled instanceof Response ? handled : text(400, "WebSocket upgrade failed\n");
    } catch (err) {
      log?.error("request handler failed", { error: err });
      return text(500, "Internal Server Error\n");
    }
  };

  const handleRequest = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    // request.signal aborts when the client goes before the response is complete (as Deno.serve's)
    const gone = new AbortController();
    res.once("close", () => {
      if (!res.writableFinished) gone.abort();
    });
    const response = await answer(req, gone.signal);
    await writeResponse(res, response, req.method === "HEAD", gone.signal);
  };

  const handleUpgrade = async (req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> => {
    socket.on("error", () => {});
    let request: Request;
    try {
      request = webRequest(req, scheme, fallbackHost, false);
    } catch {
      await respondRaw(socket, text(400, "Bad Request\n"));
      return;
    }
    let handled: Awaited<ReturnType<ServeSpec<D>["handle"]>>;
    try {
      handled = await spec.handle(request, remoteOf(socket));
    } catch (err) {
      log?.error("request handler failed", { error: err });
      await respondRaw(socket, text(500, "Internal Server Error\n"));
      return;
    }
    if (handled instanceof Response) {
      await respondRaw(socket, handled);
      return;
    }
    const key = req.headers["sec-websocket-key"]?.trim() ?? "";
    if (req.method !== "GET" || !/^[A-Za-z0-9+/]{22}==$/.test(key)) {
      await respondRaw(socket, text(400, "Bad WebSocket handshake\n"));
      return;
    }
    if (req.headers["sec-websocket-version"] !== "13") {
      await respondRaw(socket, text(426, "Upgrade Required\n", { "sec-websocket-version": "13" }));
      return;
    }
    if (socket.destroyed) return;
    let res = `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptKey(key)}\r\n`;
    if (handled.protocol) res += `Sec-WebSocket-Protocol: ${handled.protocol}\r\n`;
    const deflate = spec.compression ? negotiateDeflate(req.headers["sec-websocket-extensions"]) : undefined;
    if (deflate) res += `Sec-WebSocket-Extensions: ${deflate}\r\n`;
    for (const [name, value] of Object.entries(handled.headers)) res += `${name}: ${value}\r\n`;
    socket.write(`${res}\r\n`);
    const ws = new SocketWebSocket(
      socket as Socket,
      spec.websocket,
      handled.data,
      maxMessage,
      hooks,
      deflate !== undefined,
    );
    sockets.add(ws);
    ws.start(head);
  };

  server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    handleRequest(req, res).catch((err) => {
      log?.error("request failed", { error: err });
      res.destroy();
    });
  });
  server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    handleUpgrade(req, socket, head).catch(() => socket.destroy());
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(spec.port, spec.hostname, () => {
      server.off("error", reject);
      resolve();
    });
  });
  server.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code !== "EMFILE" && err.code !== "ENFILE") log?.error("listener error", { error: err });
  });
  const stopWatchdog = acceptWatchdog(server, log);
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : spec.port;
  fallbackHost = `${spec.hostname}:${port}`;

  return {
    port,
    async stop() {
      stopWatchdog();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      // closing WebSockets (the node said goodbye to every session) finish their handshake first
      if (sockets.size > 0) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, STOP_GRACE_MS);
          onSocketGone = () => {
            if (sockets.size === 0) {
              clearTimeout(timer);
              resolve();
            }
          };
        });
      }
      for (const ws of sockets) ws.destroy();
      clearInterval(sweeper);
      sweeper = undefined;
      server.closeAllConnections();
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([closed, new Promise((resolve) => (timer = setTimeout(resolve, STOP_GRACE_MS)))]);
      clearTimeout(timer);
    },
  };
}
