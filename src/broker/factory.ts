// The broker chosen from --broker, like anycable-go's broker factory in cli/runner_options.go.
import type { Logger } from "../log/logger.ts";
import type { PubSub } from "../pubsub/pubsub.ts";
import type { Broker, Presenter } from "./broker.ts";
import { MemoryBroker } from "./memory.ts";
import { NoBroker } from "./none.ts";
import type { Options } from "./options.ts";

export function createBroker(opts: Options, pubsub: PubSub, presenter: Presenter, log: Logger): Broker {
  switch (opts.adapter) {
    case "":
    case "none":
      return new NoBroker(pubsub);
    case "memory":
      return new MemoryBroker({
        pubsub,
        presenter,
        historyLimit: opts.historyLimit,
        historyTtlSec: opts.historyTtlSec,
        sessionsTtlSec: opts.sessionsTtlSec,
        presenceTtlSec: opts.presenceTtlSec,
        maxStreams: opts.maxStreams,
        maxSessions: opts.maxSessions,
      });
    default:
      log.warn(
        `broker "${opts.adapter}" is not served yet by anycable-ts: running without a broker (no history, sessions or presence)`,
      );
      return new NoBroker(pubsub);
  }
}
