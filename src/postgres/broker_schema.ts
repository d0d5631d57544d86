// The tables of the PostgreSQL broker (--broker=postgres), created by the same ensure step as the
// signalling schema (one transaction under the DDL advisory lock, only when the check fails or the
// schema is older; --postgres_ensure_schema=false only checks) but only by a server that runs the
// broker, so a deployment without it never gets (or needs) them. P is --postgres_broker_table_prefix
// (`anycable_broker`; `schema.prefix` puts them in another schema):
//
//   P_meta               one row: the epoch every node stamps, the offset floor (every offset a
//                        dropped stream gave out is below it); its comment carries the version
//   P_streams            stream -> its last offset and last publication (the per-stream counter)
//   P_history            (stream, offset) -> data, created_at: the messages kept for history
//   P_sessions           sid -> session snapshot, expires_at
//   P_presence           (stream, presence id) -> info: one record per present id
//   P_presence_sessions  (stream, sid) -> presence id, expires_at: the sessions behind each record
//
// Times are the nodes' clocks (timestamptz written from the node's time, compared with it), as the
// Redis broker does: keep them in step (NTP).
import type { Sql } from "postgres";
import { quoteIdent, quoteLiteral, quoteTable } from "./names.ts";
import {
  checkTable,
  col,
  DDL_LOCK,
  type EnsureResult,
  type Q,
  SchemaError,
  type TableSpec,
  TZ,
} from "./schema.ts";

export const BROKER_SCHEMA_VERSION = 1;
const VERSION_MARK = /anycable broker schema (\d+)/;

export interface BrokerTables {
  /** The prefix as configured (for messages). */
  prefix: string;
  meta: string;
  streams: string;
  history: string;
  sessions: string;
  presence: string;
  presenceSessions: string;
  /** Unquoted names, for messages and catalog lookups. */
  plain: Record<"meta" | "streams" | "history" | "sessions" | "presence" | "presenceSessions", string>;
  /** An index name `<prefix-without-schema>_<suffix>`, quoted. */
  index(suffix: string): string;
}

/** The first problem with a table prefix, or undefined. */
export function validatePrefix(prefix: string): string | undefined {
  const parts = prefix.split(".");
  if (parts.length > 2) {
    return `postgres broker table prefix ${JSON.stringify(prefix)}: expected prefix or schema.prefix`;
  }
  for (const part of parts) {
    if (part === "") return "postgres broker table prefix cannot be empty";
    if (/[\0\r\n]/.test(part)) {
      return `postgres broker table prefix ${JSON.stringify(prefix)} contains a control character`;
    }
    if (part.trim() !== part) {
      return `postgres broker table prefix ${JSON.stringify(prefix)} has leading or trailing whitespace`;
    }
  }
  // 63 bytes is PostgreSQL's identifier limit; the longest suffix is "_presence_sessions_expires_at_idx".
  const last = parts.at(-1) ?? "";
  if (new TextEncoder().encode(last).length > 63 - "_presence_sessions_expires_at_idx".length) {
    return `postgres broker table prefix ${JSON.stringify(prefix)} is too long (at most 30 bytes after the schema)`;
  }
  return undefined;
}

export function brokerTables(prefix: string): BrokerTables {
  const plain = {
    meta: `${prefix}_meta`,
    streams: `${prefix}_streams`,
    history: `${prefix}_history`,
    sessions: `${prefix}_sessions`,
    presence: `${prefix}_presence`,
    presenceSessions: `${prefix}_presence_sessions`,
  };
  const base = prefix.split(".").at(-1) ?? prefix;
  return {
    prefix,
    meta: quoteTable(plain.meta),
    streams: quoteTable(plain.streams),
    history: quoteTable(plain.history),
    sessions: quoteTable(plain.sessions),
    presence: quoteTable(plain.presence),
    presenceSessions: quoteTable(plain.presenceSessions),
    plain,
    index: (suffix) => quoteIdent(`${base}_${suffix}`),
  };
}

