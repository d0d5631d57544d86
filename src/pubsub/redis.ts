// Redis pub/sub between nodes, as anycable-go's pubsub/redis.go does it, so both servers can share
// one Redis: a publication for stream S is PUBLISHed to the Redis channel named S (no prefix), and
// a node SUBSCRIBEs to S only while it has local subscribers of S; remote commands go to the
// internal channel (`__anycable_internal__`) every node subscribes to. Messages are wire.ts's JSON.
//
// Two connections: one in subscribe mode, one for PUBLISH. Neither sends anything while Redis is
// down; subscriptions are reconciled on every (re)connect (node-redis resubscribes what it had,
// this adds what was subscribed meanwhile and drops what was left), and publications made while
// Redis is unreachable wait in a bounded queue (the oldest dropped first, counted in
// pubsub_dropped_total) until the publisher connection is back.
import type { RemoteCommand, StreamMessage } from "../broadcast/publication.ts";
import { compact, type Logger } from "../log/logger.ts";
import type { Counter, Metrics } from "../metrics/registry.ts";
import { describeTarget } from "../redis/connection.ts";
import type { Options as RedisOptions } from "../redis/options.ts";
import { type RedisClient, RedisSupervisor } from "../redis/supervisor.ts";
import type { PubSub, PubSubHandler } from "./pubsub.ts";
import { decodePubSubMessage, encodeRemoteCommand, encodeStreamMessage } from "./wire.ts";

export interface RedisPubSubOptions {
  redis: RedisOptions;
  /** The internal channel for remote commands (config.derived.redisPubsubChannel). */
  channel: string;
  /** Publications kept while Redis is unreachable (default 10,000)... */
  maxQueued?: number;
  /** ...and their total size in bytes (default 16 MiB); beyond either the oldest is dropped. */
  maxQueuedBytes?: number;
}

/** anycable-go subscribes in batches of this many channels after a reconnect. */
const SUBSCRIBE_BATCH = 256;

export const DROPPED_METRIC = "pubsub_dropped_total";

export class RedisPubSub implements PubSub {
  readonly name = "pubsub (redis)";
  readonly multiNode = true;
  private readonly log: Logger;
  /** Streams with local subscribers. */
  private readonly streams = new Set<string>();
  /** Channels passed to SUBSCRIBE on the subscriber connection and not yet left. */
  private readonly issued = new Set<string>();
  private readonly queue: Array<{ channel: string; payload: string }> = [];
  private queueHead = 0;
  private queuedBytes = 0;
  private readonly maxQueued: number;
  private readonly maxQueuedBytes: number;
  private supervisor?: RedisSupervisor;
  private pub?: RedisClient;
  private sub?: RedisClient;
  private stopped = false;
  private connectedOnce = false;
  /** The subscriber's subscriptions of its current connection are acknowledged. */
  private subSynced = false;
  private syncGeneration = 0;
  private lastOp: Promise<unknown> = Promise.resolve();
  private resolveFirstSync!: () => void;
  private readonly firstSync = new Promise<void>((r) => {
    this.resolveFirstSync = r;
  });
  private readonly dropped: Counter | undefined;
  private readonly listener = (message: string) => this.receive(message);

  constructor(
    private readonly opts: RedisPubSubOptions,
    private readonly handler: PubSubHandler,
    logger: Logger,
    metrics?: Metrics,
  ) {
    this.log = logger.with({ context: "pubsub" });
    this.maxQueued = opts.maxQueued ?? 10_000;
    this.maxQueuedBytes = opts.maxQueuedBytes ?? 16 * 1024 * 1024;
    this.dropped = metrics?.counter(
      DROPPED_METRIC,
      "The total number of node-to-node messages dropped because the pub/sub engine was unreachable",
    );
  }

  /** Connects in the background; Redis unreachable past the attempts limit is fatal. */
  async start(fatal: (err: Error) => void): Promise<void> {
    if (this.supervisor) return;
    const supervisor = new RedisSupervisor(this.opts.redis, this.log, fatal, {
      policy: { kind: "limited", maxAttempts: this.opts.redis.maxReconnectAttempts },
      recoveredAttrs: { channel: this.opts.channel },
      // chosen by itself once a Redis URL is set (REDIS_URL too), as in anycable-go
      giveUpHint: "pass --pubsub=none if this node runs alone",
    });
    this.supervisor = supervisor;
    this.pub = supervisor.create("publisher");
    this.sub = supervisor.create("subscriber");
    this.pub.on("ready", () => this.flush());
    this.sub.on("ready", () => this.resync());
    supervisor.connect(this.pub);
    supervisor.connect(this.sub);
    this.log.info(`Starting Redis pub/sub: ${describeTarget(this.opts.redis)}`);
  }

