// The checks and request data every client transport shares (WebSocket, SSE; long polling and
// Durable Streams next): origin, shutdown, connection limit, proxied headers, the JWT token.
import { extractHeaders, nanoid, originChecker } from "../http/request.ts";
import { jwtHeaderName } from "../identity/jwt.ts";
import { tokenFromUpgrade } from "../identity/token.ts";
import type { Node } from "../node/node.ts";
import type { Options } from "./options.ts";

export interface RequestGate {
  /**
   * A refusal for this request, or undefined when it may connect. With --allowed_origins set, a
   * request without an Origin header is refused unless `missingOrigin` is "allow" (HTTP
   * transports: non-browser clients such as curl send none, and browsers send one cross-origin).
   */
  refuse(req: Request, missingOrigin?: "refuse" | "allow"): Response | undefined;
  /**
   * The proposed session id (X-Request-ID, as anycable-go takes it, or a fresh one; the node
   * replaces it when a live session already has it) and the headers proxied to the application.
   */
  identify(
    req: Request,
    remote: string,
  ): { sid: string; clientSid: boolean; headers: Record<string, string> };
}

export function requestGate(opts: Options, node: Node): RequestGate {
  const originAllowed = originChecker(opts.allowedOrigins);
  // With JWT on, a token sent as X-<param> or as an anycable-token.<jwt> sub-protocol travels in
  // the env headers under x-<param>, where anycable-go's headers extractor puts it too.
  const jwtHeader = opts.jwtParam ? jwtHeaderName(opts.jwtParam) : "";
  return {
    refuse(req, missingOrigin = "refuse") {
      const origin = req.headers.get("origin");
      if (!(origin === null && missingOrigin === "allow") && !originAllowed(origin)) {
        return new Response("Forbidden\n", { status: 403 });
      }
      if (node.isShuttingDown) return new Response("Service Unavailable\n", { status: 503 });
      if (opts.maxConn > 0 && node.size >= opts.maxConn) {
        return new Response("Too many connections\n", { status: 503 });
      }
      return undefined;
    },
    identify(req, remote) {
      const headers = extractHeaders(req.headers, opts.proxyHeaders, opts.proxyCookies, remote);
      if (jwtHeader) {
        const token = tokenFromUpgrade(req.headers, jwtHeader);
        if (token) headers[jwtHeader] = token;
      }
      const requestId = req.headers.get("x-request-id");
      if (requestId) return { sid: requestId, clientSid: true, headers };
      return { sid: nanoid(), clientSid: false, headers };
    },
  };
}
