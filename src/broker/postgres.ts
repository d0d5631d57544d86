// The PostgreSQL broker (--broker=postgres; anycable's Postgres PR has none): stream history,
// offsets and the epoch, session snapshots and presence kept in tables (postgres/broker_schema.ts),
// so every node of a cluster serves the same history, restores any node's sessions and shows one
// presence list, with nothing but the application's database. Unlike Redis and NATS, history is
// durable: it survives a database restart, and --history_ttl / --history_limit may keep it for days.
//
// Offsets: publications are written in batches, one statement per batch and one batch in flight
// per node (so a node's publications of a stream get their offsets in the order they came in): the
// statement adds each stream's count to its counter row (INSERT ... ON CONFLICT DO UPDATE, rows
// locked in stream-name order so two nodes never deadlock), appends the kept messages with their
// offsets and drops what falls out of --history_limit. One counter row per stream means offsets
// never repeat within an epoch; a stream idle for 10 history TTLs loses its row, and a stream made
// again starts above every offset a dropped one gave out (the offset floor in the meta row).
//
// Time: as the Redis broker, from this node's clock (the `now` option), compared on every read, so
// expiry is exact whether or not pruning has run yet. Pruning (history past its TTL, expired
// sessions, idle streams, expired presence with its leaves) runs from the cable's ticker in
// batches, by one node at a time (pg_try_advisory_xact_lock); each expired presence record's leave
// is reported by the one transaction that deleted it.
//
// Faults: no socket callback waits on PostgreSQL beyond CALL_TIMEOUT_MS (history, restore and
// presence get error values); publications never wait longer for their offsets: one PostgreSQL
// could not number in time is delivered without one, and the first batch numbered after that starts
// a new epoch, so a client resuming from before it gets reject_history rather than a gap it cannot
// see. The `postgres` client reconnects by itself; nothing here is fatal after startup.
import type { TransactionSql } from "postgres";
import type { RemoteCommand, StreamMessage, StreamPublication } from "../broadcast/publication.ts";
import { nanoid } from "../http/request.ts";
import type { Logger } from "../log/logger.ts";
import type { Counter, Metrics } from "../metrics/registry.ts";
import { brokerTables, ensureBrokerSchema } from "../postgres/broker_schema.ts";
import {
  type AcquireOptions,
  acquire,
  describePostgresUrl,
  type Lease,
  type Sql,
} from "../postgres/connection.ts";
import type { Options as PostgresOptions } from "../postgres/options.ts";
import type { PubSub } from "../pubsub/pubsub.ts";
import {
  type Broker,
  type BrokerError,
  type HistoryError,
  historyUnavailable,
  operationFailed,
  type PresenceEvent,
  type PresenceInfo,
  type PresenceRecord,
  type Presenter,
  presenceProblem,
  tellPresenter,
  withInfo,
} from "./broker.ts";
import { BrokerTimeout, OrderedDelivery, type Slot, withTimeout } from "./ordered_delivery.ts";

export interface PostgresBrokerOptions {
  postgres: PostgresOptions;
  pubsub: PubSub;
  presenter?: Presenter;
  historyLimit: number;
  historyTtlSec: number;
  /** 0: sessions are not kept. */
  sessionsTtlSec: number;
  presenceTtlSec: number;
  /** The clock in ms (tests move it by hand). */
  now?: () => number;
  /** How long a call may take before its caller gets an error value (default CALL_TIMEOUT_MS). */
  callTimeoutMs?: number;
  /** Pool options (tests standing in for separate nodes use private pools). */
  connection?: AcquireOptions;
}

/** Longest wait of a socket path on PostgreSQL (history, restore, presence) and of an offset. */
export const CALL_TIMEOUT_MS = 2000;
/** A stream's counter row outlives its history this many TTLs, so an idle stream keeps its numbering. */
const STREAM_KEEP_TTLS = 10;
/** Rows deleted per pruning statement, and statements per kind per prune. */
const PRUNE_BATCH = 1000;
const PRUNE_ROUNDS = 10;
/** Presence sessions expired per sweep transaction, and transactions per sweep. */
const SWEEP_BATCH = 256;
const SWEEP_ROUNDS = 8;
/** History, sessions and idle streams are pruned at most this often (presence every tick). */
const PRUNE_EVERY_MS = 10_000;
/** Publications waiting for a batch beyond this go out without offsets at once. */
const MAX_WAITING = 10_000;
/**
 * Stream names longer than this (UTF-8 bytes) get no history: a btree key is limited to ~2.7 kB.
 * Their publications go out without offsets (nothing is lost that was ever kept).
 */
export const MAX_STREAM_BYTES = 2048;
export const ERRORS_METRIC = "broker_errors_total";

interface Waiting {
  slot: Slot;
  publication: StreamPublication;
  /** This node's time when it was handed in: its history entry's created_at. */
  at: number;
}

