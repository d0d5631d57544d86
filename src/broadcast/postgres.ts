// The `postgres` broadcast adapter (anycable's "Postgres signalling" PR): the application publishes
// inside its own transactions with `SELECT anycable_publish(stream, payload, meta)` (or
// anycable_remote_command(payload, meta)), which stores the publication JSON, as opaque text, in the
// broadcasts table with the stream's next offset and NOTIFYs --postgres_broadcast_notify_channel.
// Nothing is visible before COMMIT, and a rolled-back publication never existed. Each row reaches
// ONE node (not fan-out), which passes it through the broker and pub/sub to every node.
//
// A node claims rows with FOR UPDATE SKIP LOCKED, only from the head of each stream (no older row
// of the stream is left, except exhausted ones under the skip policy), handles them in offset
// order and deletes them. A claim lasts --postgres_claim_timeout_seconds: the rows of a node that
// died are claimed again after it. A row whose handling failed is released and tried again, up to
// --postgres_max_attempts, then marked exhausted (kept for inspection; later rows of its stream go
// on under --postgres_exhausted_broadcast_policy=skip, wait under block); exhausted rows are
// deleted after --postgres_retention_ttl (skip only). A payload that is not a publication is
// counted (failed_broadcast_msg_total), logged and deleted: retrying cannot mend it.
//
// Read on every NOTIFY, every --postgres_poll_interval_milliseconds and after every (re)LISTEN,
// so what was committed while PostgreSQL was unreachable or the LISTEN connection was down is
// caught up from the table. Never fatal after start: it retries until shutdown, logging one line
// per burst of failures.
//
// Beyond the PR: one claim takes a stream's head row and the rows after it (up to the batch size)
// together, under the head's lock, so a busy stream is not read one row per poll; acks are one
// DELETE per batch.
import { BurstLog } from "../log/burst_log.ts";
import { compact, type Logger } from "../log/logger.ts";
import { type AcquireOptions, acquire, describePostgresUrl, type Lease } from "../postgres/connection.ts";
import { schemaNames } from "../postgres/names.ts";
import type { Options as PostgresOptions } from "../postgres/options.ts";
import type { Broadcaster, PublicationHandler } from "./broadcaster.ts";
import { parsePublication } from "./publication.ts";
import { randomConsumerName } from "./redisx.ts";

export interface PostgresBroadcastOptions {
  postgres: PostgresOptions;
  connection?: AcquireOptions;
  /**
   * Resolves once what was handed on is stored downstream (postgres pub/sub: committed): rows are
   * deleted only then, so a node dying in between loses nothing (its rows are claimed again).
   */
  delivered?: () => Promise<void>;
}

interface Claimed {
  id: string;
  stream: string;
  offset: string;
  payload: string;
  attempts: number;
}

/** last_error is cut to this many characters, as the PR does. */
const MAX_ERROR = 2048;

export class PostgresBroadcaster implements Broadcaster {
  readonly name = "broadcaster (postgres)";
  readonly fanout = false;
  private readonly log: Logger;
  private readonly failures: BurstLog;
  private readonly opts: PostgresOptions;
  private readonly table: string;
  private lease?: Lease;
  private stopped = false;
  private draining?: Promise<void>;
  private drainAgain = false;
  private pollTimer?: ReturnType<typeof setInterval>;
  private cleanupTimer?: ReturnType<typeof setInterval>;
  /** claimed_by of this broadcaster's claims: the node id, and a token of this process. */
  readonly claimId: string;
  /** Rows handled whose DELETE failed: deleted before anything else is claimed. */
  private unacked: string[] = [];
  /** A statement failed: a claim may have committed unseen; its rows are given back first. */
  private recovering = false;

  constructor(
    private readonly o: PostgresBroadcastOptions,
    private readonly handler: PublicationHandler,
    logger: Logger,
  ) {
    this.opts = o.postgres;
    this.table = schemaNames(this.opts).broadcasts;
    this.claimId = `${this.opts.claimId}#${randomConsumerName()}`;
    this.log = logger.with({ context: "broadcast", provider: "postgres" });
    this.failures = new BurstLog(this.log, {
      recovered: "reading the PostgreSQL broadcasts table again",
      countKey: "failures",
      level: "error",
    });
  }

  /** Connects and ensures the schema (a startup error if it cannot), then reads in the background. */
  async start(_fatal: (err: Error) => void): Promise<void> {
    if (this.lease || this.stopped) return;
    const lease = await acquire(this.opts, this.log, this.o.connection);
    if (this.stopped) {
      await lease.release();
      return;
    }
    this.lease = lease;
    let listened = false;
    await lease.listen(
      this.opts.broadcastChannel,
      () => this.drain(),
      () => {
        if (listened) this.log.info("listening again", { channel: this.opts.broadcastChannel });
        listened = true;
        this.drain();
      },
    );
    this.log.info(
      `Accept broadcasts from PostgreSQL table ${this.opts.broadcastsTable} at ${describePostgresUrl(this.opts.url)}`,
      { channel: this.opts.broadcastChannel },
    );
    this.pollTimer = setInterval(() => this.drain(), this.opts.pollIntervalMs);
    this.cleanupTimer = setInterval(() => this.cleanup(), this.opts.cleanupIntervalSec * 1000);
    this.drain();
  }

