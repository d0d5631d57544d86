// Node-to-node pub/sub through PostgreSQL, as anycable's "Postgres signalling" PR designs it: a
// message for stream S is a row (S, offset, payload) of the pub/sub table, the offset given out per
// stream under the offsets table's row lock; NOTIFY on --postgres_pubsub_notify_channel only wakes
// the readers ({"v":1,"stream":S,"offset":N}), so no message is limited to NOTIFY's 8,000 bytes.
// Each node keeps a cursor per stream it has local subscribers of (starting at the stream's last
// offset when the first subscriber arrives), and reads the rows after its cursors: the streams a
// NOTIFY named at once, all of them every --postgres_poll_interval_milliseconds and after every
// (re)LISTEN. Remote commands travel on the internal stream every node reads. Messages are
// wire.ts's JSON, so anycable-go nodes with the PR can share the tables.
//
// Bounded: NOTIFYs only mark streams (a set no larger than this node's streams), reads fetch at
// most --postgres_batch_size rows, and messages written while PostgreSQL is unreachable wait in a
// queue of at most 10,000 / 16 MiB (the oldest dropped first, counted in pubsub_dropped_total),
// written in batches of one statement each, in order, once it is back. A batch whose connection
// broke mid-way is written again (at least once: a row may then be delivered twice).
// Beyond the PR: writes are batched (one statement per batch, offsets for a whole batch from one
// upsert, streams locked in name order so two nodes never deadlock).
import type { RemoteCommand, StreamMessage } from "../broadcast/publication.ts";
import { nextRetryMs } from "../broadcast/retry.ts";
import { BurstLog } from "../log/burst_log.ts";
import { compact, type Logger } from "../log/logger.ts";
import type { Counter, Metrics } from "../metrics/registry.ts";
import {
  type AcquireOptions,
  acquire,
  describePostgresUrl,
  isConnectionError,
  type Lease,
} from "../postgres/connection.ts";
import { schemaNames } from "../postgres/names.ts";
import type { Options as PostgresOptions } from "../postgres/options.ts";
import type { PubSub, PubSubHandler } from "./pubsub.ts";
import { DROPPED_METRIC } from "./redis.ts";
import { decodePubSubMessage, encodeRemoteCommand, encodeStreamMessage } from "./wire.ts";

export interface PostgresPubSubOptions {
  postgres: PostgresOptions;
  maxQueued?: number;
  maxQueuedBytes?: number;
  connection?: AcquireOptions;
}

interface Cursor {
  /** The last offset handled; undefined until read from the database. */
  offset: number | undefined;
  /**
   * This node's own messages to the stream that were still queued when it got its first
   * subscriber. The cursor starts right after the last of them, learned when they are written,
   * rather than at the offset the table has when read: the node's broker already numbered them
   * and serves them as history, so a client subscribing now must not get them live as well.
   */
  ownQueued: number;
}

interface Row {
  stream: string;
  offset: string;
  payload: string;
}

const CAP_STEP = 3;

export class PostgresPubSub implements PubSub {
  readonly name = "pubsub (postgres)";
  readonly multiNode = true;
  private readonly log: Logger;
  private readonly failures: BurstLog;
  private readonly opts: PostgresOptions;
  private readonly cursors = new Map<string, Cursor>();
  /** Streams a NOTIFY or a write named since the last read. */
  private readonly changed = new Set<string>();
  private readAll = true;
  private readonly queue: Array<{ stream: string; payload: string }> = [];
  private queuedBytes = 0;
  private readonly maxQueued: number;
  private readonly maxQueuedBytes: number;
  private readonly dropped: Counter | undefined;
  private lease?: Lease;
  private stopped = false;
  private reading?: Promise<void>;
  private readAgain = false;
  private writing?: Promise<void>;
  private pollTimer?: ReturnType<typeof setInterval>;
  private cleanupTimer?: ReturnType<typeof setInterval>;
  private retryTimer?: ReturnType<typeof setTimeout>;
  private writeErrors = 0;
  /** Messages queued / written (or dropped) since start: what drained() compares. */
  private enqueued = 0;
  private settledCount = 0;
  private readonly drainWaiters: Array<{ target: number; resolve: () => void }> = [];
  private readonly q: ReturnType<typeof queries>;

