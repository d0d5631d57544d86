// Option rows: Sessions: pings, slow clients, subscription limits and the hub.
import type { Config, OptionSpec } from "../config/schema.ts";

export const NODE_OPTIONS = [
  {
    name: "ws_write_timeout",
    key: "ws_write_timeout",
    type: "int",
    default: 2,
    env: ["ANYCABLE_WS_WRITE_TIMEOUT"],
    toml: "ws.write_timeout",
    category: "WEBSOCKETS:",
    description: "How long a single WebSocket write may take (seconds)",
    hidden: false,
    deprecated: null,
    served: true,
  },
  {
    name: "ws_max_pending_size",
    key: "ws_max_pending_size",
    type: "int",
    default: 1048576,
    env: ["ANYCABLE_WS_MAX_PENDING_SIZE"],
    toml: "ws.max_pending_size",
    category: "WEBSOCKETS:",
    description:
      "Outgoing bytes a session may keep queued: a backlog above it that has not shrunk at the next slow-client check (every 250 ms) drops the session as too slow (0 means no limit)",
    hidden: false,
    deprecated: null,
    served: true,
    unsigned: true,
  },
  {
    name: "max_subscriptions_per_connection",
    key: "max_subscriptions_per_connection",
    type: "int",
    default: 1000,
    env: ["ANYCABLE_MAX_SUBSCRIPTIONS_PER_CONNECTION"],
    toml: "server.max_subscriptions_per_connection",
    category: "ANYCABLE-GO SERVER:",
    description: "Subscriptions one connection may hold; a subscribe over it is rejected (0 means unlimited)",
    hidden: false,
    deprecated: null,
    served: true,
    unsigned: true,
    extension: true,
  },
  {
    name: "ping_interval",
    key: "ping_interval",
    type: "int",
    default: 3,
    env: ["ANYCABLE_PING_INTERVAL"],
    toml: "app.ping_interval",
    category: "PING:",
    description: "Interval between Action Cable pings (seconds)",
    hidden: false,
    deprecated: null,
    served: true,
  },
  {
    name: "ping_timestamp_precision",
    key: "ping_timestamp_precision",
    type: "string",
    default: "s",
    env: ["ANYCABLE_PING_TIMESTAMP_PRECISION"],
    toml: "app.ping_timestamp_precision",
    category: "PING:",
    description: "Unit of the timestamp in ping messages (s, ms, ns)",
    hidden: true,
    deprecated: null,
    served: true,
    choices: ["s", "ms", "ns"],
  },
  {
    name: "pong_timeout",
    key: "pong_timeout",
    type: "int",
    default: 0,
    env: ["ANYCABLE_PONG_TIMEOUT"],
    toml: "app.pong_timeout",
    category: "PING:",
    description:
      "Disconnect clients that do not answer a ping with a pong within this time (seconds; 0 disables the check)",
    hidden: false,
    deprecated: null,
    served: true,
  },
  {
    name: "enable_native_pings",
    key: "enable_native_pings",
    type: "bool",
    default: false,
    env: ["ANYCABLE_ENABLE_NATIVE_PINGS"],
    toml: "app.enable_native_ping",
    category: "PING:",
    description:
      "Also send protocol-level pings (such as WebSocket ping frames) for clients of custom protocols",
    hidden: false,
    deprecated: null,
    served: true,
  },
  {
    name: "hub_gopool_size",
    key: "hub_gopool_size",
    type: "int",
    default: 16,
    env: ["ANYCABLE_HUB_GOPOOL_SIZE"],
    toml: "app.broadcast_gopool_size",
    category: "BROADCASTING:",
    description: "Concurrency of the broadcast fan-out worker pool",
    hidden: true,
    deprecated: null,
    served: false,
  },
] as const satisfies readonly OptionSpec[];

export type DisconnectMode = "auto" | "always" | "never";

/** What sessions are held to (the Node's tuning; its collaborators are wired by the app). */
export interface Options {
  pingIntervalMs: number;
  pingPrecision: string;
  nativePings: boolean;
  maxPendingBytes: number;
  writeTimeoutMs: number;
  disconnectMode: DisconnectMode;
  /** Subscriptions one session may hold (0 = unlimited); over it a subscribe is rejected. */
  maxSubscriptions: number;
  /** Extended-protocol (or native-ping) clients must answer a ping within this (0: not checked). */
  pongTimeoutMs: number;
}

export function fromConfig(c: Config): Options {
  return {
    pingIntervalMs: c.ping_interval * 1000,
    pingPrecision: c.ping_timestamp_precision,
    nativePings: c.enable_native_pings,
    maxPendingBytes: c.ws_max_pending_size,
    writeTimeoutMs: c.ws_write_timeout * 1000,
    disconnectMode: c.disconnect_mode as DisconnectMode,
    maxSubscriptions: c.max_subscriptions_per_connection,
    pongTimeoutMs: c.pong_timeout * 1000,
  };
}
