// Option rows: The Durable Streams read transport.
import type { Config, OptionSpec } from "../../config/schema.ts";

export const DS_OPTIONS = [
  {
    name: "ds",
    key: "ds",
    type: "bool",
    default: false,
    env: ["ANYCABLE_DS"],
    toml: "ds.enabled",
    category: "DURABLE STREAMS:",
    description: "Serve the Durable Streams protocol",
    hidden: false,
    deprecated: null,
    served: true,
  },
  {
    name: "ds_path",
    key: "ds_path",
    type: "string",
    default: "/ds",
    env: ["ANYCABLE_DS_PATH"],
    toml: "ds.path",
    category: "DURABLE STREAMS:",
    description: "Path of the Durable Streams endpoint",
    hidden: false,
    deprecated: null,
    served: true,
  },
  {
    name: "ds_skip_auth",
    key: "ds_skip_auth",
    type: "bool",
    default: false,
    env: ["ANYCABLE_DS_SKIP_AUTH"],
    toml: "ds.skip_auth",
    category: "DURABLE STREAMS:",
    description: "Skip client authentication for Durable Streams and only check access to each stream",
    hidden: false,
    deprecated: null,
    served: true,
  },
  {
    name: "ds_poll_interval",
    key: "ds_poll_interval",
    type: "int",
    default: 10,
    env: ["ANYCABLE_DS_POLL_INTERVAL"],
    toml: "ds.poll_interval",
    category: "DURABLE STREAMS:",
    description: "Long-polling interval for Durable Streams (seconds)",
    hidden: false,
    deprecated: null,
    served: true,
  },
  {
    name: "ds_sse_ttl",
    key: "ds_sse_ttl",
    type: "int",
    default: 60,
    env: ["ANYCABLE_DS_SSE_TTL"],
    toml: "ds.sse_ttl",
    category: "DURABLE STREAMS:",
    description: "Maximum lifetime of a Durable Streams SSE connection (seconds)",
    hidden: false,
    deprecated: null,
    served: true,
  },
] as const satisfies readonly OptionSpec[];

export interface Options {
  enabled: boolean;
  /** The mount path, without a trailing slash ("/ds"). */
  path: string;
  skipAuth: boolean;
  pollIntervalMs: number;
  sseTtlMs: number;
}

export function fromConfig(c: Config): Options {
  return {
    enabled: c.ds,
    path: c.ds_path.replace(/\/+$/, ""),
    skipAuth: c.ds_skip_auth,
    pollIntervalMs: c.ds_poll_interval * 1000,
    // anycable-go: a TTL of 0 is 60 seconds
    sseTtlMs: (c.ds_sse_ttl > 0 ? c.ds_sse_ttl : 60) * 1000,
  };
}

/** A start-up error for a DS setup that cannot work, or undefined. */
export function configProblem(c: Config): string | undefined {
  if (!c.ds) return undefined;
  // DS reads are authorized and subscribed as streams of the pub/sub channel
  if (c.streams_pubsub_channel === "") {
    return "--ds needs the pub/sub streams channel, but --streams_pubsub_channel is empty";
  }
  if (!c.ds_path.startsWith("/")) return `--ds_path must start with "/": ${JSON.stringify(c.ds_path)}`;
  // Every read is of the broker's history: anycable-go starts without one and answers each
  // request 500; refusing to start says what is missing where it can be fixed.
  if (c.broker === "" || c.broker === "none") {
    return "--ds needs a broker for history: set --broker=memory (one node), --presets=broker, or a Redis / NATS / PostgreSQL broker";
  }
  return undefined;
}
