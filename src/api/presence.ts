// REST API `GET <api_path>/presence/<stream>/users`: a stream's presence records under the API
// key, with anycable-go's statuses (200 / 401 / 404 / 422 / 501 / 400).
import { secureEquals } from "../broadcast/http.ts";
import { type Broker, isBrokerError } from "../broker/broker.ts";
import { presenceInfoJson } from "../broker/presence_json.ts";
import type { Logger } from "../log/logger.ts";

/** `/presence/<stream>/users` at the end of the path; the stream is one URL-encoded segment. */
const USERS_PATH = /\/presence\/([^/]+)\/users$/;

export function createPresenceHandler(
  broker: Broker,
  secret: string,
  logger: Logger,
): (req: Request) => Promise<Response> {
  const log = logger.with({ context: "api" });
  const expected = secret ? `Bearer ${secret}` : "";
  return async (req) => {
    if (req.method !== "GET") {
      log.debug("invalid request method", { method: req.method });
      return new Response(null, { status: 422 });
    }
    if (expected && !secureEquals(req.headers.get("authorization") ?? "", expected)) {
      return new Response(null, { status: 401 });
    }
    const match = USERS_PATH.exec(new URL(req.url).pathname);
    let stream: string | undefined;
    try {
      stream = match ? decodeURIComponent(match[1]!) : undefined;
    } catch {
      stream = undefined; // a malformed %-escape
    }
    if (!stream) {
      log.debug("invalid path for get users", { path: new URL(req.url).pathname });
      return new Response(null, { status: 404 });
    }
    if (!broker.supportsPresence) return new Response(null, { status: 501 });
    const info = await broker.presenceInfo(stream, { returnRecords: true });
    if (isBrokerError(info)) {
      log.debug("failed to get presence info", { stream, error: info.error });
      return new Response(null, { status: 400 });
    }
    return new Response(presenceInfoJson(info), {
      status: 200,
      headers: { "content-type": "application/json" },
    });
  };
}
