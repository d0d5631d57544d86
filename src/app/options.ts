// Option rows: The application as a whole: its secret, modes, identity and shutdown.
import type { Config, OptionSpec } from "../config/schema.ts";

export const APP_OPTIONS = [
  {
    name: "secret",
    key: "secret",
    type: "string",
    default: "",
    env: ["ANYCABLE_SECRET"],
    toml: "secret",
    category: "ANYCABLE-GO SERVER:",
    description:
      "Application-wide secret; other secrets (broadcasting, RPC, JWT, signed streams, ...) are derived from it unless set explicitly",
    hidden: false,
    deprecated: null,
    served: true,
  },
  {
    name: "public",
    key: "public",
    type: "bool",
    default: false,
    env: ["ANYCABLE_PUBLIC"],
    toml: "public",
    category: "ANYCABLE-GO SERVER:",
    description:
      "[DANGER ZONE] Public mode: no connection authentication, unsigned streams allowed, unauthenticated broadcasts",
    hidden: false,
    deprecated: null,
    served: true,
  },
  {
    name: "noauth",
    key: "noauth",
    type: "bool",
    default: false,
    env: ["ANYCABLE_NOAUTH"],
    toml: "noauth",
    category: "ANYCABLE-GO SERVER:",
    description: "[DANGER ZONE] Accept every connection without asking the RPC server to authenticate it",
    hidden: false,
    deprecated: null,
    served: true,
  },
  {
    name: "shutdown_timeout",
    key: "shutdown_timeout",
    type: "int",
    default: 30,
    env: ["ANYCABLE_SHUTDOWN_TIMEOUT"],
    toml: "app.shutdown_timeout",
    category: "ANYCABLE-GO SERVER:",
    description: "How long to wait for a graceful shutdown (seconds)",
    hidden: false,
    deprecated: null,
    served: true,
  },
  {
    name: "shutdown_pool_size",
    key: "shutdown_pool_size",
    type: "int",
    default: 16,
    env: ["ANYCABLE_SHUTDOWN_POOL_SIZE"],
    toml: "app.shutdown_disconnect_gopool_size",
    category: "ANYCABLE-GO SERVER:",
    description: "How many Disconnect calls may run concurrently during shutdown",
    hidden: true,
    deprecated: null,
    served: false,
  },
  {
    name: "shutdown_slowdrain",
    key: "shutdown_slowdrain",
    type: "bool",
    default: false,
    env: ["ANYCABLE_SHUTDOWN_SLOWDRAIN"],
    toml: "app.shutdown_slowdrain",
    category: "ANYCABLE-GO SERVER:",
    description:
      "Spread the disconnects of active clients over the shutdown period (80% of --shutdown_timeout) instead of closing them at once",
    hidden: false,
    deprecated: null,
    served: true,
    // AnyCable Pro's; OSS anycable-go has no such flag
    extension: true,
  },
  {
    name: "shutdown_delay",
    key: "shutdown_delay",
    type: "int",
    default: 0,
    env: ["ANYCABLE_SHUTDOWN_DELAY"],
    toml: "app.shutdown_delay",
    category: "ANYCABLE-GO SERVER:",
    description: "Pause before starting the shutdown sequence (seconds)",
    hidden: false,
    deprecated: null,
    served: true,
  },
  {
    name: "node_id",
    key: "node_id",
    type: "string",
    default: "",
    env: ["ANYCABLE_NODE_ID"],
    toml: "node_id",
    category: "ANYCABLE-GO SERVER:",
    description: "Identifier of this server instance (a random one is generated when empty)",
    hidden: true,
    deprecated: null,
    served: true,
  },
] as const satisfies readonly OptionSpec[];

export interface Options {
  nodeId: string;
  shutdownTimeoutMs: number;
  shutdownDelayMs: number;
  /** How long the slow drain spreads disconnects over (0: at once). */
  slowDrainMs: number;
}

/** The share of --shutdown_timeout the slow drain takes; the rest is for the RPC calls after it. */
export const SLOW_DRAIN_SHARE = 0.8;

export function fromConfig(c: Config): Options {
  return {
    nodeId: c.derived.nodeId,
    shutdownTimeoutMs: c.shutdown_timeout * 1000,
    shutdownDelayMs: c.shutdown_delay * 1000,
    slowDrainMs: c.shutdown_slowdrain ? c.shutdown_timeout * 1000 * SLOW_DRAIN_SHARE : 0,
  };
}
