// The PostgreSQL connection the postgres broadcaster and pub/sub (and later the broker) share: one
// pool per database and schema in a process, opened by the first part that starts, with the
// schema ensured once (schema.ts), closed when the last one stops.
//
// The client is `postgres` (porsager), which reconnects by itself: a query made while the server
// is down fails (the parts retry with their own backoff and log one line per burst), the next one
// opens a new connection, and a LISTEN is issued again on the listener's new connection, calling
// the part's onListen each time so it can read what was committed while it was not listening.
//
// Startup, as anycable's PR: up to --postgres_startup_max_attempts tries at connecting and
// checking the schema, with anycable-go's backoff in between (250 ms, then 2-4 s, 4-8 s, ...),
// so a database still booting next to the server does not fail a deploy; a schema that does not
// fit fails at once (no retry mends it).
import postgres, { type Sql } from "postgres";
import { nextRetryMs } from "../broadcast/retry.ts";
import type { Logger } from "../log/logger.ts";
import type { Options } from "./options.ts";
import { type EnsureResult, ensureSchema, SchemaError } from "./schema.ts";

export type { Sql };

/** The URL as it may be logged: no password. */
export function describePostgresUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return url.replace(/\/\/([^:@/]*):[^@/]*@/, "//$1:***@");
  }
}

/** Connections kept per pool: the parts' queries are short and the client pipelines them. */
const POOL_SIZE = 4;

export interface Lease {
  readonly sql: Sql;
  /** LISTEN on `channel`; `onListen` runs after every (re)LISTEN, the first one included. */
  listen(channel: string, onNotify: (payload: string) => void, onListen: () => void): Promise<void>;
  /** Once per part: the last release closes the pool. */
  release(): Promise<void>;
}

interface Entry {
  sql: Sql;
  users: number;
  /** Startup (connect + schema check) per schema part, run once per pool. */
  ready: Map<string, Promise<void>>;
  key: string;
}

/** A set of tables a part needs ensured at startup (the signalling schema unless told otherwise). */
export interface SchemaPart {
  /** One startup per pool and key. */
  readonly key: string;
  /** What the startup line calls it. */
  readonly label: string;
  ensure(sql: Sql): Promise<EnsureResult>;
}

const pools = new Map<string, Entry>();

function keyOf(o: Options): string {
  return JSON.stringify([
    o.url,
    o.broadcastsTable,
    o.pubsubTable,
    o.offsetsTable,
    o.broadcastChannel,
    o.pubsubChannel,
    o.internalStream,
    o.ensureSchema,
  ]);
}

export interface AcquireOptions {
  /** A pool of its own (tests standing in for separate nodes in one process). */
  private?: boolean;
  /** Startup retry delays (tests); anycable-go's backoff otherwise. */
  retryDelayMs?: (step: number) => number;
}

const signalling = (o: Options): SchemaPart => ({
  key: "signalling",
  label: "signalling",
  ensure: (sql) => ensureSchema(sql, o),
});

/**
 * Opens (or joins) the pool for `o`, connected and with the schema ensured. Throws once startup
 * gave up: the message is the server's one-line reason.
 */
export async function acquire(
  o: Options,
  logger: Logger,
  ao: AcquireOptions = {},
  part: SchemaPart = signalling(o),
): Promise<Lease> {
  const key = keyOf(o);
  let entry = ao.private ? undefined : pools.get(key);
  if (!entry) {
    const sql = postgres(o.url, {
      max: POOL_SIZE,
      onnotice: () => {},
      connect_timeout: 10,
      // The parts keep no session state: a connection dropped when idle is opened again on use.
      idle_timeout: 0,
    });
    const created: Entry = { sql, users: 0, key, ready: new Map() };
    entry = created;
    if (!ao.private) pools.set(key, created);
  }
  entry.users++;
  const e = entry;
  let ready = e.ready.get(part.key);
  if (!ready) {
    ready = startup(e.sql, o, part, logger, ao.retryDelayMs ?? nextRetryMs);
    e.ready.set(part.key, ready);
  }
  let released = false;
  const release = async () => {
    if (released) return;
    released = true;
    if (--e.users > 0) return;
    if (pools.get(e.key) === e) pools.delete(e.key);
    await e.sql.end({ timeout: 1 }).catch(() => {});
  };
  try {
    await ready;
  } catch (err) {
    await release();
    throw err;
  }
  return {
    sql: e.sql,
    async listen(channel, onNotify, onListen) {
      await e.sql.listen(channel, onNotify, onListen);
    },
    release,
  };
}

async function startup(
  sql: Sql,
  o: Options,
  part: SchemaPart,
  logger: Logger,
  delay: (step: number) => number,
): Promise<void> {
  const log = logger.with({ context: "postgres" });
  const where = describePostgresUrl(o.url);
  const attempts = Math.max(1, o.startupAttempts);
  for (let attempt = 1; ; attempt++) {
    try {
      const result = await part.ensure(sql);
      const what = { created: "created or updated", unchanged: "up to date", checked: "checked" }[result];
      const attrs = part.key === "signalling" ? { broadcasts: o.broadcastsTable } : {};
      log.info(`PostgreSQL ${part.label} schema ${what}`, { url: where, ...attrs });
      return;
    } catch (err) {
      if (err instanceof SchemaError) throw err;
      const message = (err as Error).message ?? String(err);
      if (attempt >= attempts) {
        throw new Error(`no PostgreSQL at ${where} after ${attempts} attempt(s): ${message}`, { cause: err });
      }
      const wait = delay(attempt - 1);
      log.warn("PostgreSQL startup check failed", {
        attempt,
        max_attempts: attempts,
        next_attempt_in: `${wait}ms`,
        error: message,
      });
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}

/** Errors that mean the connection, not the statement, failed (the statement may be retried). */
export function isConnectionError(err: unknown): boolean {
  const code = (err as { code?: unknown })?.code;
  if (typeof code !== "string") return false;
  return (
    /^(E[A-Z]+|CONNECT_TIMEOUT|CONNECTION_(CLOSED|ENDED|DESTROYED))$/.test(code) ||
    // admin_shutdown, crash_shutdown, cannot_connect_now, too_many_connections
    ["57P01", "57P02", "57P03", "53300"].includes(code)
  );
}
