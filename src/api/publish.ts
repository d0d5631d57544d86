// REST API `POST <api_path>/publish`: the same publications as the HTTP broadcast endpoint, under
// the API key, with the statuses of anycable-go's API (201 / 401 / 422 / 501).
import type { PublicationHandler } from "../broadcast/broadcaster.ts";
import { secureEquals } from "../broadcast/http.ts";
import { parsePublication } from "../broadcast/publication.ts";
import { bodyReader, bodyTimedOut, DEFAULT_MAX_BODY_BYTES, tooLarge } from "../http/body.ts";
import { compact, type Logger } from "../log/logger.ts";

export interface ApiOptions {
  /** Bearer token; "" = no authorization required. */
  secret: string;
  /** Answer CORS preflights and add CORS headers (`api.cors_headers`). */
  cors: boolean;
  /** --max_body_size (0 = no limit; default: the option's default). */
  maxBodyBytes?: number;
}

/** anycable-go's CORS headers; it has no API origin list in its flags, so any origin is allowed. */
const CORS_HEADERS: Record<string, string> = {
  "Access-Control-Allow-Origin": "*",
  "Access-Control-Allow-Methods": "POST, OPTIONS",
  "Access-Control-Allow-Credentials": "true",
  "Access-Control-Allow-Headers":
    "Origin, X-Requested-With, X-Request-ID, Content-Type, Accept, X-CSRF-Token, Authorization",
};

export function createPublishHandler(
  handler: PublicationHandler,
  opts: ApiOptions,
  logger: Logger,
): (req: Request) => Promise<Response> {
  const log = logger.with({ context: "api" });
  const expected = opts.secret ? `Bearer ${opts.secret}` : "";
  const readBody = bodyReader(log, opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES);
  const respond = (status: number, body: string | null = null): Response => {
    const headers = new Headers(opts.cors ? CORS_HEADERS : undefined);
    if (body !== null) headers.set("content-type", "text/plain");
    return new Response(body, { status, headers });
  };
  return async (req) => {
    if (opts.cors && req.method === "OPTIONS") return respond(200);
    if (req.method !== "POST") {
      log.debug("invalid request method", { method: req.method });
      return respond(422);
    }
    if (expected && !secureEquals(req.headers.get("authorization") ?? "", expected)) return respond(401);
    const read = await readBody(req);
    if (!read.ok) {
      if (read.reason === "too_large") return tooLarge(opts.cors ? CORS_HEADERS : undefined);
      if (read.reason === "timeout") return bodyTimedOut(opts.cors ? CORS_HEADERS : undefined);
      return respond(422);
    }
    const body = read.text;
    const parsed = parsePublication(body);
    if (!parsed.ok) {
      handler.handleInvalid();
      log.warn("failed to parse publish body", { data: compact(body), error: parsed.error });
      return respond(422, `${parsed.error}\n`);
    }
    try {
      handler.handle(parsed.value);
    } catch (err) {
      log.error("failed to handle broadcast", { error: err });
      return respond(501);
    }
    return respond(201);
  };
}