  constructor(
    private readonly o: PostgresPubSubOptions,
    private readonly handler: PubSubHandler,
    logger: Logger,
    metrics?: Metrics,
  ) {
    this.opts = o.postgres;
    this.log = logger.with({ context: "pubsub", provider: "postgres" });
    this.failures = new BurstLog(this.log, {
      recovered: "reading and writing the PostgreSQL pub/sub table again",
      countKey: "failures",
      level: "error",
    });
    this.maxQueued = o.maxQueued ?? 10_000;
    this.maxQueuedBytes = o.maxQueuedBytes ?? 16 * 1024 * 1024;
    this.dropped = metrics?.counter(
      DROPPED_METRIC,
      "The total number of node-to-node messages dropped because the pub/sub engine was unreachable",
    );
    this.q = queries(this.opts);
    this.cursors.set(this.opts.internalStream, { offset: undefined, ownQueued: 0 });
  }

  async start(_fatal: (err: Error) => void): Promise<void> {
    if (this.lease || this.stopped) return;
    this.log.info(`Starting PostgreSQL pub/sub: ${describePostgresUrl(this.opts.url)}`, {
      table: this.opts.pubsubTable,
    });
    const lease = await acquire(this.opts, this.log, this.o.connection);
    if (this.stopped) {
      await lease.release();
      return;
    }
    this.lease = lease;
    let listened = false;
    await lease.listen(
      this.opts.pubsubChannel,
      (payload) => this.notified(payload),
      () => {
        // After a reconnect: what was committed while not listening is read now.
        if (listened) this.log.info("listening again", { channel: this.opts.pubsubChannel });
        listened = true;
        this.readAll = true;
        this.read();
      },
    );
    this.pollTimer = setInterval(() => {
      this.readAll = true;
      this.read();
    }, this.opts.pollIntervalMs);
    this.cleanupTimer = setInterval(() => this.cleanup(), this.opts.cleanupIntervalSec * 1000);
    this.read();
    this.write();
  }

