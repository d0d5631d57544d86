// The live status page's routes on the main port: the page, its samples (JSON) and, in public mode
// only, the "try it" panel's publish endpoint. Under a key (see key.ts) unless public.
import { Hono } from "hono";
import type { PublicationHandler } from "../broadcast/broadcaster.ts";
import { bodyReader } from "../http/body.ts";
import type { Logger } from "../log/logger.ts";
import { statusKeyMatches } from "./key.ts";
import type { Options } from "./options.ts";
import { renderStatusPage } from "./page.ts";
import { SAMPLE_EVERY_MS, type StatusSampler } from "./sampler.ts";

export const STATUS_DISABLED_LINE =
  "Status page is not served: it would be unprotected (set --secret, or --public)";

/** The "try it" panel publishes small messages; anything larger is refused. */
const MAX_PUBLISH_BYTES = 16 * 1024;

export interface StatusAppOptions {
  status: Options;
  sampler: StatusSampler;
  /** Where the "try it" panel's publications go (the same path as HTTP broadcasts: every node). */
  publisher: PublicationHandler;
  wsPath: string;
  pubsubChannel: string;
  version: string;
  nodeId: string;
  logger: Logger;
}

export function statusEnabled(o: Options): boolean {
  return o.path !== "" && (o.public || o.key !== "");
}

export function createStatusApp(o: StatusAppOptions): Hono {
  const { path, key } = o.status;
  const publishPath = o.status.public ? `${path}/publish` : null;
  const log = o.logger.with({ context: "status" });
  const html = renderStatusPage({
    dataPath: `${path}/data`,
    publishPath,
    wsPath: o.wsPath,
    pubsubChannel: o.pubsubChannel,
    version: o.version,
    nodeId: o.nodeId,
  });
  const app = new Hono();
  const unauthorized = () =>
    new Response("Unauthorized\n", {
      status: 401,
      headers: { "content-type": "text/plain", "www-authenticate": 'Bearer realm="status"' },
    });
  const secured = { "cache-control": "no-store", "x-content-type-options": "nosniff" };

  app.get(path, (c) => {
    if (!statusKeyMatches(c.req.raw, key)) return unauthorized();
    return new Response(html, {
      headers: {
        ...secured,
        "content-type": "text/html; charset=utf-8",
        // Everything is inline; nothing may load from elsewhere.
        "content-security-policy":
          "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self' ws: wss:; img-src 'self' data:",
        "x-frame-options": "DENY",
      },
    });
  });
  app.get(`${path}/data`, (c) => {
    if (!statusKeyMatches(c.req.raw, key)) return unauthorized();
    const body = JSON.stringify({
      now: Date.now(),
      intervalMs: SAMPLE_EVERY_MS,
      capacity: o.sampler.ring.capacity,
      public: o.status.public,
      samples: o.sampler.ring.toArray(),
    });
    return new Response(body, { headers: { ...secured, "content-type": "application/json" } });
  });
  if (publishPath) {
    const readBody = bodyReader(log, MAX_PUBLISH_BYTES);
    app.post(publishPath, async (c) => {
      const read = await readBody(c.req.raw);
      if (!read.ok) return new Response(null, { status: read.reason === "too_large" ? 413 : 422 });
      let parsed: unknown;
      try {
        parsed = JSON.parse(read.text);
      } catch {
        return new Response('body must be JSON: {"stream": ..., "data": ...}\n', { status: 422 });
      }
      const p = parsed as { stream?: unknown; data?: unknown };
      if (
        typeof p !== "object" ||
        p === null ||
        typeof p.stream !== "string" ||
        p.stream === "" ||
        !("data" in p)
      ) {
        return new Response('body must be JSON: {"stream": ..., "data": ...}\n', { status: 422 });
      }
      o.publisher.handle({
        kind: "broadcast",
        publications: [{ stream: p.stream, dataJson: JSON.stringify(p.data) }],
      });
      return new Response(null, { status: 201 });
    });
  }
  return app;
}

export function statusStartupLines(o: Options, address: string): string[] {
  return [
    `Serve the status page at ${address}${o.path} (${o.public ? "public, with the try-it panel" : "key required"})`,
  ];
}