interface HistoryRow {
  epoch: string | null;
  last: string | null;
  low: string | null;
  entries: string | null;
}

const encoder = new TextEncoder();

/** Text PostgreSQL cannot keep (NUL) or a key too long for an index. */
function unstorable(stream: string): boolean {
  return stream.includes("\0") || stream === "" || encoder.encode(stream).length > MAX_STREAM_BYTES;
}

export class PostgresBroker implements Broker {
  readonly name = "broker (postgres)";
  readonly supportsHistory = true;
  readonly supportsPresence = true;

  private readonly log: Logger;
  private readonly now: () => number;
  private readonly timeoutMs: number;
  private readonly sessionsTtlMs: number;
  private readonly presenceTtlMs: number;
  private readonly errors: Counter | undefined;
  private readonly t: ReturnType<typeof brokerTables>;
  /** The key of the pruning advisory lock (per table prefix). */
  private readonly pruneLock: string;
  private lease?: Lease;
  private sql?: Sql;
  /** Publications waiting for their offsets, in the order they were handed in. */
  private readonly outgoing: OrderedDelivery;
  /** Numbered publications not yet in a batch. */
  private waiting: Waiting[] = [];
  private writing: Promise<void> | undefined;
  /** Set when a publication went out without the offset it should have had: the next batch changes the epoch. */
  private lost = false;
  private sweeping: Promise<void> | undefined;
  private lastPrune = 0;
  /** Publications handed in / gone on to pub/sub since start: what drained() compares. */
  private handedIn = 0;
  private handedOn = 0;
  private readonly drainWaiters: Array<{ target: number; resolve: () => void }> = [];
  /** Touches in flight: expiry and restores wait for them (a touch must not lose to a sweep). */
  private readonly touches = new Set<Promise<unknown>>();
  private stopped = false;

  constructor(
    private readonly o: PostgresBrokerOptions,
    logger: Logger,
    metrics?: Metrics,
  ) {
    this.log = logger.with({ context: "broker" });
    this.now = o.now ?? Date.now;
    this.timeoutMs = o.callTimeoutMs ?? CALL_TIMEOUT_MS;
    this.outgoing = new OrderedDelivery((m) => {
      o.pubsub.broadcast(m);
      this.handedOn++;
      this.wakeDrainWaiters();
    }, this.timeoutMs);
    this.sessionsTtlMs = o.sessionsTtlSec * 1000;
    this.presenceTtlMs = o.presenceTtlSec * 1000;
    this.t = brokerTables(o.postgres.brokerTablePrefix);
    this.pruneLock = `${o.postgres.brokerTablePrefix}:prune`;
    this.errors = metrics?.counter(
      ERRORS_METRIC,
      "The total number of broker operations that failed (engine unreachable, slow or holding foreign data)",
    );
  }

  announce(): string {
    return (
      `Using PostgreSQL broker at ${describePostgresUrl(this.o.postgres.url)} (history limit: ${this.o.historyLimit}, ` +
      `history ttl: ${this.o.historyTtlSec}s, sessions ttl: ${this.o.sessionsTtlSec}s, ` +
      `presence ttl: ${this.o.presenceTtlSec}s)`
    );
  }

  /**
   * Connects and ensures the broker's tables (--postgres_startup_max_attempts tries, as the other
   * PostgreSQL parts: a database that never answers fails the start in one line), and makes sure
   * the epoch row exists.
   */
  async start(_fatal: (err: Error) => void): Promise<void> {
    if (this.lease || this.stopped) return;
    const pg = this.o.postgres;
    this.log.info(`Starting PostgreSQL broker: ${describePostgresUrl(pg.url)}`, {
      tables: `${pg.brokerTablePrefix}_*`,
    });
    const lease = await acquire(pg, this.log, this.o.connection, {
      key: `broker:${pg.brokerTablePrefix}`,
      label: "broker",
      ensure: (sql) => ensureBrokerSchema(sql, pg.brokerTablePrefix, pg.ensureSchema),
    });
    if (this.stopped) {
      await lease.release();
      return;
    }
    this.lease = lease;
    this.sql = lease.sql;
    await this.ensureEpoch();
    this.write();
  }