  async shutdown(_deadline?: AbortSignal): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    const queued = this.queue.length - this.queueHead;
    if (queued > 0) {
      this.dropped?.inc(queued);
      this.log.warn("Redis is unreachable: dropping queued messages on shutdown", { count: queued });
    }
    this.queue.length = this.queueHead = this.queuedBytes = 0;
    this.log.debug("shutting down Redis pub/sub");
    await this.supervisor?.close();
  }

  /**
   * Resolves once the first connection's subscriptions and every SUBSCRIBE / UNSUBSCRIBE sent
   * since are acknowledged by Redis (for tests and readiness checks).
   */
  async synced(): Promise<void> {
    await this.firstSync;
    let last: Promise<unknown>;
    do {
      last = this.lastOp;
      await last;
    } while (last !== this.lastOp);
  }

  /** Both connections are up. */
  get connected(): boolean {
    return this.pub?.isReady === true && this.sub?.isReady === true;
  }

  subscribe(stream: string): void {
    if (this.streams.has(stream)) return;
    this.streams.add(stream);
    if (this.sub?.isReady) this.sendSubscribe([stream]);
  }

  unsubscribe(stream: string): void {
    if (!this.streams.delete(stream)) return;
    if (this.sub?.isReady && !this.wanted(stream)) this.sendUnsubscribe([stream]);
  }

  broadcast(message: StreamMessage): void {
    this.publish(message.stream, encodeStreamMessage(message));
  }

  broadcastCommand(command: RemoteCommand): void {
    this.publish(this.opts.channel, encodeRemoteCommand(command));
  }

  private wanted(channel: string): boolean {
    return channel === this.opts.channel || this.streams.has(channel);
  }

  private track(op: Promise<unknown>): void {
    const settled = op.then(
      () => {},
      (err: Error) => {
        if (!this.stopped) this.log.debug("Redis subscription command failed", { error: err.message });
      },
    );
    this.lastOp = Promise.all([this.lastOp, settled]).then(() => {});
  }

  private sendSubscribe(channels: string[]): void {
    const sub = this.sub;
    if (!sub) return;
    for (const c of channels) this.issued.add(c);
    this.track(sub.subscribe(channels, this.listener));
  }

  private sendUnsubscribe(channels: string[]): void {
    const sub = this.sub;
    if (!sub) return;
    this.track(
      sub.unsubscribe(channels, this.listener).then(() => {
        for (const c of channels) if (!this.wanted(c)) this.issued.delete(c);
      }),
    );
  }

  /** On every connect of the subscriber: subscribe to everything wanted, leave what is not. */
  private resync(): void {
    if (this.stopped) return;
    this.subSynced = false;
    const generation = ++this.syncGeneration;
    const stale = [...this.issued].filter((c) => !this.wanted(c));
    if (stale.length > 0) this.sendUnsubscribe(stale);
    const sub = this.sub;
    if (!sub) return;
    const internal = this.opts.channel;
    this.issued.add(internal);
    this.track(
      sub.subscribe(internal, this.listener).then(() => {
        this.log.info(this.connectedOnce ? "reconnected" : "connected", { channel: internal });
        this.connectedOnce = true;
      }),
    );
    const streams = [...this.streams];
    for (let i = 0; i < streams.length; i += SUBSCRIBE_BATCH) {
      this.sendSubscribe(streams.slice(i, i + SUBSCRIBE_BATCH));
    }
    this.lastOp.then(() => {
      this.resolveFirstSync();
      if (generation !== this.syncGeneration || !sub.isReady) return;
      this.subSynced = true;
      this.flush();
    });
  }

  /**
   * Publications go out once both connections are up and this node's own subscriptions are in
   * place (it receives its own publications through Redis); until then they are queued.
   */
  private canSend(): boolean {
    return this.pub?.isReady === true && this.sub?.isReady === true && this.subSynced;
  }

  private receive(text: string): void {
    if (this.stopped) return;
    const decoded = decodePubSubMessage(text);
    switch (decoded.kind) {
      case "broadcast":
        this.handler.broadcast(decoded.message);
        return;
      case "command":
        this.handler.executeCommand(decoded.command);
        return;
      case "ignored":
        this.log.debug("ignored pubsub message", { reason: decoded.reason });
        return;
      case "invalid":
        this.log.warn("failed to parse pubsub message", { data: compact(text), error: decoded.error });
    }
  }

  private publish(channel: string, payload: string): void {
    if (this.stopped) return;
    const pub = this.pub;
    if (pub && this.canSend() && this.queueHead === this.queue.length) {
      this.send(pub, channel, payload);
      return;
    }
    this.enqueue(channel, payload);
  }

  private send(pub: RedisClient, channel: string, payload: string): void {
    pub.publish(channel, payload).catch((err: Error) => {
      // The connection failed with the message in flight: it may or may not have gone out.
      if (this.stopped) return;
      this.dropped?.inc();
      this.log.debug("failed to publish to Redis", { channel, error: err.message });
    });
  }

  private enqueue(channel: string, payload: string): void {
    this.queue.push({ channel, payload });
    this.queuedBytes += payload.length;
    let dropped = 0;
    while (
      this.queue.length - this.queueHead > this.maxQueued ||
      (this.queuedBytes > this.maxQueuedBytes && this.queue.length - this.queueHead > 1)
    ) {
      const oldest = this.queue[this.queueHead];
      this.queue[this.queueHead++] = undefined as never;
      this.queuedBytes -= oldest.payload.length;
      dropped++;
    }
    if (dropped > 0) {
      this.dropped?.inc(dropped);
      this.compactQueue();
    }
  }

  private compactQueue(): void {
    if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
      this.queue.splice(0, this.queueHead);
      this.queueHead = 0;
    }
  }

  /** Sends what was queued while a connection was down, oldest first. */
  private flush(): void {
    const pub = this.pub;
    if (!pub || this.stopped || !this.canSend()) return;
    const queued = this.queue.length - this.queueHead;
    while (this.queueHead < this.queue.length && this.canSend()) {
      const { channel, payload } = this.queue[this.queueHead];
      this.queue[this.queueHead++] = undefined as never;
      this.queuedBytes -= payload.length;
      this.send(pub, channel, payload);
    }
    if (this.queueHead === this.queue.length) {
      this.queue.length = this.queueHead = this.queuedBytes = 0;
    } else {
      this.compactQueue();
    }
    if (queued > 0)
      this.log.info("published the messages queued while Redis was unreachable", { count: queued });
  }
}
