// Option rows: the long polling transport (transports/lp/handler.ts).
import type { Config, OptionSpec } from "../../config/schema.ts";

export const LP_OPTIONS = [
  {
    name: "poll",
    key: "poll",
    type: "bool",
    default: false,
    env: ["ANYCABLE_POLL"],
    toml: "poll.enabled",
    category: "LONG POLLING:",
    description: "Serve long polling clients",
    hidden: false,
    deprecated: null,
    served: true,
  },
  {
    name: "poll_path",
    key: "poll_path",
    type: "string",
    default: "/lp",
    env: ["ANYCABLE_POLL_PATH"],
    toml: "poll.path",
    category: "LONG POLLING:",
    description: "Path of the long polling endpoint",
    hidden: false,
    deprecated: null,
    served: true,
  },
  {
    name: "poll_interval",
    key: "poll_interval",
    type: "int",
    default: 15,
    env: ["ANYCABLE_POLL_INTERVAL"],
    toml: "poll.interval",
    category: "LONG POLLING:",
    description: "Long polling interval (seconds)",
    hidden: false,
    deprecated: null,
    served: true,
  },
  {
    name: "poll_flush_interval",
    key: "poll_flush_interval",
    type: "int",
    default: 500,
    env: ["ANYCABLE_POLL_FLUSH_INTERVAL"],
    toml: "poll.flush_interval",
    category: "LONG POLLING:",
    description: "How long to buffer server messages before flushing them to a poll (milliseconds)",
    hidden: false,
    deprecated: null,
    served: true,
  },
  {
    name: "poll_max_request_size",
    key: "poll_max_request_size",
    type: "int",
    default: 65536,
    // the second name is the one AnyCable Pro's docs print (sic)
    env: ["ANYCABLE_POLL_MAX_REQUEST_SIZE", "ANYCABLE_POLL_MAX_REQEUEST_SIZE"],
    toml: "poll.max_request_size",
    category: "LONG POLLING:",
    description: "Maximum poll request body size (bytes); larger bodies get 413",
    hidden: false,
    deprecated: null,
    served: true,
  },
  {
    name: "poll_keepalive_timeout",
    key: "poll_keepalive_timeout",
    type: "int",
    default: 5,
    env: ["ANYCABLE_POLL_KEEPALIVE_TIMEOUT"],
    toml: "poll.keepalive_timeout",
    category: "LONG POLLING:",
    description: "How long a poll session lives between requests (seconds)",
    hidden: false,
    deprecated: null,
    served: true,
  },
] as const satisfies readonly OptionSpec[];

export interface Options {
  enabled: boolean;
  path: string;
  intervalSec: number;
  flushMs: number;
  maxRequestSize: number;
  keepaliveSec: number;
}

export function fromConfig(c: Config): Options {
  return {
    enabled: c.poll,
    path: c.poll_path,
    intervalSec: c.poll_interval,
    flushMs: c.poll_flush_interval,
    maxRequestSize: c.poll_max_request_size,
    keepaliveSec: c.poll_keepalive_timeout,
  };
}