export function brokerSchemaSql(t: BrokerTables): string {
  return `
CREATE TABLE IF NOT EXISTS ${t.meta} (
  id smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
  epoch text NOT NULL,
  offset_floor bigint NOT NULL DEFAULT 0,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS ${t.streams} (
  stream text PRIMARY KEY,
  last_offset bigint NOT NULL,
  published_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS ${t.index("streams_published_at_idx")} ON ${t.streams} (published_at);
CREATE TABLE IF NOT EXISTS ${t.history} (
  stream text NOT NULL,
  "offset" bigint NOT NULL,
  data text NOT NULL,
  created_at timestamptz NOT NULL,
  PRIMARY KEY (stream, "offset")
);
CREATE INDEX IF NOT EXISTS ${t.index("history_created_at_idx")} ON ${t.history} (created_at);
CREATE TABLE IF NOT EXISTS ${t.sessions} (
  sid text PRIMARY KEY,
  snapshot text NOT NULL,
  expires_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS ${t.index("sessions_expires_at_idx")} ON ${t.sessions} (expires_at);
CREATE TABLE IF NOT EXISTS ${t.presence} (
  stream text NOT NULL,
  presence_id text NOT NULL,
  info text,
  PRIMARY KEY (stream, presence_id)
);
CREATE TABLE IF NOT EXISTS ${t.presenceSessions} (
  stream text NOT NULL,
  sid text NOT NULL,
  presence_id text NOT NULL,
  expires_at timestamptz NOT NULL,
  PRIMARY KEY (stream, sid)
);
CREATE INDEX IF NOT EXISTS ${t.index("presence_sessions_sid_idx")} ON ${t.presenceSessions} (sid);
CREATE INDEX IF NOT EXISTS ${t.index("presence_sessions_id_idx")} ON ${t.presenceSessions} (stream, presence_id);
CREATE INDEX IF NOT EXISTS ${t.index("presence_sessions_expires_at_idx")} ON ${t.presenceSessions} (expires_at);
COMMENT ON TABLE ${t.meta} IS ${quoteLiteral(`anycable broker schema ${BROKER_SCHEMA_VERSION} (owned by the AnyCable server)`)};
`;
}

function tableSpecs(t: BrokerTables): TableSpec[] {
  const spec = (key: keyof BrokerTables["plain"], columns: TableSpec["columns"], unique: string[]) => ({
    table: t.plain[key],
    quoted: t[key],
    columns,
    unique,
  });
  return [
    spec(
      "meta",
      [col("id", "smallint"), col("epoch", "text"), col("offset_floor", "bigint"), col("updated_at", TZ)],
      ["id"],
    ),
    spec(
      "streams",
      [col("stream", "text"), col("last_offset", "bigint"), col("published_at", TZ)],
      ["stream"],
    ),
    spec(
      "history",
      [col("stream", "text"), col("offset", "bigint"), col("data", "text"), col("created_at", TZ)],
      ["stream", "offset"],
    ),
    spec("sessions", [col("sid", "text"), col("snapshot", "text"), col("expires_at", TZ)], ["sid"]),
    spec(
      "presence",
      [col("stream", "text"), col("presence_id", "text"), col("info", "text", false)],
      ["stream", "presence_id"],
    ),
    spec(
      "presenceSessions",
      [col("stream", "text"), col("sid", "text"), col("presence_id", "text"), col("expires_at", TZ)],
      ["stream", "sid"],
    ),
  ];
}

/** Every way the database differs from what the broker needs (empty: it fits). */
export async function checkBrokerSchema(q: Q, t: BrokerTables): Promise<string[]> {
  const problems: string[] = [];
  for (const spec of tableSpecs(t)) problems.push(...(await checkTable(q, spec)));
  return problems;
}

/** The version the broker schema says it is (0: none said). */
export async function brokerSchemaVersion(q: Q, t: BrokerTables): Promise<number> {
  const [row] = await q<{ comment: string | null }[]>`
    SELECT obj_description(to_regclass(${t.meta}), 'pg_class') AS comment`;
  const m = row?.comment ? VERSION_MARK.exec(row.comment) : null;
  return m ? Number(m[1]) : 0;
}

const summary = (problems: string[]) =>
  `${problems[0]}${problems.length > 1 ? ` (and ${problems.length - 1} more)` : ""}`;

/**
 * Creates or updates the broker's tables when `create` (--postgres_ensure_schema) allows it, then
 * checks them. Throws SchemaError for what no retry fixes: a bad prefix, a newer schema, tables
 * that do not fit.
 */
export async function ensureBrokerSchema(sql: Sql, prefix: string, create: boolean): Promise<EnsureResult> {
  const bad = validatePrefix(prefix);
  if (bad) throw new SchemaError(bad);
  const t = brokerTables(prefix);
  return await sql.begin(async (tx) => {
    await tx`SET LOCAL lock_timeout = '15s'`;
    await tx`SELECT pg_advisory_xact_lock(${DDL_LOCK})`;
    const version = await brokerSchemaVersion(tx, t);
    if (version > BROKER_SCHEMA_VERSION) {
      throw new SchemaError(
        `the PostgreSQL broker schema is version ${version} (comment on ${t.plain.meta}), newer than this server's ${BROKER_SCHEMA_VERSION}: upgrade anycable-ts or use another --postgres_broker_table_prefix`,
      );
    }
    const problems = await checkBrokerSchema(tx, t);
    if (problems.length === 0 && (version === BROKER_SCHEMA_VERSION || !create)) {
      return create ? ("unchanged" as const) : ("checked" as const);
    }
    if (!create) {
      throw new SchemaError(
        `the PostgreSQL broker schema does not fit: ${summary(problems)}; --postgres_ensure_schema=false, so it is not created`,
      );
    }
    await tx.unsafe(brokerSchemaSql(t)).simple();
    const left = await checkBrokerSchema(tx, t);
    if (left.length > 0) {
      throw new SchemaError(`the PostgreSQL broker schema could not be made to fit: ${summary(left)}`);
    }
    return "created" as const;
  });
}
