// The pub/sub chosen from --pubsub (and what anycable-go derives it from), like anycable-go's
// pub/sub factory in cli/runner_options.go. Engine-backed ones are loaded only when configured.
import type { Config } from "../config/index.ts";
import type { Logger } from "../log/logger.ts";
import type { Metrics } from "../metrics/registry.ts";
import * as natsConfig from "../nats/options.ts";
import * as redisConfig from "../redis/options.ts";
import { LocalPubSub } from "./local.ts";
import { fromConfig } from "./options.ts";
import type { PubSub, PubSubHandler } from "./pubsub.ts";

export async function createPubSub(
  config: Config,
  handler: PubSubHandler,
  logger: Logger,
  metrics?: Metrics,
): Promise<PubSub> {
  const { adapter, redisChannel } = fromConfig(config);
  switch (adapter) {
    case "":
    case "none":
      return new LocalPubSub(handler);
    case "redis": {
      // Loaded only when configured: the Redis client alone adds ~13 MiB to an idle server.
      const { RedisPubSub } = await import("./redis.ts");
      return new RedisPubSub(
        { redis: redisConfig.fromConfig(config), channel: redisChannel },
        handler,
        logger,
        metrics,
      );
    }
    case "nats": {
      // Loaded only when configured, like every engine client.
      const { NatsPubSub } = await import("./nats.ts");
      return new NatsPubSub(
        { nats: natsConfig.fromConfig(config), channel: config.nats_pubsub_channel },
        handler,
        logger,
      );
    }
    case "postgres": {
      const { PostgresPubSub } = await import("./postgres.ts");
      const postgresConfig = await import("../postgres/options.ts");
      return new PostgresPubSub({ postgres: postgresConfig.fromConfig(config) }, handler, logger, metrics);
    }
    default:
      logger
        .with({ context: "main" })
        .warn(
          `pub/sub adapter "${adapter}" is not served yet by anycable-ts: publications reach this node's clients only`,
        );
      return new LocalPubSub(handler);
  }
}
