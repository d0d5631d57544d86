// CORS for the HTTP transports (SSE now; long polling next), as anycable-go's server/cors.go
// writes it: any origin when --allowed_origins is empty, otherwise the request's origin echoed
// when it is allowed (and no Allow-Origin at all when it is not). Pure.
import { originChecker } from "../http/request.ts";

const ALLOW_HEADERS =
  "Origin, X-Requested-With, X-Request-ID, Content-Type, Accept, X-CSRF-Token, Authorization";

export type CorsHeaders = (origin: string | null) => Record<string, string>;

export function corsHeaders(allowedOrigins: string): CorsHeaders {
  const allowed = originChecker(allowedOrigins);
  const any = allowedOrigins === "";
  return (origin) => {
    const headers: Record<string, string> = {};
    if (any) headers["Access-Control-Allow-Origin"] = "*";
    else if (origin && allowed(origin)) headers["Access-Control-Allow-Origin"] = origin.toLowerCase();
    headers["Access-Control-Allow-Methods"] = "POST, OPTIONS";
    headers["Access-Control-Allow-Credentials"] = "true";
    headers["Access-Control-Allow-Headers"] = ALLOW_HEADERS;
    return headers;
  };
}
