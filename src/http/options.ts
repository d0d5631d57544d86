// Option rows: The main HTTP listener.
import type { Config, OptionSpec } from "../config/schema.ts";
import { DEFAULT_MAX_BODY_BYTES } from "./body.ts";

export const LISTENER_OPTIONS = [
  {
    name: "host",
    key: "host",
    type: "string",
    default: "localhost",
    env: ["ANYCABLE_HOST"],
    toml: "server.host",
    category: "ANYCABLE-GO SERVER:",
    description: "Address to bind the server to",
    hidden: false,
    deprecated: null,
    served: true,
  },
  {
    name: "port",
    key: "port",
    type: "int",
    default: 8080,
    env: ["ANYCABLE_PORT", "PORT"],
    toml: "server.port",
    category: "ANYCABLE-GO SERVER:",
    description: "Port to listen on",
    hidden: false,
    deprecated: null,
    served: true,
    min: 1,
    max: 65535,
  },
  {
    name: "ssl_cert",
    key: "ssl_cert",
    type: "string",
    default: "",
    env: ["ANYCABLE_SSL_CERT"],
    toml: "server.ssl.cert_path",
    category: "SSL:",
    description: "Path to the TLS certificate file",
    hidden: false,
    deprecated: null,
    served: true,
  },
  {
    name: "ssl_key",
    key: "ssl_key",
    type: "string",
    default: "",
    env: ["ANYCABLE_SSL_KEY"],
    toml: "server.ssl.key_path",
    category: "SSL:",
    description: "Path to the TLS private key file",
    hidden: false,
    deprecated: null,
    served: true,
  },
  {
    name: "health-path",
    key: "health_path",
    type: "string",
    default: "/health",
    env: ["ANYCABLE_HEALTH_PATH"],
    toml: "server.health_path",
    category: "ANYCABLE-GO SERVER:",
    description: "Path of the HTTP health check endpoint",
    hidden: false,
    deprecated: null,
    served: true,
  },
  {
    name: "max_body_size",
    key: "max_body_size",
    type: "int",
    default: DEFAULT_MAX_BODY_BYTES,
    env: ["ANYCABLE_MAX_BODY_SIZE"],
    toml: "server.max_body_size",
    category: "ANYCABLE-GO SERVER:",
    description:
      "Largest HTTP request body the server reads (broadcasts, REST API), in bytes; a larger one gets 413 (0 means no limit)",
    hidden: false,
    deprecated: null,
    served: true,
    unsigned: true,
    extension: true,
  },
] as const satisfies readonly OptionSpec[];

export interface Options {
  host: string;
  port: number;
  tls?: { certFile: string; keyFile: string };
  healthPath: string;
  /** Request bodies above this many bytes are refused with 413 unread (0 = no limit). */
  maxBodyBytes: number;
}

export function fromConfig(c: Config): Options {
  return {
    host: c.host,
    port: c.port,
    tls: c.ssl_cert && c.ssl_key ? { certFile: c.ssl_cert, keyFile: c.ssl_key } : undefined,
    healthPath: c.health_path,
    maxBodyBytes: c.max_body_size,
  };
}
