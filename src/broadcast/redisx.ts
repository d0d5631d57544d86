// The `redisx` broadcast adapter: publications arrive in a Redis stream (`--redisx_stream`,
// `__anycable__`) read through a consumer group (`--redisx_group`, `bx`), so each one reaches ONE
// node, which passes it through the broker and pub/sub to every node (not fan-out). anycable-rb's
// redisx adapter writes them with `XADD <stream> * payload <json>` (the HTTP broadcast JSON).
//
// As anycable-go's redis/streamer.go: the group is created at `$` with MKSTREAM; a loop reads with
// XREADGROUP ... BLOCK <block ms> and, once per block interval, XAUTOCLAIMs entries of any consumer
// idle longer than that (a node that died mid-way: its entries are taken over); a handled entry is
// XACKed and XDELed, one whose handling failed stays pending and is claimed again (at-least-once);
// on shutdown the consumer leaves the group (XGROUP DELCONSUMER).
// Unlike anycable-go, whose reader stops for good after its reconnect attempts, the loop never
// ends before shutdown: it retries with a capped backoff (2^n s, at most 8-16 s); an unparsable
// entry is counted (failed_broadcast_msg_total), acked and deleted instead of being retried
// forever; a group that vanished (Redis restarted without its data) is created again from the
// start of the stream, so entries added before this node noticed are not skipped; and a consumer
// that still has pending entries at shutdown is left in the group so another node claims them.
import { BurstLog } from "../log/burst_log.ts";
import { compact, type Logger } from "../log/logger.ts";
import { describeTarget } from "../redis/connection.ts";
import type { Options as RedisOptions } from "../redis/options.ts";
import { type RedisClient, RedisSupervisor } from "../redis/supervisor.ts";
import type { Broadcaster, PublicationHandler } from "./broadcaster.ts";
import { parsePublication } from "./publication.ts";
import { nextRetryMs } from "./retry.ts";

export interface RedisxOptions {
  redis: RedisOptions;
  stream: string;
  group: string;
  /** XREADGROUP's BLOCK, also the idle time after which pending entries are claimed (ms). */
  blockMs: number;
  /** This node's consumer name in the group (default: 6 random characters, as anycable-go). */
  consumer?: string;
}

interface Entry {
  id: string;
  message: Record<string, string>;
}

/** Backoff steps beyond this repeat its delay (8-16 s). */
const CAP_STEP = 3;
/** XAUTOCLAIM's COUNT, Redis's default. */
const CLAIM_COUNT = 100;

const ALPHABET = "_-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

export function randomConsumerName(length = 6): string {
  const bytes = crypto.getRandomValues(new Uint8Array(length));
  let name = "";
  for (const b of bytes) name += ALPHABET[b & 63];
  return name;
}

export class RedisxBroadcaster implements Broadcaster {
  readonly name = "broadcaster (redisx)";
  readonly fanout = false;
  readonly consumer: string;
  private readonly log: Logger;
  private readonly failures: BurstLog;
  private supervisor?: RedisSupervisor;
  private reader?: RedisClient;
  private commands?: RedisClient;
  private readerId: number | undefined;
  private groupReady = false;
  /** After the group vanished: create it again from the stream's start, not at `$`. */
  private groupLost = false;
  private stopped = false;
  private blocked = false;
  private loop?: Promise<void>;
  private readonly acks = new Set<Promise<void>>();
  private readonly wakers = new Set<() => void>();

  constructor(
    private readonly opts: RedisxOptions,
    private readonly handler: PublicationHandler,
    logger: Logger,
  ) {
    this.consumer = opts.consumer ?? randomConsumerName();
    this.log = logger.with({ context: "broadcast", provider: "redisx", consumer: this.consumer });
    this.failures = new BurstLog(this.log, {
      recovered: "reading the Redis stream again",
      countKey: "failures",
      level: "error",
    });
  }

  /** Connects and reads in the background; never fatal (it retries until shutdown). */
  async start(fatal: (err: Error) => void): Promise<void> {
    if (this.supervisor) return;
    const supervisor = new RedisSupervisor(this.opts.redis, this.log, fatal, {
      policy: { kind: "forever", capStep: CAP_STEP },
      recoveredAttrs: { stream: this.opts.stream },
    });
    this.supervisor = supervisor;
    this.reader = supervisor.create("reader");
    this.commands = supervisor.create("commands");
    this.reader.on("ready", () => {
      this.readerId = undefined;
      this.wake();
    });
    this.commands.on("ready", () => this.wake());
    supervisor.connect(this.reader);
    supervisor.connect(this.commands);
    this.log.info(`Starting Redis broadcaster at ${describeTarget(this.opts.redis)}`, {
      stream: this.opts.stream,
    });
    this.loop = this.run();
  }

  async shutdown(deadline?: AbortSignal): Promise<void> {
    if (this.stopped || !this.supervisor) {
      this.stopped = true;
      return;
    }
    this.stopped = true;
    this.wake();
    const commands = this.commands;
    // A blocked XREADGROUP returns at once (with nothing) when another connection unblocks it.
    if (this.blocked && this.readerId !== undefined && commands?.isReady) {
      await commands.sendCommand(["CLIENT", "UNBLOCK", String(this.readerId)]).catch(() => {});
    }
    await withDeadline(this.loop ?? Promise.resolve(), deadline);
    await withDeadline(Promise.all(this.acks), deadline);
    if (commands?.isReady && this.groupReady) await this.leaveGroup(commands);
    await this.supervisor.close();
  }

