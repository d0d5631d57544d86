// Broadcasters chosen from --broadcast_adapter, like anycable-go's WithDefaultBroadcaster: each
// gets the handler its fan-out calls for (see broadcast/handler.ts).
import type { Broadcaster, PublicationHandler } from "../broadcast/broadcaster.ts";
import { HttpBroadcaster } from "../broadcast/http.ts";
import * as broadcastConfig from "../broadcast/options.ts";
import { type Config, unservedAdapters } from "../config/index.ts";
import * as listenerConfig from "../http/options.ts";
import type { Logger } from "../log/logger.ts";
import * as natsConfig from "../nats/options.ts";
import * as redisConfig from "../redis/options.ts";
import type { Routes } from "./routes.ts";

export interface Handlers {
  /** For single-node broadcasters: through the broker and pub/sub. */
  cluster: PublicationHandler;
  /** For fan-out broadcasters: this node's clients only. */
  local: PublicationHandler;
  /** Resolves once what `cluster` was handed so far is stored by pub/sub (see PubSub.drained). */
  delivered?: () => Promise<void>;
}

export async function createBroadcasters(
  config: Config,
  handlers: Handlers,
  routes: Routes,
  logger: Logger,
): Promise<Broadcaster[]> {
  const opts = broadcastConfig.fromConfig(config);
  const { maxBodyBytes } = listenerConfig.fromConfig(config);
  const broadcasters: Broadcaster[] = [];
  for (const adapter of opts.adapters) {
    if (adapter === "http") {
      const http = new HttpBroadcaster(handlers.cluster, opts.http.key, logger, maxBodyBytes);
      routes.on(opts.http.port).all(opts.http.path, (c) => http.fetch(c.req.raw));
      const auth = opts.http.key ? "authorization required" : "no authorization";
      routes.announce(() => [
        `Accept broadcast requests at ${routes.address(opts.http.port)}${opts.http.path} (${auth})`,
      ]);
      broadcasters.push(http);
    } else if (adapter === "redis") {
      // Loaded only when configured: the Redis client alone adds ~13 MiB to an idle server.
      const { RedisBroadcaster } = await import("../broadcast/redis.ts");
      const redis = redisConfig.fromConfig(config);
      broadcasters.push(new RedisBroadcaster({ redis, channel: opts.redis.channel }, handlers.local, logger));
    } else if (adapter === "redisx") {
      // One node gets each publication: through the broker and pub/sub to all (not fan-out).
      const { RedisxBroadcaster } = await import("../broadcast/redisx.ts");
      broadcasters.push(
        new RedisxBroadcaster(
          { redis: redisConfig.fromConfig(config), ...opts.redisx },
          handlers.cluster,
          logger,
        ),
      );
    } else if (adapter === "postgres") {
      // One node gets each row: through the broker and pub/sub to all (not fan-out).
      const { PostgresBroadcaster } = await import("../broadcast/postgres.ts");
      const postgresConfig = await import("../postgres/options.ts");
      broadcasters.push(
        new PostgresBroadcaster(
          { postgres: postgresConfig.fromConfig(config), delivered: handlers.delivered },
          handlers.cluster,
          logger,
        ),
      );
    } else if (adapter === "nats") {
      const { NatsBroadcaster } = await import("../broadcast/nats.ts");
      broadcasters.push(
        new NatsBroadcaster(
          { nats: natsConfig.fromConfig(config), channel: opts.nats.channel },
          handlers.local,
          logger,
        ),
      );
    }
  }
  const log = logger.with({ context: "main" });
  for (const adapter of unservedAdapters(config)) {
    log.warn(
      `broadcast adapter "${adapter}" is not served yet by anycable-ts: only "http", "redis", "redisx", "nats" and "postgres" accept publications`,
    );
  }
  return broadcasters;
}