  async shutdown(deadline?: AbortSignal): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    // What still waits for an offset goes out without one rather than not at all.
    for (const w of this.waiting.splice(0)) this.outgoing.settle(w.slot, w.publication);
    this.outgoing.flushAll();
    this.wakeDrainWaiters();
    await settle(Promise.all([this.writing, this.sweeping, ...this.touches]), deadline);
    await this.lease?.release();
  }

  /** The epoch in the meta row (tests; the first node to start writes it). */
  async epoch(): Promise<string | undefined> {
    const sql = this.sql;
    if (!sql) return undefined;
    const [row] = await sql<{ epoch: string }[]>`SELECT epoch FROM ${sql.unsafe(this.t.meta)} WHERE id = 1`;
    return row?.epoch;
  }

  private async ensureEpoch(): Promise<void> {
    const sql = this.sql;
    if (!sql) return;
    await sql`INSERT INTO ${sql.unsafe(this.t.meta)} (id, epoch) VALUES (1, ${nanoid(4)}) ON CONFLICT (id) DO NOTHING`;
  }

  handleBroadcast(publication: StreamPublication): void {
    this.handedIn++;
    const slot = this.outgoing.add(publication);
    if (publication.transient || this.stopped || unstorable(publication.stream)) {
      this.outgoing.settle(slot, publication);
      return;
    }
    if (publication.dataJson.includes("\0") || this.waiting.length >= MAX_WAITING) {
      this.failed("publish", new Error("a publication PostgreSQL cannot keep (or too many waiting)"));
      this.lost = true;
      this.outgoing.settle(slot, publication);
      return;
    }
    this.waiting.push({ slot, publication, at: this.now() });
    this.write();
  }

  handleCommand(command: RemoteCommand): void {
    this.o.pubsub.broadcastCommand(command);
  }

  async drained(): Promise<void> {
    if (this.stopped || this.handedOn >= this.handedIn) return;
    const target = this.handedIn;
    await new Promise<void>((resolve) => this.drainWaiters.push({ target, resolve }));
  }

  private wakeDrainWaiters(): void {
    for (let i = this.drainWaiters.length - 1; i >= 0; i--) {
      const w = this.drainWaiters[i]!;
      if (this.stopped || this.handedOn >= w.target) {
        this.drainWaiters.splice(i, 1);
        w.resolve();
      }
    }
  }

  /** One batch in flight at a time: a node's offsets follow the order of its publications. */
  private write(): void {
    if (this.writing || !this.sql || this.waiting.length === 0) return;
    this.writing = this.writeLoop().finally(() => {
      this.writing = undefined;
      if (!this.stopped) this.write();
    });
  }

  private async writeLoop(): Promise<void> {
    while (this.waiting.length > 0 && !this.stopped) {
      const batch = this.waiting.splice(0, Math.max(1, this.o.postgres.batchSize));
      // Publications the ticker already gave up on went out without offsets: skip them.
      const live = batch.filter((w) => !w.slot.message);
      if (live.length < batch.length) this.lost = true;
      if (live.length === 0) continue;
      try {
        const offsets = await this.timed(this.publishBatch(live));
        for (let i = 0; i < live.length; i++) {
          const w = live[i]!;
          const got = offsets[i];
          // A slot the ticker gave up on meanwhile stays as it went out.
          if (got && !w.slot.message) this.outgoing.settle(w.slot, { ...w.publication, ...got });
          else {
            if (!got) this.lost = true;
            this.outgoing.settle(w.slot, w.publication);
          }
        }
      } catch (err) {
        this.failed("publish", err as Error);
        this.lost = true;
        for (const w of live) this.outgoing.settle(w.slot, w.publication);
      }
    }
  }

  /** Numbers and stores one batch; the offsets and epoch in the batch's order. */
  private async publishBatch(
    batch: Waiting[],
  ): Promise<Array<{ offset: number; epoch: string } | undefined>> {
    const sql = this.sql;
    if (!sql) throw new Error("broker is not started");
    const t = this.t;
    const now = this.now();
    const limit = Math.max(1, this.o.historyLimit);
    const streams = batch.map((w) => w.publication.stream);
    const data = batch.map((w) => w.publication.dataJson);
    const times = batch.map((w) => w.at / 1000);
    const renewEpoch = this.lost;
    const run = async (q: Sql | TransactionSql) =>
      q<{ ord: string; offset: string; epoch: string }[]>`
      WITH input AS (
        SELECT i.stream, i.data, to_timestamp(i.at) AS at, i.ord
        FROM unnest(${streams}::text[], ${data}::text[], ${times}::float8[]) WITH ORDINALITY AS i(stream, data, at, ord)
      ), counts AS (
        SELECT stream, count(*)::bigint AS n FROM input GROUP BY stream
      ), meta AS (
        SELECT epoch, offset_floor FROM ${q.unsafe(t.meta)} WHERE id = 1 FOR KEY SHARE
      ), taken AS (
        INSERT INTO ${q.unsafe(t.streams)} AS s (stream, last_offset, published_at)
        SELECT c.stream, m.offset_floor + c.n, to_timestamp(${now}::float8 / 1000) FROM counts c, meta m
        ORDER BY c.stream
        ON CONFLICT (stream) DO UPDATE
          SET last_offset = s.last_offset + EXCLUDED.last_offset - (SELECT offset_floor FROM meta),
              published_at = EXCLUDED.published_at
        RETURNING s.stream, s.last_offset AS last
      ), numbered AS (
        SELECT i.ord, i.stream, i.data, i.at, t.last,
               t.last - c.n + row_number() OVER (PARTITION BY i.stream ORDER BY i.ord) AS "offset"
        FROM input i JOIN counts c ON c.stream = i.stream JOIN taken t ON t.stream = i.stream
      ), kept AS (
        INSERT INTO ${q.unsafe(t.history)} (stream, "offset", data, created_at)
        SELECT stream, "offset", data, at FROM numbered
        WHERE "offset" > last - ${limit}
        ORDER BY stream, "offset"
      ), trimmed AS (
        DELETE FROM ${q.unsafe(t.history)} h USING taken t
        WHERE h.stream = t.stream AND h."offset" <= t.last - ${limit}
      )
      SELECT n.ord, n."offset", (SELECT epoch FROM meta) AS epoch FROM numbered n ORDER BY n.ord`;
    let rows: { ord: string; offset: string; epoch: string }[];
    if (renewEpoch) {
      // Publications went out unnumbered: under a new epoch nobody resumes across that gap.
      const epoch = nanoid(4);
      rows = await sql.begin(async (tx) => {
        await tx`UPDATE ${tx.unsafe(t.meta)} SET epoch = ${epoch}, updated_at = now() WHERE id = 1`;
        return await run(tx);
      });
      this.lost = false;
      this.log.info("PostgreSQL broker: publications went out without offsets; new epoch", { epoch });
    } else {
      rows = await run(sql);
    }
    if (rows.length === 0) {
      // No meta row (deleted under us): written again, with a new epoch.
      await this.ensureEpoch();
      throw new Error(`the broker's meta row in ${t.plain.meta} is missing`);
    }
    const out: Array<{ offset: number; epoch: string } | undefined> = new Array(batch.length);
    for (const r of rows) out[Number(r.ord) - 1] = { offset: Number(r.offset), epoch: r.epoch };
    return out;
  }

  async historyFrom(stream: string, epoch: string, offset: number): Promise<StreamMessage[] | HistoryError> {
    if (!Number.isSafeInteger(offset) || offset < 0) return { error: `invalid offset: ${offset}` };
    if (typeof epoch !== "string" || epoch === "") return { error: `unknown epoch: ${epoch}` };
    const sql = this.sql;
    if (!sql) return { error: "broker is not started" };
    if (unstorable(stream)) return { error: "stream not found" };
    const t = this.t;
    const limit = Math.max(1, this.o.historyLimit);
    const oldest = this.oldestKept(this.now());
    let row: HistoryRow | undefined;
    try {
      [row] = await this.timed(sql<HistoryRow[]>`
        WITH s AS (
          SELECT last_offset FROM ${sql.unsafe(t.streams)} WHERE stream = ${stream}
        ), kept AS (
          SELECT min(h."offset") AS low FROM ${sql.unsafe(t.history)} h, s
          WHERE h.stream = ${stream} AND h."offset" > s.last_offset - ${limit}
            AND h.created_at >= to_timestamp(${oldest}::float8 / 1000)
        )
        SELECT m.epoch, (SELECT last_offset FROM s)::text AS last, (SELECT low FROM kept)::text AS low,
          CASE WHEN m.epoch = ${epoch} THEN (
            SELECT json_agg(json_build_array(h."offset", h.data) ORDER BY h."offset")::text
            FROM ${sql.unsafe(t.history)} h, s, kept
            WHERE kept.low <= ${offset} AND ${offset} <= s.last_offset
              AND h.stream = ${stream} AND h."offset" > ${offset} AND h."offset" > s.last_offset - ${limit}
              AND h.created_at >= to_timestamp(${oldest}::float8 / 1000)
          ) END AS entries
        FROM ${sql.unsafe(t.meta)} m WHERE m.id = 1`);
    } catch (err) {
      return this.historyFailed(err as Error);
    }
    if (!row || row.epoch !== epoch)
      return { error: `unknown epoch: ${epoch}, current: ${row?.epoch ?? ""}` };
    if (row.last === null) return { error: "stream not found" };
    if (row.low === null) return { error: "stream is empty" };
    const low = Number(row.low);
    if (low > offset) return { error: `requested offset couldn't be found: ${offset}, lowest: ${low}` };
    if (offset > Number(row.last)) {
      return { error: `requested offset couldn't be found: ${offset}, latest: ${row.last}` };
    }
    return this.entries(stream, epoch, row.entries);
  }

  async historySince(stream: string, sinceUnixSec: number): Promise<StreamMessage[] | HistoryError> {
    if (Number.isNaN(sinceUnixSec)) return { error: "invalid since" };
    const sql = this.sql;
    if (!sql) return { error: "broker is not started" };
    if (unstorable(stream)) return [];
    const t = this.t;
    const limit = Math.max(1, this.o.historyLimit);
    const now = this.now();
    const from = Math.max(this.oldestKept(now), sinceUnixSec * 1000);
    // Nothing is kept from the future (and PostgreSQL's timestamps end in 294276).
    if (!Number.isFinite(from) || from > now + 86_400_000) return [];
    let row: { epoch: string | null; entries: string | null } | undefined;
    try {
      [row] = await this.timed(sql<{ epoch: string | null; entries: string | null }[]>`
        SELECT m.epoch, (
          SELECT json_agg(json_build_array(h."offset", h.data) ORDER BY h."offset")::text
          FROM ${sql.unsafe(t.history)} h JOIN ${sql.unsafe(t.streams)} s ON s.stream = h.stream
          WHERE h.stream = ${stream} AND h."offset" > s.last_offset - ${limit}
            AND h.created_at >= to_timestamp(${from}::float8 / 1000)
        ) AS entries
        FROM ${sql.unsafe(t.meta)} m WHERE m.id = 1`);
    } catch (err) {
      return this.historyFailed(err as Error);
    }
    if (!row?.epoch) return [];
    return this.entries(stream, row.epoch, row.entries);
  }

  async commitSession(sid: string, snapshot: string): Promise<void> {
    const sql = this.sql;
    if (this.sessionsTtlMs <= 0 || !sql) return;
    if (sid.includes("\0") || snapshot.includes("\0")) {
      this.failed("commit session", new Error("a session PostgreSQL cannot keep"));
      return;
    }
    const expires = this.now() + this.sessionsTtlMs;
    const t = this.t;
    try {
      await this.timed(sql`
        INSERT INTO ${sql.unsafe(t.sessions)} (sid, snapshot, expires_at)
        VALUES (${sid}, ${snapshot}, to_timestamp(${expires}::float8 / 1000))
        ON CONFLICT (sid) DO UPDATE SET snapshot = EXCLUDED.snapshot, expires_at = EXCLUDED.expires_at`);
    } catch (err) {
      this.failed("commit session", err as Error);
    }
  }

  async restoreSession(sid: string): Promise<string | undefined> {
    const sql = this.sql;
    if (this.sessionsTtlMs <= 0 || !sql || sid.includes("\0")) return undefined;
    const t = this.t;
    try {
      await this.timed(this.touched());
      const [row] = await this.timed(sql<{ snapshot: string }[]>`
        SELECT snapshot FROM ${sql.unsafe(t.sessions)}
        WHERE sid = ${sid} AND expires_at > to_timestamp(${this.now()}::float8 / 1000)`);
      return row?.snapshot;
    } catch (err) {
      this.failed("restore session", err as Error);
      return undefined;
    }
  }

  touchSessions(sids: readonly string[]): void {
    const sql = this.sql;
    if (this.sessionsTtlMs <= 0 || sids.length === 0 || !sql || this.stopped) return;
    const expires = this.now() + this.sessionsTtlMs;
    this.track(
      sql`UPDATE ${sql.unsafe(this.t.sessions)} SET expires_at = to_timestamp(${expires}::float8 / 1000)
          WHERE sid = ANY(${clean(sids)}::text[])`,
      "touch sessions",
    );
  }

  async presenceAdd(
    stream: string,
    sid: string,
    pid: string,
    info: unknown,
  ): Promise<PresenceEvent | undefined | BrokerError> {
    const problem = presenceProblem(pid, info);
    if (problem) return problem;
    if (pid.includes("\0") || sid.includes("\0") || unstorable(stream)) {
      return { error: "presence stream or ID cannot be stored" };
    }
    const sql = this.sql;
    if (!sql) return { error: "broker is not started" };
    const infoJson = info === undefined || info === null ? null : JSON.stringify(info);
    const expires = this.now() + this.presenceTtlMs;
    const t = this.t;
    let status: "mismatch" | "join" | "known";
    try {
      status = await this.timed(
        sql.begin(async (tx) => {
          // Lock order everywhere: the session row, then the record (see the sweep).
          const [known] = await tx<{ presence_id: string }[]>`
            SELECT presence_id FROM ${tx.unsafe(t.presenceSessions)}
            WHERE stream = ${stream} AND sid = ${sid} FOR UPDATE`;
          if (known && known.presence_id !== pid) return "mismatch" as const;
          const [record] = await tx<{ joined: boolean }[]>`
            INSERT INTO ${tx.unsafe(t.presence)} AS p (stream, presence_id, info) VALUES (${stream}, ${pid}, ${infoJson})
            ON CONFLICT (stream, presence_id) DO UPDATE SET info = EXCLUDED.info
            RETURNING (xmax = 0) AS joined`;
          if (!known) {
            await tx`
              INSERT INTO ${tx.unsafe(t.presenceSessions)} (stream, sid, presence_id, expires_at)
              VALUES (${stream}, ${sid}, ${pid}, to_timestamp(${expires}::float8 / 1000))
              ON CONFLICT (stream, sid) DO NOTHING`;
          }
          return record?.joined ? ("join" as const) : ("known" as const);
        }),
      );
    } catch (err) {
      return this.brokerFailed("presence add", err as Error);
    }
    if (status === "mismatch") return { error: "presence ID mismatch" };
    if (status !== "join") return undefined;
    const event = withInfo<PresenceEvent>({ type: "join", id: pid }, info);
    this.tell(stream, event, sid);
    return event;
  }

  async presenceRemove(stream: string, sid: string): Promise<PresenceEvent | undefined | BrokerError> {
    const sql = this.sql;
    if (!sql) return { error: "broker is not started" };
    if (sid.includes("\0") || unstorable(stream)) return { error: "stream not found" };
    const t = this.t;
    let result: { status: "nostream" | "norecord" | "stay" } | { status: "leave"; pid: string };
    try {
      result = await this.timed(
        sql.begin(async (tx) => {
          const [gone] = await tx<{ presence_id: string }[]>`
            DELETE FROM ${tx.unsafe(t.presenceSessions)} WHERE stream = ${stream} AND sid = ${sid}
            RETURNING presence_id`;
          if (!gone) {
            const [{ present }] = await tx<{ present: boolean }[]>`
              SELECT EXISTS (SELECT 1 FROM ${tx.unsafe(t.presence)} WHERE stream = ${stream}) AS present`;
            return { status: present ? ("norecord" as const) : ("nostream" as const) };
          }
          const pid = gone.presence_id;
          await tx`SELECT 1 FROM ${tx.unsafe(t.presence)} WHERE stream = ${stream} AND presence_id = ${pid} FOR UPDATE`;
          const left = await tx`
            DELETE FROM ${tx.unsafe(t.presence)} p WHERE p.stream = ${stream} AND p.presence_id = ${pid}
              AND NOT EXISTS (SELECT 1 FROM ${tx.unsafe(t.presenceSessions)} s
                              WHERE s.stream = p.stream AND s.presence_id = p.presence_id)
            RETURNING 1`;
          return left.length > 0 ? { status: "leave" as const, pid } : { status: "stay" as const };
        }),
      );
    } catch (err) {
      return this.brokerFailed("presence remove", err as Error);
    }
    if (result.status === "nostream") return { error: "stream not found" };
    if (result.status === "norecord") return { error: "presence info not found" };
    if (result.status !== "leave") return undefined;
    const event: PresenceEvent = { type: "leave", id: result.pid };
    this.tell(stream, event);
    return event;
  }

  async presenceInfo(
    stream: string,
    options: { returnRecords: boolean },
  ): Promise<PresenceInfo | BrokerError> {
    const sql = this.sql;
    if (!sql) return { error: "broker is not started" };
    if (unstorable(stream)) return { type: "info", total: 0 };
    const t = this.t;
    const now = this.now();
    try {
      // Records whose sessions all expired are left out, swept or not.
      const rows = await this.timed(sql<{ id: string; info: string | null }[]>`
        SELECT p.presence_id AS id, ${options.returnRecords ? sql`p.info` : sql`NULL::text`} AS info
        FROM ${sql.unsafe(t.presence)} p
        WHERE p.stream = ${stream} AND EXISTS (
          SELECT 1 FROM ${sql.unsafe(t.presenceSessions)} s
          WHERE s.stream = p.stream AND s.presence_id = p.presence_id
            AND s.expires_at >= to_timestamp(${now}::float8 / 1000))`);
      if (!options.returnRecords || rows.length === 0) return { type: "info", total: rows.length };
      const records: PresenceRecord[] = rows.map((r) => withInfo({ id: r.id }, this.parseInfo(r.info)));
      return { type: "info", total: records.length, records };
    } catch (err) {
      return this.brokerFailed("presence info", err as Error);
    }
  }

  touchPresence(sids: readonly string[]): void {
    const sql = this.sql;
    if (sids.length === 0 || !sql || this.stopped) return;
    const expires = this.now() + this.presenceTtlMs;
    this.track(
      sql`UPDATE ${sql.unsafe(this.t.presenceSessions)} SET expires_at = to_timestamp(${expires}::float8 / 1000)
          WHERE sid = ANY(${clean(sids)}::text[])`,
      "touch presence",
    );
  }

  expire(nowMs: number): void {
    const gaveUp = this.outgoing.expireSlow(performance.now());
    if (gaveUp > 0) {
      this.lost = true;
      this.failed(
        "publish",
        new BrokerTimeout(`${gaveUp} publication(s) sent without offsets: PostgreSQL is slow`),
      );
    }
    // A tick while the last sweep still runs is skipped: sweeps never pile up behind a slow database.
    if (this.sweeping || !this.sql || this.stopped) return;
    const prune = nowMs - this.lastPrune >= PRUNE_EVERY_MS || nowMs < this.lastPrune;
    void this.runSweep(nowMs, prune);
  }

  /**
   * Prunes history past its TTL, expired sessions and idle streams, and sweeps expired presence
   * (after the sweep running, if any); resolves when the leaves were told.
   */
  async expireNow(nowMs: number): Promise<void> {
    while (this.sweeping) await this.sweeping;
    return this.runSweep(nowMs, true);
  }

  private runSweep(nowMs: number, prune: boolean): Promise<void> {
    if (prune) this.lastPrune = nowMs;
    this.sweeping = this.sweep(nowMs, prune).finally(() => {
      this.sweeping = undefined;
    });
    return this.sweeping;
  }

  private async sweep(nowMs: number, prune: boolean): Promise<void> {
    const sql = this.sql;
    if (!sql || this.stopped) return;
    try {
      await this.timed(this.touched());
    } catch {
      // A touch that did not finish in time: sweep anyway.
    }
    try {
      for (let round = 0; round < SWEEP_ROUNDS && !this.stopped; round++) {
        const { swept, leaves } = await this.timed(this.sweepPresence(sql, nowMs));
        for (const [stream, pid] of leaves) this.tell(stream, { type: "leave", id: pid });
        if (swept < SWEEP_BATCH) break;
      }
    } catch (err) {
      this.failed("presence expiry", err as Error);
    }
    if (!prune) return;
    try {
      const pruned = await this.prune(sql, nowMs);
      if (pruned > 0) this.log.debug("PostgreSQL broker pruned expired rows", { rows: pruned });
    } catch (err) {
      this.failed("prune", err as Error);
    }
  }

  /** One transaction: expired presence sessions deleted, records left without sessions deleted. */
  private async sweepPresence(
    sql: Sql,
    nowMs: number,
  ): Promise<{ swept: number; leaves: Array<[string, string]> }> {
    const t = this.t;
    return await sql.begin(async (tx) => {
      const [{ locked }] = await tx<{ locked: boolean }[]>`
        SELECT pg_try_advisory_xact_lock(hashtextextended(${`${this.pruneLock}:presence`}, 0)) AS locked`;
      if (!locked) return { swept: 0, leaves: [] };
      const gone = await tx<{ stream: string; presence_id: string }[]>`
        DELETE FROM ${tx.unsafe(t.presenceSessions)} WHERE (stream, sid) IN (
          SELECT stream, sid FROM ${tx.unsafe(t.presenceSessions)}
          WHERE expires_at < to_timestamp(${nowMs}::float8 / 1000)
          ORDER BY expires_at LIMIT ${SWEEP_BATCH} FOR UPDATE SKIP LOCKED)
        RETURNING stream, presence_id`;
      if (gone.length === 0) return { swept: 0, leaves: [] };
      const pairs = new Map<string, [string, string]>();
      for (const g of gone) pairs.set(JSON.stringify([g.stream, g.presence_id]), [g.stream, g.presence_id]);
      const streams = [...pairs.values()].map((p) => p[0]);
      const pids = [...pairs.values()].map((p) => p[1]);
      // The records in one order, so two transactions locking several never deadlock.
      await tx`
        SELECT 1 FROM ${tx.unsafe(t.presence)} p
        JOIN unnest(${streams}::text[], ${pids}::text[]) AS g(stream, pid)
          ON p.stream = g.stream AND p.presence_id = g.pid
        ORDER BY p.stream, p.presence_id FOR UPDATE OF p`;
      const left = await tx<{ stream: string; presence_id: string }[]>`
        DELETE FROM ${tx.unsafe(t.presence)} p USING unnest(${streams}::text[], ${pids}::text[]) AS g(stream, pid)
        WHERE p.stream = g.stream AND p.presence_id = g.pid
          AND NOT EXISTS (SELECT 1 FROM ${tx.unsafe(t.presenceSessions)} s
                          WHERE s.stream = p.stream AND s.presence_id = p.presence_id)
        RETURNING p.stream, p.presence_id`;
      return { swept: gone.length, leaves: left.map((r) => [r.stream, r.presence_id] as [string, string]) };
    });
  }

  /**
   * History past its TTL, expired sessions, idle streams: in batches, by one node at a time. Rows
   * another transaction holds (a publication trimming its stream, a commit) are skipped, never
   * waited for: pruning cannot deadlock with them, so it never costs a publication its offset.
   */
  private async prune(sql: Sql, nowMs: number): Promise<number> {
    const t = this.t;
    const oldest = this.oldestKept(nowMs);
    const idleBefore = nowMs - STREAM_KEEP_TTLS * this.o.historyTtlSec * 1000;
    let total = 0;
    const batch = async (statement: (tx: TransactionSql) => Promise<number>) => {
      for (let round = 0; round < PRUNE_ROUNDS && !this.stopped; round++) {
        const n = await this.timed(
          sql.begin(async (tx) => {
            const [{ locked }] = await tx<{ locked: boolean }[]>`
              SELECT pg_try_advisory_xact_lock(hashtextextended(${this.pruneLock}, 0)) AS locked`;
            return locked ? await statement(tx) : 0;
          }),
        );
        total += n;
        if (n < PRUNE_BATCH) return;
      }
    };
    await batch(
      async (tx) =>
        (
          await tx`
        DELETE FROM ${tx.unsafe(t.history)} WHERE (stream, "offset") IN (
          SELECT stream, "offset" FROM ${tx.unsafe(t.history)}
          WHERE created_at < to_timestamp(${oldest}::float8 / 1000) LIMIT ${PRUNE_BATCH}
          FOR UPDATE SKIP LOCKED)`
        ).count,
    );
    await batch(
      async (tx) =>
        (
          await tx`
        DELETE FROM ${tx.unsafe(t.sessions)} WHERE sid IN (
          SELECT sid FROM ${tx.unsafe(t.sessions)}
          WHERE expires_at <= to_timestamp(${nowMs}::float8 / 1000) LIMIT ${PRUNE_BATCH}
          FOR UPDATE SKIP LOCKED)`
        ).count,
    );
    await batch(async (tx) => {
      // The meta row first (publishers hold it FOR KEY SHARE while they number), so a stream made
      // again right now starts above the floor raised here.
      await tx`SELECT 1 FROM ${tx.unsafe(t.meta)} WHERE id = 1 FOR UPDATE`;
      const [row] = await tx<{ n: string; top: string | null }[]>`
        WITH dropped AS (
          DELETE FROM ${tx.unsafe(t.streams)} WHERE stream IN (
            SELECT s.stream FROM ${tx.unsafe(t.streams)} s
            WHERE s.published_at < to_timestamp(${idleBefore}::float8 / 1000)
              AND NOT EXISTS (SELECT 1 FROM ${tx.unsafe(t.history)} h WHERE h.stream = s.stream)
            ORDER BY s.published_at LIMIT ${PRUNE_BATCH} FOR UPDATE SKIP LOCKED)
          RETURNING last_offset
        )
        SELECT count(*)::text AS n, max(last_offset)::text AS top FROM dropped`;
      if (row?.top != null) {
        await tx`UPDATE ${tx.unsafe(t.meta)} SET offset_floor = greatest(offset_floor, ${row.top}::bigint), updated_at = now() WHERE id = 1`;
      }
      return Number(row?.n ?? 0);
    });
    // A meta row someone deleted comes back (with a new epoch: what clients hold is gone).
    await this.ensureEpoch();
    return total;
  }

  /** Waits for the touches in flight. */
  private async touched(): Promise<void> {
    if (this.touches.size > 0) await Promise.all([...this.touches]);
  }

  private track(p: Promise<unknown>, what: string): void {
    const tracked = this.timed(p).then(
      () => {},
      (err: Error) => this.failed(what, err),
    );
    this.touches.add(tracked);
    tracked.finally(() => this.touches.delete(tracked));
  }

  /** The time (ms) of the oldest entry still within the history TTL, at second precision. */
  private oldestKept(nowMs: number): number {
    return (Math.floor(nowMs / 1000) - this.o.historyTtlSec) * 1000;
  }

  private timed<T>(p: Promise<T>): Promise<T> {
    return withTimeout(p, this.timeoutMs, "PostgreSQL");
  }

  /** json_agg's [[offset, data], ...] → messages; foreign entries are skipped and counted. */
  private entries(stream: string, epoch: string, raw: string | null): StreamMessage[] {
    if (raw === null) return [];
    let list: unknown;
    try {
      list = JSON.parse(raw);
    } catch {
      this.failed("read history", new Error(`unreadable history of stream ${stream}`));
      return [];
    }
    const out: StreamMessage[] = [];
    if (!Array.isArray(list)) return out;
    for (const e of list) {
      if (!Array.isArray(e) || typeof e[0] !== "number" || typeof e[1] !== "string") {
        this.failed("read history", new Error(`skipping a foreign entry in stream ${stream}`));
        continue;
      }
      out.push({ stream, dataJson: e[1], offset: e[0], epoch });
    }
    return out;
  }

  private parseInfo(json: string | null): unknown {
    if (json === null || json === "") return undefined;
    try {
      return JSON.parse(json);
    } catch {
      this.failed("read presence", new Error("skipping foreign presence info"));
      return undefined;
    }
  }

  private historyFailed(err: Error): HistoryError {
    this.failed("read history", err);
    return historyUnavailable(err);
  }

  private brokerFailed(what: string, err: Error): BrokerError {
    this.failed(what, err);
    return operationFailed(what, err);
  }

  private failed(what: string, err: Error): void {
    if (this.stopped) return;
    this.errors?.inc();
    this.log.debug(`PostgreSQL broker: ${what} failed`, { error: err.message });
  }

  private tell(stream: string, event: PresenceEvent, sid?: string): void {
    tellPresenter(this.o.presenter, stream, event, sid);
  }
}

/** Session ids PostgreSQL can compare (a NUL cannot be in text). */
function clean(sids: readonly string[]): string[] {
  return sids.filter((s) => !s.includes("\0"));
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
