// Option rows: The broker: history, sessions and presence.
import type { Config, OptionSpec } from "../config/schema.ts";

export const BROKER_OPTIONS = [
  {
    name: "broker",
    key: "broker",
    type: "string",
    default: "",
    env: ["ANYCABLE_BROKER"],
    toml: "broker.adapter",
    category: "BROADCASTING:",
    description:
      "Broker engine for streams history, sessions and presence (memory, redis, nats, postgres); empty disables the broker",
    hidden: false,
    deprecated: null,
    served: true,
    choices: ["none", "memory", "redis", "nats", "postgres"],
  },
  {
    name: "history_limit",
    key: "history_limit",
    type: "int",
    default: 100,
    env: ["ANYCABLE_HISTORY_LIMIT"],
    toml: "broker.history_limit",
    category: "BROKER:",
    description: "How many messages to keep per stream history",
    hidden: false,
    deprecated: null,
    served: true,
    min: 1,
  },
  {
    name: "history_ttl",
    key: "history_ttl",
    type: "int",
    default: 300,
    env: ["ANYCABLE_HISTORY_TTL"],
    toml: "broker.history_ttl",
    category: "BROKER:",
    description: "How long stream history entries are kept (seconds)",
    hidden: false,
    deprecated: null,
    served: true,
    min: 0,
  },
  {
    name: "sessions_ttl",
    key: "sessions_ttl",
    type: "int",
    default: 300,
    env: ["ANYCABLE_SESSIONS_TTL"],
    toml: "broker.sessions_ttl",
    category: "BROKER:",
    description: "How long disconnected sessions stay restorable (seconds; 0 keeps none)",
    hidden: false,
    deprecated: null,
    served: true,
    min: 0,
  },
  {
    name: "presence_ttl",
    key: "presence_ttl",
    type: "int",
    default: 15,
    env: ["ANYCABLE_PRESENCE_TTL"],
    toml: "broker.presence_ttl",
    category: "BROKER:",
    description: "How long presence records outlive a disconnect (seconds)",
    hidden: false,
    deprecated: null,
    served: true,
    min: 0,
  },
  {
    name: "broker_max_streams",
    key: "broker_max_streams",
    type: "int",
    default: 100000,
    env: ["ANYCABLE_BROKER_MAX_STREAMS"],
    toml: "broker.max_streams",
    category: "BROKER:",
    description:
      "Streams the in-memory broker keeps history for; a new stream beyond it drops the least recently published one",
    hidden: false,
    deprecated: null,
    served: true,
    min: 1,
    extension: true,
  },
  {
    name: "broker_max_sessions",
    key: "broker_max_sessions",
    type: "int",
    default: 100000,
    env: ["ANYCABLE_BROKER_MAX_SESSIONS"],
    toml: "broker.max_sessions",
    category: "BROKER:",
    description:
      "Disconnected sessions the in-memory broker keeps restorable; beyond it the one expiring soonest is dropped",
    hidden: false,
    deprecated: null,
    served: true,
    min: 1,
    extension: true,
  },
] as const satisfies readonly OptionSpec[];

export interface Options {
  /** "" or "none": no broker (no history, no sessions, no presence). */
  adapter: string;
  historyLimit: number;
  historyTtlSec: number;
  sessionsTtlSec: number;
  presenceTtlSec: number;
  maxStreams: number;
  maxSessions: number;
}

export function fromConfig(c: Config): Options {
  return {
    adapter: c.broker,
    historyLimit: c.history_limit,
    historyTtlSec: c.history_ttl,
    sessionsTtlSec: c.sessions_ttl,
    presenceTtlSec: c.presence_ttl,
    maxStreams: c.broker_max_streams,
    maxSessions: c.broker_max_sessions,
  };
}
