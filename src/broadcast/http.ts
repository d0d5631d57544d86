// The `http` broadcaster: POST /_broadcast with publications from the application.
import { createHash, timingSafeEqual } from "node:crypto";
import { bodyReader, bodyTimedOut, DEFAULT_MAX_BODY_BYTES, tooLarge } from "../http/body.ts";
import { compact, type Logger } from "../log/logger.ts";
import type { Broadcaster, PublicationHandler } from "./broadcaster.ts";
import { parsePublication } from "./publication.ts";

/** Constant-time comparison that does not leak the key length either. */
export function secureEquals(a: string, b: string): boolean {
  const ha = createHash("sha256").update(a).digest();
  const hb = createHash("sha256").update(b).digest();
  return timingSafeEqual(ha, hb);
}

/**
 * Statuses follow anycable-go (non-POST 422, bad key 401, accepted 201) except that a body which
 * does not parse gets 422 with a one-line reason instead of a silent 201.
 */
export function createBroadcastHandler(
  handler: PublicationHandler,
  key: string,
  logger: Logger,
  maxBodyBytes = DEFAULT_MAX_BODY_BYTES,
): (req: Request) => Promise<Response> {
  const log = logger.with({ context: "broadcast", provider: "http" });
  const expected = key ? `Bearer ${key}` : "";
  const readBody = bodyReader(log, maxBodyBytes);
  return async (req) => {
    if (req.method !== "POST") {
      log.debug("invalid request method", { method: req.method });
      return new Response(null, { status: 422 });
    }
    if (expected && !secureEquals(req.headers.get("authorization") ?? "", expected)) {
      return new Response(null, { status: 401 });
    }
    const read = await readBody(req);
    if (!read.ok) {
      if (read.reason === "too_large") return tooLarge();
      if (read.reason === "timeout") return bodyTimedOut();
      return new Response(null, { status: 422 });
    }
    const body = read.text;
    const parsed = parsePublication(body);
    if (!parsed.ok) {
      handler.handleInvalid();
      log.warn("failed to parse broadcast body", { data: compact(body), error: parsed.error });
      return new Response(`${parsed.error}\n`, { status: 422, headers: { "content-type": "text/plain" } });
    }
    handler.handle(parsed.value);
    return new Response(null, { status: 201 });
  };
}

/** One node receives each HTTP publication: it goes through the broker and pub/sub to all. */
export class HttpBroadcaster implements Broadcaster {
  readonly name = "broadcaster (http)";
  readonly fanout = false;
  /** The route handler, mounted by the app on the broadcast port's listener. */
  readonly fetch: (req: Request) => Promise<Response>;
  private stopped = false;

  constructor(
    handler: PublicationHandler,
    key: string,
    logger: Logger,
    maxBodyBytes = DEFAULT_MAX_BODY_BYTES,
  ) {
    const handle = createBroadcastHandler(handler, key, logger, maxBodyBytes);
    // The route stays mounted while later services stop; once shut down it accepts nothing more
    // (anycable-go stops the broadcast server here), so no publication reaches a stopping node.
    this.fetch = (req) => (this.stopped ? Promise.resolve(new Response(null, { status: 503 })) : handle(req));
  }

  async start(): Promise<void> {
    this.stopped = false;
  }
  async shutdown(): Promise<void> {
    this.stopped = true;
  }
}
