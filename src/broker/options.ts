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
    description: "Broker engine for streams history and sessions (memory, nats); empty disables the broker",
    hidden: false,
    deprecated: null,
    served: false,
    choices: ["none", "memory", "nats"],
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
    served: false,
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
    served: false,
  },
  {
    name: "sessions_ttl",
    key: "sessions_ttl",
    type: "int",
    default: 300,
    env: ["ANYCABLE_SESSIONS_TTL"],
    toml: "broker.sessions_ttl",
    category: "BROKER:",
    description: "How long disconnected sessions stay restorable (seconds)",
    hidden: false,
    deprecated: null,
    served: false,
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
    served: false,
  },
] as const satisfies readonly OptionSpec[];

export interface Options {
  /** "" or "none": no broker (no history, no sessions, no presence). */
  adapter: string;
}

export function fromConfig(c: Config): Options {
  return { adapter: c.broker };
}