  async shutdown(deadline?: AbortSignal): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.pollTimer);
    clearInterval(this.cleanupTimer);
    clearTimeout(this.retryTimer);
    if (this.queue.length > 0) {
      this.dropped?.inc(this.queue.length);
      this.log.warn("PostgreSQL is unreachable: dropping queued messages on shutdown", {
        count: this.queue.length,
      });
      this.queue.length = this.queuedBytes = 0;
    }
    this.settle(0); // wakes every drained() waiter: nothing more will be written
    await settle(Promise.all([this.reading, this.writing]), deadline);
    await this.lease?.release();
  }

  /** Resolves once every stream subscribed so far has its cursor and what was written so far is in. */
  async synced(): Promise<void> {
    for (;;) {
      if (this.stopped) return;
      const pending = [...this.cursors.values()].some((c) => c.offset === undefined);
      if (!pending && this.queue.length === 0 && !this.writing) return;
      if (pending) this.read();
      await Promise.all([this.reading, this.writing]);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  subscribe(stream: string): void {
    if (this.cursors.has(stream)) return;
    let ownQueued = 0;
    for (const b of this.queue) if (b.stream === stream) ownQueued++;
    this.cursors.set(stream, { offset: undefined, ownQueued });
    this.read();
  }

  unsubscribe(stream: string): void {
    if (stream === this.opts.internalStream) return;
    this.cursors.delete(stream);
    this.changed.delete(stream);
  }

  broadcast(message: StreamMessage): void {
    this.publish(message.stream, encodeStreamMessage(message));
  }

  broadcastCommand(command: RemoteCommand): void {
    this.publish(this.opts.internalStream, encodeRemoteCommand(command));
  }

  private notified(payload: string): void {
    if (this.stopped) return;
    let stream: unknown;
    try {
      stream = (JSON.parse(payload) as { stream?: unknown }).stream;
    } catch {
      stream = undefined;
    }
    if (typeof stream !== "string") this.readAll = true;
    else if (this.cursors.has(stream)) this.changed.add(stream);
    else return;
    this.read();
  }

  /** One read at a time; a wake-up during a read runs another after it. */
  private read(): void {
    if (this.stopped || !this.lease) return;
    if (this.reading) {
      this.readAgain = true;
      return;
    }
    this.reading = this.readLoop().finally(() => {
      this.reading = undefined;
    });
  }

  private async readLoop(): Promise<void> {
    do {
      this.readAgain = false;
      try {
        await this.readOnce();
        this.failures.success();
      } catch (err) {
        if (this.stopped) return;
        this.failures.failure("failed to read the PostgreSQL pub/sub table", {
          error: (err as Error).message,
        });
        // The poll timer (or the LISTEN coming back) tries again.
        this.readAll = true;
        return;
      }
    } while (this.readAgain && !this.stopped);
  }

  private async readOnce(): Promise<void> {
    const sql = this.lease?.sql;
    if (!sql) return;
    const fresh = [...this.cursors]
      .filter(([, c]) => c.offset === undefined && c.ownQueued === 0)
      .map(([s]) => s);
    if (fresh.length > 0) {
      const rows = await sql<{ stream: string; offset: string }[]>`
        SELECT s.stream, COALESCE(o."offset", 0) AS "offset"
        FROM unnest(${fresh}::text[]) AS s(stream)
        LEFT JOIN ${sql.unsafe(this.q.offsets)} o ON o.scope = 'pubsub' AND o.stream = s.stream`;
      for (const r of rows) {
        const c = this.cursors.get(r.stream);
        if (c && c.offset === undefined) c.offset = Number(r.offset);
      }
    }
    let streams: string[];
    if (this.readAll) {
      this.readAll = false;
      this.changed.clear();
      streams = [...this.cursors.keys()];
    } else {
      streams = [...this.changed];
      this.changed.clear();
    }
    while (streams.length > 0 && !this.stopped) {
      const known = streams.filter((s) => this.cursors.get(s)?.offset !== undefined);
      if (known.length === 0) return;
      const offsets = known.map((s) => String(this.cursors.get(s)?.offset));
      const limit = this.opts.batchSize;
      const rows = await sql<Row[]>`
        SELECT r.stream, r."offset", r.payload
        FROM unnest(${known}::text[], ${offsets}::bigint[]) AS c(stream, after)
        CROSS JOIN LATERAL (
          SELECT p.id, p.stream, p."offset", p.payload FROM ${sql.unsafe(this.q.pubsub)} p
          WHERE p.stream = c.stream AND p."offset" > c.after
          ORDER BY p."offset" LIMIT ${limit}
        ) r
        ORDER BY r.id
        LIMIT ${limit}`;
      // Within a stream, id order is offset order (both are taken under the stream's offset lock);
      // across streams it is the order the rows were written in.
      for (const row of rows) {
        const c = this.cursors.get(row.stream);
        const offset = Number(row.offset);
        // Unsubscribed meanwhile, or already read by an overlapping pass.
        if (!c || c.offset === undefined || offset <= c.offset) continue;
        c.offset = offset;
        this.deliver(row.payload);
      }
      // A full batch may have left rows behind: read the same streams again.
      streams = rows.length >= limit ? known : [];
    }
  }

  private deliver(payload: string): void {
    const decoded = decodePubSubMessage(payload);
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
        this.log.warn("failed to parse pubsub message", { data: compact(payload), error: decoded.error });
    }
  }

  async drained(): Promise<void> {
    if (this.stopped || this.settledCount >= this.enqueued) return;
    const target = this.enqueued;
    await new Promise<void>((resolve) => this.drainWaiters.push({ target, resolve }));
  }

  private settle(n: number): void {
    this.settledCount += n;
    for (let i = this.drainWaiters.length - 1; i >= 0; i--) {
      const w = this.drainWaiters[i];
      if (this.stopped || this.settledCount >= w.target) {
        this.drainWaiters.splice(i, 1);
        w.resolve();
      }
    }
  }

  private publish(stream: string, payload: string): void {
    if (this.stopped) return;
    this.enqueued++;
    this.queue.push({ stream, payload });
    this.queuedBytes += payload.length;
    let dropped = 0;
    while (
      this.queue.length > this.maxQueued ||
      (this.queuedBytes > this.maxQueuedBytes && this.queue.length > 1)
    ) {
      const oldest = this.queue.shift();
      if (oldest) {
        this.queuedBytes -= oldest.payload.length;
        this.forgetOwn(oldest.stream, 1);
      }
      dropped++;
    }
    if (dropped > 0) {
      this.dropped?.inc(dropped);
      this.settle(dropped);
    }
    this.write();
  }

  /** One batch in flight at a time, in order. */
  private write(): void {
    if (this.stopped || !this.lease || this.writing || this.retryTimer || this.queue.length === 0) return;
    this.writing = this.writeLoop().finally(() => {
      this.writing = undefined;
    });
  }

  private async writeLoop(): Promise<void> {
    const sql = this.lease?.sql;
    if (!sql) return;
    while (this.queue.length > 0 && !this.stopped) {
      const batch = this.queue.slice(0, this.opts.batchSize);
      let written: { stream: string; last: string }[];
      try {
        written = await sql<{ stream: string; last: string }[]>`
          WITH input AS (
            SELECT i.stream, i.payload, i.ord
            FROM unnest(${batch.map((b) => b.stream)}::text[], ${batch.map((b) => b.payload)}::text[])
              WITH ORDINALITY AS i(stream, payload, ord)
          ), counts AS (
            SELECT stream, count(*) AS n FROM input GROUP BY stream
          ), taken AS (
            INSERT INTO ${sql.unsafe(this.q.offsets)} AS o (scope, stream, "offset")
            SELECT 'pubsub', stream, n FROM counts ORDER BY stream
            ON CONFLICT (scope, stream) DO UPDATE SET "offset" = o."offset" + EXCLUDED."offset", updated_at = now()
            RETURNING o.stream, o."offset" AS last
          ), inserted AS (
            INSERT INTO ${sql.unsafe(this.q.pubsub)} (stream, "offset", payload, meta)
            SELECT i.stream, t.last - c.n + row_number() OVER (PARTITION BY i.stream ORDER BY i.ord), i.payload, '{}'
            FROM input i JOIN counts c ON c.stream = i.stream JOIN taken t ON t.stream = i.stream
            ORDER BY i.ord
          )
          SELECT stream, last FROM taken`;
      } catch (err) {
        if (this.stopped) return;
        this.failures.failure("failed to write to the PostgreSQL pub/sub table", {
          error: (err as Error).message,
        });
        if (!isConnectionError(err)) {
          // Not the connection: the same batch would fail again.
          for (const b of batch) this.forgetOwn(b.stream, 1);
          this.splice(batch.length);
          this.dropped?.inc(batch.length);
          continue;
        }
        const wait = nextRetryMs(Math.min(this.writeErrors++, CAP_STEP));
        this.retryTimer = setTimeout(() => {
          this.retryTimer = undefined;
          this.write();
        }, wait);
        return;
      }
      this.writeErrors = 0;
      this.placeCursors(batch, written);
      this.splice(batch.length);
      this.failures.success();
      // Our own rows: read them without waiting for the NOTIFY's round trip.
      for (const b of batch) if (this.cursors.has(b.stream)) this.changed.add(b.stream);
      this.read();
    }
  }

  /**
   * A batch was written: a cursor waiting for its own queued messages (see Cursor.ownQueued)
   * starts after the last of them, from the stream's last offset this batch took.
   */
  private placeCursors(
    batch: readonly { stream: string }[],
    written: readonly { stream: string; last: string }[],
  ): void {
    let waiting = false;
    for (const c of this.cursors.values()) if (c.ownQueued > 0) waiting = true;
    if (!waiting) return;
    const counts = new Map<string, number>();
    for (const b of batch) counts.set(b.stream, (counts.get(b.stream) ?? 0) + 1);
    for (const w of written) {
      const c = this.cursors.get(w.stream);
      const n = counts.get(w.stream) ?? 0;
      if (!c || c.ownQueued === 0 || c.offset !== undefined || n === 0) continue;
      if (c.ownQueued <= n) {
        // the batch's messages to the stream hold offsets last-n+1 .. last, in queue order
        c.offset = Number(w.last) - n + c.ownQueued;
        c.ownQueued = 0;
      } else c.ownQueued -= n;
    }
  }

  /** Own messages dropped unwritten: a cursor waiting for them waits for fewer. */
  private forgetOwn(stream: string, n: number): void {
    const c = this.cursors.get(stream);
    if (!c || c.ownQueued === 0) return;
    c.ownQueued = Math.max(0, c.ownQueued - n);
    if (c.ownQueued === 0 && c.offset === undefined) this.read();
  }

  private splice(n: number): void {
    for (const b of this.queue.splice(0, n)) this.queuedBytes -= b.payload.length;
    this.settle(n);
  }

  private cleanup(): void {
    const sql = this.lease?.sql;
    if (!sql || this.stopped) return;
    sql`DELETE FROM ${sql.unsafe(this.q.pubsub)}
        WHERE created_at < now() - make_interval(secs => ${this.opts.retentionSec})`.catch((err: Error) => {
      if (!this.stopped)
        this.log.warn("failed to delete old PostgreSQL pub/sub rows", { error: err.message });
    });
  }
}

function queries(o: PostgresOptions): { offsets: string; pubsub: string } {
  const n = schemaNames(o);
  return { offsets: n.offsets, pubsub: n.pubsub };
}

async function settle(p: Promise<unknown>, deadline?: AbortSignal): Promise<void> {
  const done = p.then(
    () => {},
    () => {},
  );
  if (!deadline) return done;
  if (deadline.aborted) return;
  await new Promise<void>((resolve) => {
    deadline.addEventListener("abort", () => resolve(), { once: true });
    done.then(resolve);
  });
}