  async shutdown(deadline?: AbortSignal): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.pollTimer);
    clearInterval(this.cleanupTimer);
    await settle(this.draining, deadline);
    await this.lease?.release();
  }

  /** Resolves once a read pass that started after this call has finished (tests). */
  async settled(): Promise<void> {
    if (this.stopped || !this.lease) return;
    await this.draining;
    this.drain();
    await this.draining;
  }

  private drain(): void {
    if (this.stopped || !this.lease) return;
    if (this.draining) {
      this.drainAgain = true;
      return;
    }
    this.draining = this.drainLoop().finally(() => {
      this.draining = undefined;
    });
  }

  private async drainLoop(): Promise<void> {
    do {
      this.drainAgain = false;
      try {
        while (!this.stopped && (await this.claimAndHandle()) > 0) {}
        this.failures.success();
      } catch (err) {
        if (this.stopped) return;
        this.recovering = true;
        this.failures.failure("failed to read the PostgreSQL broadcasts table", {
          error: (err as Error).message,
        });
        return; // the poll timer (or the LISTEN coming back) tries again
      }
    } while (this.drainAgain && !this.stopped);
  }

  /** One claim, handled and acknowledged; returns how many rows it claimed. */
  private async claimAndHandle(): Promise<number> {
    const sql = this.lease?.sql;
    if (!sql) return 0;
    const o = this.opts;
    const t = sql.unsafe(this.table);
    const me = this.claimId;
    if (this.unacked.length > 0) {
      await sql`DELETE FROM ${t} WHERE id = ANY(${this.unacked}::bigint[]) AND claimed_by = ${me}`;
      this.unacked = [];
    }
    if (this.recovering) {
      // Claimed by this process and not being handled: a claim whose reply was lost.
      await sql`UPDATE ${t} SET claimed_by = NULL, claimed_at = NULL, attempts = GREATEST(attempts - 1, 0)
                WHERE claimed_by = ${me} AND exhausted_at IS NULL`;
      this.recovering = false;
    }
    // A node that died on a row's last attempt: that row is exhausted now, so that the skip
    // policy can move past it (a claim timing out is an attempt, as the PR counts it).
    await sql`
      UPDATE ${t} SET exhausted_at = now(), last_error = COALESCE(last_error, 'claim timed out on the last attempt')
      WHERE exhausted_at IS NULL AND attempts >= ${o.maxAttempts}
        AND claimed_at IS NOT NULL AND claimed_at < now() - make_interval(secs => ${o.claimTimeoutSec})`;
    // Heads: the oldest row left of each stream, not claimed by a live node. Followers: the rows
    // after a head, claimed with it; no other node can take them meanwhile, since it would need
    // the head first, and the head stays locked until this statement commits, claimed after.
    const rows = await sql<Claimed[]>`
      WITH heads AS (
        SELECT b.id, b.stream, b."offset" FROM ${t} b
        WHERE b.exhausted_at IS NULL AND b.attempts < ${o.maxAttempts}
          AND (b.claimed_at IS NULL OR b.claimed_at < now() - make_interval(secs => ${o.claimTimeoutSec}))
          AND NOT EXISTS (
            SELECT 1 FROM ${t} older
            WHERE older.stream = b.stream AND older."offset" < b."offset"
              AND (older.exhausted_at IS NULL OR ${o.exhaustedPolicy} = 'block'))
        ORDER BY b.id
        LIMIT ${o.batchSize}
        FOR UPDATE OF b SKIP LOCKED
      ), followers AS (
        SELECT f.id FROM ${t} f JOIN heads h ON f.stream = h.stream AND f."offset" > h."offset"
        WHERE f.exhausted_at IS NULL AND f.attempts < ${o.maxAttempts}
          AND (f.claimed_at IS NULL OR f.claimed_at < now() - make_interval(secs => ${o.claimTimeoutSec}))
        ORDER BY f.stream, f."offset"
        LIMIT ${o.batchSize}
        FOR UPDATE OF f
      ), picked AS (
        SELECT id FROM heads UNION ALL SELECT id FROM followers
      )
      UPDATE ${t} AS b
      SET claimed_by = ${me}, claimed_at = now(), attempts = b.attempts + 1, last_error = NULL
      FROM picked WHERE b.id = picked.id
      RETURNING b.id, b.stream, b."offset", b.payload, b.attempts`;
    if (rows.length === 0) return 0;
    if (this.stopped) {
      await this.unclaim(rows.map((r) => r.id));
      return 0;
    }
    const done: string[] = [];
    const skipped: string[] = [];
    for (const run of runs(rows)) {
      let failed = false;
      for (const row of run) {
        if (failed || this.stopped) {
          skipped.push(row.id); // after a failed row of its stream: not attempted
          continue;
        }
        const error = this.handleRow(row);
        if (error === undefined) {
          done.push(row.id);
          continue;
        }
        failed = true;
        await this.failed(row, error);
      }
    }
    if (done.length > 0) {
      // A broker may hand on asynchronously: let it, then wait for pub/sub to have stored it.
      await Promise.resolve();
      await this.o.delivered?.();
      try {
        await sql`DELETE FROM ${t} WHERE id = ANY(${done}::bigint[]) AND claimed_by = ${me}`;
      } catch (err) {
        // Handled: never handed on twice by this node; deleted once PostgreSQL answers again.
        this.unacked.push(...done);
        throw err;
      }
    }
    if (skipped.length > 0) await this.unclaim(skipped);
    return rows.length;
  }

  /** Hands one row on; returns the error when the handler threw. */
  private handleRow(row: Claimed): string | undefined {
    const parsed = parsePublication(row.payload);
    if (!parsed.ok) {
      this.handler.handleInvalid();
      this.log.warn("failed to parse broadcast", {
        stream: row.stream,
        offset: row.offset,
        data: compact(row.payload),
        error: parsed.error,
      });
      return undefined; // deleted: retrying cannot mend it
    }
    this.log.debug("received broadcast", { stream: row.stream, offset: row.offset });
    try {
      this.handler.handle(parsed.value);
      return undefined;
    } catch (err) {
      return ((err as Error).message ?? String(err)).slice(0, MAX_ERROR);
    }
  }

  private async failed(row: Claimed, error: string): Promise<void> {
    const sql = this.lease?.sql;
    if (!sql) return;
    const t = sql.unsafe(this.table);
    const o = this.opts;
    const me = this.claimId;
    if (row.attempts >= o.maxAttempts) {
      this.log.error("PostgreSQL broadcast attempts exhausted", {
        stream: row.stream,
        offset: row.offset,
        attempts: row.attempts,
        error,
      });
      await sql`UPDATE ${t} SET last_error = ${error}, exhausted_at = now()
                WHERE id = ${row.id} AND claimed_by = ${me}`;
      return;
    }
    this.log.warn("failed to handle PostgreSQL broadcast", {
      stream: row.stream,
      offset: row.offset,
      attempts: row.attempts,
      error,
    });
    await sql`UPDATE ${t} SET claimed_by = NULL, claimed_at = NULL, last_error = ${error}
              WHERE id = ${row.id} AND claimed_by = ${me}`;
  }

  /** Gives rows back untried (their attempt is not counted). */
  private async unclaim(ids: string[]): Promise<void> {
    const sql = this.lease?.sql;
    if (!sql || ids.length === 0) return;
    await sql`UPDATE ${sql.unsafe(this.table)}
              SET claimed_by = NULL, claimed_at = NULL, attempts = GREATEST(attempts - 1, 0)
              WHERE id = ANY(${ids}::bigint[]) AND claimed_by = ${this.claimId}`;
  }

  private cleanup(): void {
    const sql = this.lease?.sql;
    if (!sql || this.stopped || this.opts.exhaustedPolicy === "block") return;
    sql`DELETE FROM ${sql.unsafe(this.table)}
        WHERE exhausted_at IS NOT NULL AND exhausted_at < now() - make_interval(secs => ${this.opts.retentionSec})`.catch(
      (err: Error) => {
        if (!this.stopped)
          this.log.warn("failed to delete exhausted PostgreSQL broadcasts", { error: err.message });
      },
    );
  }
}

/** The claimed rows grouped by stream, each group in offset order, groups in the order of their first row. */
function runs(rows: Claimed[]): Claimed[][] {
  const groups = new Map<string, Claimed[]>();
  const sorted = [...rows].sort((a, b) => cmp(a.id, b.id));
  for (const r of sorted) {
    const g = groups.get(r.stream);
    if (g) g.push(r);
    else groups.set(r.stream, [r]);
  }
  for (const g of groups.values()) g.sort((a, b) => cmp(a.offset, b.offset));
  return [...groups.values()];
}

/** Compares two bigint columns as the client returns them (decimal strings). */
function cmp(a: string, b: string): number {
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
}

async function settle(p: Promise<unknown> | undefined, deadline?: AbortSignal): Promise<void> {
  if (!p) return;
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