  private async leaveGroup(commands: RedisClient): Promise<void> {
    const { stream, group } = this.opts;
    try {
      const pending = await commands.xPendingRange(stream, group, "-", "+", 1, { consumer: this.consumer });
      if (pending.length > 0) {
        this.log.info("leaving pending entries in the group for other consumers to claim");
        return;
      }
      await commands.xGroupDelConsumer(stream, group, this.consumer);
    } catch (err) {
      this.log.error("failed to remove Redis stream consumer", { error: (err as Error).message });
    }
  }

  private wake(): void {
    for (const w of this.wakers) w();
    this.wakers.clear();
  }

  /** Resolves on the next wake() (a connection came up, shutdown) or after `ms`. */
  private pause(ms?: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = ms === undefined ? undefined : setTimeout(done, ms);
      function done() {
        if (timer) clearTimeout(timer);
        resolve();
      }
      this.wakers.add(done);
    });
  }

  private async run(): Promise<void> {
    let errors = 0;
    let lastClaimedAt = 0;
    while (!this.stopped) {
      const reader = this.reader as RedisClient;
      const commands = this.commands as RedisClient;
      if (!reader.isReady || !commands.isReady) {
        // The supervisor reconnects and logs; wait for it.
        await this.pause(1000);
        continue;
      }
      try {
        if (!this.groupReady) await this.createGroup(reader);
        if (this.readerId === undefined) this.readerId = await reader.clientId();
        const { blockMs } = this.opts;
        if (Date.now() - lastClaimedAt > blockMs) {
          const claimed = await reader.xAutoClaim(
            this.opts.stream,
            this.opts.group,
            this.consumer,
            blockMs,
            "0-0",
            { COUNT: CLAIM_COUNT },
          );
          lastClaimedAt = Date.now();
          const entries = claimed.messages.filter((m): m is Entry => m !== null);
          if (entries.length > 0) {
            this.log.debug("reclaimed messages", { size: entries.length });
            this.handleEntries(entries);
          }
        }
        if (this.stopped) break;
        this.blocked = true;
        const read = await reader
          .xReadGroup(this.opts.group, this.consumer, { key: this.opts.stream, id: ">" }, { BLOCK: blockMs })
          .finally(() => {
            this.blocked = false;
          });
        for (const s of read ?? []) this.handleEntries(s.messages as Entry[]);
        errors = 0;
        this.failures.success();
      } catch (err) {
        if (this.stopped) break;
        const message = (err as Error).message ?? String(err);
        if (message.startsWith("NOGROUP")) {
          if (this.groupReady) this.log.info("the Redis consumer group is gone: creating it again");
          this.groupReady = false;
          this.groupLost = true;
          continue;
        }
        // A lost connection is the supervisor's to report; anything else is ours.
        if (reader.isReady && commands.isReady)
          this.failures.failure("failed to read from Redis stream", { error: message });
        await this.pause(nextRetryMs(Math.min(errors++, CAP_STEP)));
      }
    }
  }

  private async createGroup(reader: RedisClient): Promise<void> {
    const { stream, group } = this.opts;
    try {
      await reader.xGroupCreate(stream, group, this.groupLost ? "0" : "$", { MKSTREAM: true });
      this.log.debug("created Redis consumer group", { group });
    } catch (err) {
      if (!(err as Error).message?.startsWith("BUSYGROUP")) throw err;
      this.log.debug("Redis consumer group already exists", { group });
    }
    this.groupReady = true;
  }

  private handleEntries(entries: Entry[]): void {
    for (const entry of entries) {
      const payload = entry.message.payload;
      if (typeof payload !== "string") {
        this.handler.handleInvalid();
        this.log.warn("Redis stream entry has no payload field", { id: entry.id });
        this.ack(entry.id);
        continue;
      }
      const parsed = parsePublication(payload);
      if (!parsed.ok) {
        this.handler.handleInvalid();
        this.log.warn("failed to parse broadcast", { data: compact(payload), error: parsed.error });
        this.ack(entry.id);
        continue;
      }
      this.log.debug("received broadcast");
      try {
        this.handler.handle(parsed.value);
      } catch (err) {
        // Left pending: claimed again after the block interval.
        this.log.error("Redis stream handler failed", { id: entry.id, error: (err as Error).message });
        continue;
      }
      this.ack(entry.id);
    }
  }

  private ack(id: string): void {
    const commands = this.commands;
    if (!commands?.isReady) return; // stays pending, claimed again later
    const { stream, group } = this.opts;
    const op = Promise.all([commands.xAck(stream, group, id), commands.xDel(stream, id)]).then(
      () => {},
      (err: Error) => this.log.error("failed to ack message", { id, error: err.message }),
    );
    this.acks.add(op);
    op.finally(() => this.acks.delete(op));
  }
}

async function withDeadline(p: Promise<unknown>, deadline?: AbortSignal): Promise<void> {
  if (!deadline) {
    await p;
    return;
  }
  if (deadline.aborted) return;
  await new Promise<void>((resolve) => {
    const done = () => {
      deadline.removeEventListener("abort", done);
      resolve();
    };
    deadline.addEventListener("abort", done);
    p.then(done, done);
  });
}
