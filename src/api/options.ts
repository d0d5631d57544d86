// Option rows: The REST API.
import type { Config, OptionSpec } from "../config/schema.ts";

export const API_OPTIONS = [
  {
    name: "api_port",
    key: "api_port",
    type: "int",
    default: 0,
    env: ["ANYCABLE_API_PORT"],
    toml: "api.port",
    category: "API:",
    description: "Port of the HTTP API (0 means the main server port)",
    hidden: false,
    deprecated: null,
    served: true,
    min: 0,
    max: 65535,
  },
  {
    name: "api_path",
    key: "api_path",
    type: "string",
    default: "/api",
    env: ["ANYCABLE_API_PATH"],
    toml: "api.path",
    category: "API:",
    description: "Base path of the HTTP API",
    hidden: false,
    deprecated: null,
    served: true,
  },
  {
    name: "api_secret",
    key: "api_secret",
    type: "string",
    default: "",
    env: ["ANYCABLE_API_SECRET"],
    toml: "api.secret",
    category: "API:",
    description: "Token that API requests must present (derived from secret when empty)",
    hidden: false,
    deprecated: null,
    served: true,
  },
  {
    name: "api_host",
    key: "api_host",
    type: "string",
    default: "",
    env: [],
    toml: "api.host",
    category: "API:",
    description: "Host for a separate API server (used only when api_port differs from the main port)",
    hidden: true,
    deprecated: null,
    served: true,
    flag: false,
  },
  {
    name: "api_cors_headers",
    key: "api_cors_headers",
    type: "bool",
    default: false,
    env: [],
    toml: "api.cors_headers",
    category: "API:",
    description: "Add CORS headers to API responses",
    hidden: true,
    deprecated: null,
    served: true,
    flag: false,
  },
] as const satisfies readonly OptionSpec[];

export interface Options {
  /** false when it would be unprotected (no secret, no dedicated port, not public). */
  enabled: boolean;
  /** Own listener host when it differs from the server's ("" = the server's). */
  host: string;
  port: number;
  path: string;
  /** Bearer token; "" = no authorization required. */
  secret: string;
  cors: boolean;
}

export function fromConfig(c: Config): Options {
  const d = c.derived;
  return {
    enabled: d.apiEnabled,
    host: c.api_host,
    port: d.apiPort,
    path: c.api_path,
    secret: d.apiSecret,
    cors: c.api_cors_headers,
  };
}
