// The broker chosen from --broker, like anycable-go's broker factory in cli/runner_options.go.
// Engine-backed brokers are imported only when chosen: their clients (node-redis, nats.js, the
// PostgreSQL client) would otherwise load into every server (see pubsub/factory.ts).
import type { Logger } from "../log/logger.ts";
import type { Metrics } from "../metrics/registry.ts";
import type { Options as NatsOptions } from "../nats/options.ts";
import type { Options as PostgresOptions } from "../postgres/options.ts";
import type { PubSub } from "../pubsub/pubsub.ts";
import type { Options as RedisOptions } from "../redis/options.ts";
import type { Broker, Presenter } from "./broker.ts";
import { MemoryBroker } from "./memory.ts";
import { NoBroker } from "./none.ts";
import type { Options } from "./options.ts";

export interface BrokerDeps {
  pubsub: PubSub;
  presenter: Presenter;
  log: Logger;
  redis: RedisOptions;
  nats: NatsOptions;
  postgres: PostgresOptions;
  metrics?: Metrics;
}

export async function createBroker(opts: Options, deps: BrokerDeps): Promise<Broker> {
  const { pubsub, presenter, log } = deps;
  // what every broker with history is given
  const shared = {
    pubsub,
    presenter,
    historyLimit: opts.historyLimit,
    historyTtlSec: opts.historyTtlSec,
    sessionsTtlSec: opts.sessionsTtlSec,
    presenceTtlSec: opts.presenceTtlSec,
  };
  switch (opts.adapter) {
    case "":
    case "none":
      return new NoBroker(pubsub);
    case "memory":
      return new MemoryBroker({
        ...shared,
        maxStreams: opts.maxStreams,
        maxSessions: opts.maxSessions,
      });
    case "redis": {
      const { RedisBroker } = await import("./redis.ts");
      return new RedisBroker(
        {
          redis: deps.redis,
          ...shared,
        },
        log,
        deps.metrics,
      );
    }
    case "nats": {
      const { NatsBroker } = await import("./nats.ts");
      return new NatsBroker(
        {
          nats: deps.nats,
          ...shared,
        },
        log,
        deps.metrics,
      );
    }
    case "postgres": {
      const { PostgresBroker } = await import("./postgres.ts");
      return new PostgresBroker(
        {
          postgres: deps.postgres,
          ...shared,
        },
        log,
        deps.metrics,
      );
    }
    default:
      log.warn(
        `broker "${opts.adapter}" is not served yet by anycable-ts: running without a broker (no history, sessions or presence)`,
      );
      return new NoBroker(pubsub);
  }
}
