// Option rows: Broadcasters: how publications from the application arrive.
import type { Config, OptionSpec } from "../config/schema.ts";

export const BROADCAST_OPTIONS = [
  {
    name: "broadcast_adapter",
    key: "broadcast_adapter",
    type: "list",
    default: ["http", "redis"],
    env: ["ANYCABLE_BROADCAST_ADAPTER"],
    toml: "broadcast_adapters",
    category: "BROADCASTING:",
    description: "Comma-separated broadcasting adapters to enable (http, redisx, redis, nats)",
    hidden: false,
    deprecated: null,
    served: true,
    choices: ["http", "redis", "redisx", "nats"],
  },
  {
    name: "broadcast_key",
    key: "broadcast_key",
    type: "string",
    default: "",
    env: ["ANYCABLE_BROADCAST_KEY"],
    toml: "broadcast_key",
    category: "ANYCABLE-GO SERVER:",
    description: 'Key that HTTP broadcast requests must present ("none" disables authentication)',
    hidden: false,
    deprecated: null,
    served: true,
  },
  {
    name: "redis_channel",
    key: "redis_channel",
    type: "string",
    default: "__anycable__",
    env: ["ANYCABLE_REDIS_CHANNEL"],
    toml: "redis_pubsub_broadcast.channel",
    category: "BROADCASTING:",
    description: "Redis Pub/Sub channel the redis broadcasting adapter listens to",
    hidden: false,
    deprecated: null,
    served: true,
  },
  {
    name: "nats_channel",
    key: "nats_channel",
    type: "string",
    default: "__anycable__",
    env: ["ANYCABLE_NATS_CHANNEL"],
    toml: "nats_broadcast.channel",
    category: "BROADCASTING:",
    description: "NATS subject the nats broadcasting adapter listens to",
    hidden: false,
    deprecated: null,
    served: true,
  },
  {
    name: "redisx_stream",
    key: "redisx_stream",
    type: "string",
    default: "__anycable__",
    env: ["ANYCABLE_REDISX_STREAM"],
    toml: "redis_stream_broadcast.stream",
    category: "REDIS X BROADCAST:",
    description: "Redis stream read by the redisx broadcasting adapter",
    hidden: false,
    deprecated: null,
    served: true,
  },
  {
    name: "redisx_group",
    key: "redisx_group",
    type: "string",
    default: "bx",
    env: ["ANYCABLE_REDISX_GROUP"],
    toml: "redis_stream_broadcast.group",
    category: "REDIS X BROADCAST:",
    description: "Consumer group used when reading the Redis broadcast stream",
    hidden: true,
    deprecated: null,
    served: true,
  },
  {
    name: "redisx_read_block_milliseconds",
    key: "redisx_read_block_milliseconds",
    type: "int",
    default: 2000,
    env: ["ANYCABLE_REDISX_READ_BLOCK_MILLISECONDS"],
    toml: "redis_stream_broadcast.stream_read_block_milliseconds",
    category: "REDIS X BROADCAST:",
    description: "How long one blocking stream read waits (milliseconds)",
    hidden: true,
    deprecated: null,
    served: true,
  },
  {
    name: "http_broadcast_port",
    key: "http_broadcast_port",
    type: "int",
    default: 0,
    env: ["ANYCABLE_HTTP_BROADCAST_PORT"],
    toml: "http_broadcast.port",
    category: "HTTP BROADCAST:",
    description:
      "Port of the HTTP broadcast endpoint (0: the main port when a broadcast key is in use, 8090 otherwise)",
    hidden: false,
    deprecated: null,
    served: true,
    min: 0,
    max: 65535,
  },
  {
    name: "http_broadcast_path",
    key: "http_broadcast_path",
    type: "string",
    default: "/_broadcast",
    env: ["ANYCABLE_HTTP_BROADCAST_PATH"],
    toml: "http_broadcast.path",
    category: "HTTP BROADCAST:",
    description: "Path of the HTTP broadcast endpoint",
    hidden: false,
    deprecated: null,
    served: true,
  },
  {
    name: "http_broadcast_secret",
    key: "http_broadcast_secret",
    type: "string",
    default: "",
    env: ["ANYCABLE_HTTP_BROADCAST_SECRET"],
    toml: "http_broadcast.secret",
    category: "HTTP BROADCAST:",
    description: "[Deprecated] Old name of broadcast_key",
    hidden: true,
    deprecated: "broadcast_key",
    served: true,
  },
  {
    name: "http_broadcast_cors",
    key: "http_broadcast_cors",
    type: "bool",
    default: false,
    env: ["ANYCABLE_HTTP_BROADCAST_CORS"],
    toml: "http_broadcast.cors_headers",
    category: "HTTP BROADCAST:",
    description: "Add CORS headers to broadcast responses (allowed origins become the allowed hosts)",
    hidden: true,
    deprecated: null,
    served: false,
  },
] as const satisfies readonly OptionSpec[];

export interface Options {
  /** Enabled adapters in the order given (anycable-go's default: http, redis). */
  adapters: string[];
  http: {
    path: string;
    port: number;
    /** "" = no authorization required. */
    key: string;
  };
  redis: { channel: string };
  redisx: { stream: string; group: string; blockMs: number };
  nats: { channel: string };
}

export function fromConfig(c: Config): Options {
  return {
    adapters: c.derived.broadcastAdapters,
    http: { path: c.http_broadcast_path, port: c.derived.broadcastPort, key: c.derived.broadcastKey },
    redis: { channel: c.redis_channel },
    redisx: { stream: c.redisx_stream, group: c.redisx_group, blockMs: c.redisx_read_block_milliseconds },
    nats: { channel: c.nats_channel },
  };
}
