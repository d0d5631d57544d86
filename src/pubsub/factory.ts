// The pub/sub chosen from --pubsub (and what anycable-go derives it from), like anycable-go's
// pub/sub factory in cli/runner_options.go. Engine-backed ones are loaded only when configured.
import type { Config } from "../config/index.ts";
import type { Logger } from "../log/logger.ts";
import * as natsConfig from "../nats/options.ts";
import { LocalPubSub } from "./local.ts";
import { fromConfig } from "./options.ts";
import type { PubSub, PubSubHandler } from "./pubsub.ts";

export async function createPubSub(config: Config, handler: PubSubHandler, logger: Logger): Promise<PubSub> {
  const { adapter } = fromConfig(config);
  switch (adapter) {
    case "":
    case "none":
      return new LocalPubSub(handler);
    case "nats": {
      // Loaded only when configured, like every engine client.
      const { NatsPubSub } = await import("./nats.ts");
      return new NatsPubSub(
        { nats: natsConfig.fromConfig(config), channel: config.nats_pubsub_channel },
        handler,
        logger,
      );
    }
    default:
      // anycable-go picks Redis pub/sub by itself when Redis is configured (e.g. REDIS_URL).
      logger
        .with({ context: "main" })
        .warn(
          `pub/sub adapter "${adapter}" is not served yet by anycable-ts: publications reach this node's clients only`,
        );
      return new LocalPubSub(handler);
  }
}
