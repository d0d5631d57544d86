// Option rows: Checks every client transport applies to a connection request.
import type { Config, OptionSpec } from "../config/schema.ts";

export const TRANSPORT_OPTIONS = [
  {
    name: "allowed_origins",
    key: "allowed_origins",
    type: "string",
    default: "",
    env: ["ANYCABLE_ALLOWED_ORIGINS"],
    toml: "server.allowed_origins",
    category: "ANYCABLE-GO SERVER:",
    description:
      'Comma-separated origins allowed to connect (wildcards like "*.example.io" work); empty disables the check',
    hidden: false,
    deprecated: null,
    served: true,
  },
  {
    name: "max-conn",
    key: "max_conn",
    type: "int",
    default: 0,
    env: ["ANYCABLE_MAX_CONN"],
    toml: "server.max_conn",
    category: "ANYCABLE-GO SERVER:",
    description: "Maximum number of simultaneous connections (0 means unlimited)",
    hidden: false,
    deprecated: null,
    served: true,
  },
] as const satisfies readonly OptionSpec[];

/** The checks and request data shared by every client transport. */
export interface Options {
  allowedOrigins: string;
  /** 0 = unlimited. */
  maxConn: number;
  /** Request headers and cookies proxied to the application (lower-cased; from the RPC rows). */
  proxyHeaders: string[];
  proxyCookies: string[];
  /** JWT parameter name when JWT identification is on ("" otherwise): its header is X-<param>. */
  jwtParam: string;
}

export function fromConfig(c: Config): Options {
  return {
    allowedOrigins: c.allowed_origins,
    maxConn: c.max_conn,
    proxyHeaders: c.derived.proxyHeaders,
    proxyCookies: c.derived.proxyCookies,
    jwtParam: c.derived.jwtSecret ? c.derived.jwtParam : "",
  };
}
