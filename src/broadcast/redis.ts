// The `redis` broadcast adapter: publications arrive on a Redis pub/sub channel (`__anycable__`),
// as anycable-rb's redis broadcaster sends them. Reconnects like anycable-go: a bounded number of
// attempts with its backoff, the counter reset once subscribed again; past the limit it is fatal.
import { createClient } from "redis";
import { compact, type Logger } from "../log/logger.ts";
import type { Broadcaster, PublicationHandler } from "./broadcaster.ts";
import { parsePublication } from "./publication.ts";
import { nextRetryMs } from "./retry.ts";

export interface RedisBroadcastOptions {
  url: string;
  channel: string;
  maxReconnectAttempts: number;
}

/** Every node subscribes to the channel, so each publication is delivered locally (fan-out). */
export class RedisBroadcaster implements Broadcaster {
  readonly name = "broadcaster (redis)";
  readonly fanout = true;
  private client?: { readonly isOpen: boolean; close(): Promise<unknown>; destroy(): void };
  private stopped = false;
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
    const max = this.opts.maxReconnectAttempts;
    let subscribedOnce = false;
    const client = createClient({
      url: this.opts.url,
      socket: {
        reconnectStrategy: (retries, cause) => {
          if (this.stopped) return false;
          if (retries >= max) return new Error(`Redis reconnect attempts exceeded (${cause.message})`);
          const delay = nextRetryMs(retries);
          this.log.info(`next Redis reconnect attempt in ${delay / 1000}s`, { error: cause.message });
          return delay;
        },
      },
    });
    this.client = client;
    client.on("error", (err: Error) => {
      if (!this.stopped) this.log.debug("Redis connection error", { error: err.message });
    });
    let failed = false;
    const fail = (err: Error) => {
      if (this.stopped || failed) return;
      failed = true;
      this.log.error("failed to connect to Redis", { error: err.message });
      fatal(err);
    };
    // node-redis emits 'terminated' (not 'end') once the reconnect strategy gives up; the cause
    // carries the strategy's error. A failed first connect also rejects connect() below.
    client.on("terminated", (cause: unknown) =>
      fail(cause instanceof Error ? cause : new Error("Redis reconnect attempts exceeded")),
    );
    client.on("ready", () => {
      if (subscribedOnce) this.log.info("reconnected to Redis channel", { channel: this.opts.channel });
    });
    client
      .connect()
      .then(() =>
        client
          .subscribe(this.opts.channel, (message: string) => this.handle(message))
          .then(() => {
            subscribedOnce = true;
            this.log.info("subscribed to Redis channel", { channel: this.opts.channel });
          }),
      )
      .catch((err: Error) => fail(err));
    this.log.info(`Accept broadcasts from Redis channel ${this.opts.channel}`);
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
    this.stopped = true;
    const client = this.client;
    this.client = undefined;
    if (!client) return;
    try {
      if (client.isOpen) await client.close();
      else client.destroy();
    } catch {
      // already closing: nothing to flush on a subscriber connection
    }
  }
}
