// Option rows: Node-to-node pub/sub.
import type { Config, OptionSpec } from "../config/schema.ts";

export const PUBSUB_OPTIONS = [
  {
    name: "pubsub",
    key: "pubsub",
    type: "string",
    default: "",
    env: ["ANYCABLE_PUBSUB"],
    toml: "pubsub_adapter",
    category: "BROADCASTING:",
    description:
      "Pub/sub adapter for node-to-node messages (redis, nats, postgres); empty means single-node mode",
    hidden: false,
    deprecated: null,
    served: true,
    choices: ["none", "redis", "nats", "postgres"],
  },
  {
    name: "redis_pubsub_channel",
    key: "redis_pubsub_channel",
    type: "string",
    default: "__anycable_internal__",
    env: [],
    toml: "redis_pubsub.channel",
    category: "BROADCASTING:",
    description: "Redis channel used for node-to-node pub/sub",
    hidden: true,
    deprecated: null,
    served: true,
    flag: false,
  },
  {
    name: "nats_pubsub_channel",
    key: "nats_pubsub_channel",
    type: "string",
    default: "__anycable_internal__",
    env: [],
    toml: "nats_pubsub.channel",
    category: "BROADCASTING:",
    description: "NATS subject used for node-to-node pub/sub",
    hidden: true,
    deprecated: null,
    served: true,
    flag: false,
  },
] as const satisfies readonly OptionSpec[];

export interface Options {
  /** "" / "none": this node only. anycable-go's rule applies: Redis configured means "redis". */
  adapter: string;
  /** The internal channel of Redis pub/sub (with anycable-go's "-int" rule applied). */
  redisChannel: string;
}

export function fromConfig(c: Config): Options {
  return { adapter: c.derived.pubsubAdapter, redisChannel: c.derived.redisPubsubChannel };
}
