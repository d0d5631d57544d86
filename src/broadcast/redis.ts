// The `redis` broadcast adapter: publications arrive on a Redis pub/sub channel (`__anycable__`),
// as anycable-rb's redis broadcaster sends them. Reconnects like anycable-go: a bounded number of
// attempts with its backoff, the counter reset once subscribed again; past the limit it is fatal.
import { compact, type Logger } from "../log/logger.ts";
import { describeTarget } from "../redis/connection.ts";
import type { Options as RedisOptions } from "../redis/options.ts";
import { RedisSupervisor } from "../redis/supervisor.ts";
import type { Broadcaster, PublicationHandler } from "./broadcaster.ts";
import { parsePublication } from "./publication.ts";

export interface RedisBroadcastOptions {
  redis: RedisOptions;
  channel: string;
}

/** Every node subscribes to the channel, so each publication is delivered locally (fan-out). */
export class RedisBroadcaster implements Broadcaster {
  readonly name = "broadcaster (redis)";
  readonly fanout = true;
  private supervisor?: RedisSupervisor;
  private readonly log: Logger;

  constructor(
    private readonly opts: RedisBroadcastOptions,
    private readonly handler: PublicationHandler,
    logger: Logger,
  ) {
    this.log = logger.with({ context: "broadcast", provider: "redis" });
  }

  /**
   * Connects in the background: the server does not wait for Redis to come up. `fatal` is called
   * once when Redis stays unreachable past the attempts limit.
   */
  async start(fatal: (err: Error) => void): Promise<void> {
    const { channel } = this.opts;
    const supervisor = new RedisSupervisor(this.opts.redis, this.log, fatal, {
      policy: { kind: "limited", maxAttempts: this.opts.redis.maxReconnectAttempts },
      recovered: "reconnected to Redis channel",
      recoveredAttrs: { channel },
      // anycable-go's default adapters include redis: most who meet this never meant to use it
      giveUpHint: "pass --broadcast_adapter=http if you do not use Redis",
    });
    this.supervisor = supervisor;
    const client = supervisor.create("subscriber");
    // node-redis subscribes again by itself after a reconnect. SUBSCRIBE is sent on every 'ready'
    // (nothing is sent while disconnected; node-redis skips a channel it already has), so one that
    // failed with its connection is retried on the next.
    const listener = (message: string) => this.handle(message);
    let subscribed = false;
    client.on("ready", () => {
      client
        .subscribe(channel, listener)
        .then(() => {
          if (subscribed) return;
          subscribed = true;
          this.log.info("subscribed to Redis channel", { channel });
        })
        .catch((err: Error) => this.log.debug("SUBSCRIBE failed", { error: err.message }));
    });
    supervisor.connect(client);
    this.log.info(`Accept broadcasts from Redis channel ${channel} at ${describeTarget(this.opts.redis)}`);
  }

  private handle(message: string): void {
    const parsed = parsePublication(message);
    if (!parsed.ok) {
      this.handler.handleInvalid();
      this.log.warn("failed to parse pubsub message", { data: compact(message), error: parsed.error });
      return;
    }
    this.handler.handle(parsed.value);
  }

  async shutdown(): Promise<void> {
    const supervisor = this.supervisor;
    this.supervisor = undefined;
    await supervisor?.close();
  }
}
