// The signalling schema the server owns (anycable's "Postgres signalling" design): applications
// only call anycable_publish(stream, payload, meta) / anycable_remote_command(payload, meta); the
// server creates the tables, triggers and functions at startup (--postgres_ensure_schema, on by
// default) and, either way, checks them in the catalogs before it serves anything.
//
//   <offsets>     (scope, stream) -> the last offset given out; scope 'broadcast' or 'pubsub'
//   <broadcasts>  the application's publications, claimed by one node each, deleted once handled
//   <pubsub>      node-to-node messages, read by every node subscribed to the stream, kept for
//                 --postgres_retention_ttl
// Payloads and meta are opaque text; each insert NOTIFYs {"v":1,"stream":..,"offset":..} on its
// channel as a wake-up only. Offsets are given out under the (scope, stream) row lock of the
// offsets table, held until the publishing transaction ends, so a stream's offsets become visible
// in order and without gaps: readers can keep a per-stream cursor.
//
// Beyond the PR: the DDL runs in one transaction under an advisory lock (nodes starting together
// do not race), only when the check fails or the schema is older (an up-to-date schema is not
// touched, so a node's start never waits on the applications' open transactions), and the schema
// carries a version (a comment on the offsets table): one from a newer anycable-ts is refused with
// a one-line startup error instead of being rewritten.
import type { Sql, TransactionSql } from "postgres";
import {
  BROADCASTS_TRIGGER,
  PUBLISH_FUNCTION,
  PUBSUB_TRIGGER,
  quoteLiteral,
  REMOTE_COMMAND_FUNCTION,
  type SchemaNames,
  schemaNames,
  validateNames,
} from "./names.ts";
import type { Options } from "./options.ts";

export const SCHEMA_VERSION = 1;
const VERSION_MARK = /anycable signalling schema (\d+)/;
/** pg_advisory_xact_lock key shared by every anycable-ts node of a database. */
export const DDL_LOCK = 0x616e7963; // "anyc"

/** A schema problem no retry can fix: the server does not start. */
export class SchemaError extends Error {}

export type Q = Sql | TransactionSql;

export function schemaSql(o: Options): string {
  const n = schemaNames(o);
  return [
    offsetsDdl(n),
    broadcastsDdl(n),
    pubsubDdl(n),
    triggerDdl(n.broadcastTriggerFn, n.broadcastTrigger, n.broadcasts, n.broadcastChannel),
    triggerDdl(n.pubsubTriggerFn, n.pubsubTrigger, n.pubsub, n.pubsubChannel),
    functionsDdl(n),
    `COMMENT ON TABLE ${n.offsets} IS ${quoteLiteral(`anycable signalling schema ${SCHEMA_VERSION} (owned by the AnyCable server)`)};`,
  ].join("\n");
}

const offsetsDdl = (n: SchemaNames) => `
CREATE TABLE IF NOT EXISTS ${n.offsets} (
  scope text NOT NULL,
  stream text NOT NULL,
  "offset" bigint NOT NULL DEFAULT 0,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (scope, stream)
);`;

const broadcastsDdl = (n: SchemaNames) => `
CREATE TABLE IF NOT EXISTS ${n.broadcasts} (
  id bigserial PRIMARY KEY,
  stream text NOT NULL,
  "offset" bigint NOT NULL,
  payload text NOT NULL,
  meta text NOT NULL DEFAULT '{}',
  claimed_by text,
  claimed_at timestamptz,
  attempts integer NOT NULL DEFAULT 0,
  last_error text,
  exhausted_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS ${n.broadcastOffsetIndex} ON ${n.broadcasts} (stream, "offset");
CREATE INDEX IF NOT EXISTS ${n.broadcastClaimIndex} ON ${n.broadcasts} (claimed_at, stream, "offset") WHERE exhausted_at IS NULL;
CREATE INDEX IF NOT EXISTS ${n.broadcastCleanupIndex} ON ${n.broadcasts} (exhausted_at) WHERE exhausted_at IS NOT NULL;`;

const pubsubDdl = (n: SchemaNames) => `
CREATE TABLE IF NOT EXISTS ${n.pubsub} (
  id bigserial PRIMARY KEY,
  stream text NOT NULL,
  "offset" bigint NOT NULL,
  payload text NOT NULL,
  meta text NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS ${n.pubsubOffsetIndex} ON ${n.pubsub} (stream, "offset");
CREATE INDEX IF NOT EXISTS ${n.pubsubCreatedIndex} ON ${n.pubsub} (created_at);`;

// NOTIFY payloads are limited to 8000 bytes: a stream name too long for one is left out (null),
// which readers take as "read every stream".
const triggerDdl = (fn: string, trigger: string, table: string, channel: string) => `
CREATE OR REPLACE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  PERFORM pg_notify(${channel}, json_build_object('v', 1, 'stream', CASE WHEN octet_length(NEW.stream) <= 4000 THEN NEW.stream END, 'offset', NEW."offset")::text);
  RETURN NEW;
END;
$fn$;
DROP TRIGGER IF EXISTS ${trigger} ON ${table};
CREATE TRIGGER ${trigger} AFTER INSERT ON ${table} FOR EACH ROW EXECUTE FUNCTION ${fn}();`;

// The first parameter is named target_stream, as in the PR (a parameter named like the `stream`
// column would be ambiguous inside the function); callers pass it by position.
const functionsDdl = (n: SchemaNames) => `
CREATE OR REPLACE FUNCTION ${PUBLISH_FUNCTION}(target_stream text, payload text, meta text DEFAULT '{}')
RETURNS bigint LANGUAGE plpgsql AS $fn$
DECLARE
  next_offset bigint;
BEGIN
  IF target_stream IS NULL OR target_stream = '' THEN
    RAISE EXCEPTION '${PUBLISH_FUNCTION}: the stream must be a non-empty string';
  END IF;
  IF target_stream = ${n.internalStream} THEN
    RAISE EXCEPTION '${PUBLISH_FUNCTION}: the stream is the internal one; use ${REMOTE_COMMAND_FUNCTION} for commands';
  END IF;
  IF payload IS NULL OR meta IS NULL THEN
    RAISE EXCEPTION '${PUBLISH_FUNCTION}: payload and meta cannot be null';
  END IF;
  INSERT INTO ${n.offsets} AS o (scope, stream, "offset") VALUES ('broadcast', target_stream, 1)
  ON CONFLICT (scope, stream) DO UPDATE SET "offset" = o."offset" + 1, updated_at = now()
  RETURNING "offset" INTO next_offset;
  INSERT INTO ${n.broadcasts} (stream, "offset", payload, meta) VALUES (target_stream, next_offset, payload, meta);
  RETURN next_offset;
END;
$fn$;
CREATE OR REPLACE FUNCTION ${REMOTE_COMMAND_FUNCTION}(payload text, meta text DEFAULT '{}')
RETURNS bigint LANGUAGE plpgsql AS $fn$
DECLARE
  next_offset bigint;
BEGIN
  IF payload IS NULL OR meta IS NULL THEN
    RAISE EXCEPTION '${REMOTE_COMMAND_FUNCTION}: payload and meta cannot be null';
  END IF;
  INSERT INTO ${n.offsets} AS o (scope, stream, "offset") VALUES ('broadcast', ${n.internalStream}, 1)
  ON CONFLICT (scope, stream) DO UPDATE SET "offset" = o."offset" + 1, updated_at = now()
  RETURNING "offset" INTO next_offset;
  INSERT INTO ${n.broadcasts} (stream, "offset", payload, meta) VALUES (${n.internalStream}, next_offset, payload, meta);
  RETURN next_offset;
END;
$fn$;`;

export interface ColumnSpec {
  name: string;
  type: string;
  notNull: boolean;
}

export const col = (name: string, type: string, notNull = true): ColumnSpec => ({ name, type, notNull });
export const TZ = "timestamp with time zone";

const TABLES = (o: Options): TableSpec[] => {
  const n = schemaNames(o);
  return [
    {
      table: o.offsetsTable,
      quoted: n.offsets,
      columns: [col("scope", "text"), col("stream", "text"), col("offset", "bigint"), col("updated_at", TZ)],
      unique: ["scope", "stream"],
    },
    {
      table: o.broadcastsTable,
      quoted: n.broadcasts,
      columns: [
        col("id", "bigint"),
        col("stream", "text"),
        col("offset", "bigint"),
        col("payload", "text"),
        col("meta", "text"),
        col("claimed_by", "text", false),
        col("claimed_at", TZ, false),
        col("attempts", "integer"),
        col("last_error", "text", false),
        col("exhausted_at", TZ, false),
        col("created_at", TZ),
      ],
      unique: ["stream", "offset"],
    },
    {
      table: o.pubsubTable,
      quoted: n.pubsub,
      columns: [
        col("id", "bigint"),
        col("stream", "text"),
        col("offset", "bigint"),
        col("payload", "text"),
        col("meta", "text"),
        col("created_at", TZ),
      ],
      unique: ["stream", "offset"],
    },
  ];
};

/** A table the server needs: its columns and the columns of one unique index. */
export interface TableSpec {
  table: string;
  quoted: string;
  columns: ColumnSpec[];
  unique: string[];
}

/** How one table differs from `t` (empty: it fits). */
export async function checkTable(q: Q, t: TableSpec): Promise<string[]> {
  const problems: string[] = [];
  const rows = await q<{ name: string; type: string; not_null: boolean }[]>`
    SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS not_null
    FROM pg_attribute a WHERE a.attrelid = to_regclass(${t.quoted}) AND a.attnum > 0 AND NOT a.attisdropped`;
  if (rows.length === 0) return [`table ${t.table} does not exist`];
  const have = new Map(rows.map((r) => [r.name, r]));
  for (const c of t.columns) {
    const got = have.get(c.name);
    if (!got) problems.push(`table ${t.table} has no column ${c.name}`);
    else if (got.type !== c.type) problems.push(`column ${t.table}.${c.name} is ${got.type}, not ${c.type}`);
    else if (c.notNull && !got.not_null) problems.push(`column ${t.table}.${c.name} must be NOT NULL`);
  }
  const [{ ok }] = await q<{ ok: boolean }[]>`
    SELECT EXISTS (
      SELECT 1 FROM pg_index i
      WHERE i.indrelid = to_regclass(${t.quoted}) AND i.indisunique AND i.indisvalid
        AND i.indpred IS NULL AND i.indexprs IS NULL
        AND ARRAY(SELECT a.attname::text FROM unnest(i.indkey) WITH ORDINALITY k(attnum, ord)
                  JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum ORDER BY k.ord)
            = ${t.unique}::text[]
    ) AS ok`;
  if (!ok) problems.push(`table ${t.table} has no unique index on (${t.unique.join(", ")})`);
  return problems;
}

/** Every way the database differs from what the server needs (empty: it fits). */
export async function checkSchema(q: Q, o: Options): Promise<string[]> {
  const problems: string[] = [];
  const n = schemaNames(o);
  for (const t of TABLES(o)) problems.push(...(await checkTable(q, t)));
  const triggers: Array<[string, string, string, string, string]> = [
    [o.broadcastsTable, n.broadcasts, BROADCASTS_TRIGGER, n.broadcastTriggerFnName, n.broadcastChannel],
    [o.pubsubTable, n.pubsub, PUBSUB_TRIGGER, n.pubsubTriggerFnName, n.pubsubChannel],
  ];
  for (const [table, quoted, trigger, fn, channel] of triggers) {
    const [{ ok }] = await q<{ ok: boolean }[]>`
      SELECT EXISTS (
        SELECT 1 FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
        WHERE t.tgrelid = to_regclass(${quoted}) AND t.tgname = ${trigger} AND p.proname = ${fn}
          AND NOT t.tgisinternal AND t.tgenabled <> 'D'
          AND position(${channel} in p.prosrc) > 0 AND position('pg_notify' in p.prosrc) > 0
      ) AS ok`;
    if (!ok)
      problems.push(`table ${table} has no enabled trigger ${trigger} notifying ${channel} through ${fn}()`);
  }
  const fns = await q<{ name: string; args: string; ret: string; defaults: number; src: string }[]>`
    SELECT p.proname AS name, oidvectortypes(p.proargtypes) AS args, format_type(p.prorettype, NULL) AS ret,
           p.pronargdefaults AS defaults, p.prosrc AS src
    FROM pg_proc p JOIN pg_namespace ns ON ns.oid = p.pronamespace
    WHERE ns.nspname = current_schema() AND p.proname IN (${PUBLISH_FUNCTION}, ${REMOTE_COMMAND_FUNCTION})`;
  const expected: Array<[string, string]> = [
    [PUBLISH_FUNCTION, "text, text, text"],
    [REMOTE_COMMAND_FUNCTION, "text, text"],
  ];
  for (const [name, args] of expected) {
    const f = fns.find((x) => x.name === name && x.args === args);
    if (f?.ret !== "bigint" || f.defaults !== 1) {
      problems.push(`function ${name}(${args}) returning bigint, with a default meta, does not exist`);
      continue;
    }
    // The function must write where this server reads (another --postgres_*_table or internal
    // stream changes its text).
    for (const part of [n.broadcasts, n.offsets, n.internalStream]) {
      if (!f.src.includes(part)) problems.push(`function ${name} does not use ${part}`);
    }
  }
  return problems;
}

/** The version the schema says it is (0: none said). */
export async function schemaVersion(q: Q, o: Options): Promise<number> {
  const n = schemaNames(o);
  const [row] = await q<{ comment: string | null }[]>`
    SELECT obj_description(to_regclass(${n.offsets}), 'pg_class') AS comment`;
  const m = row?.comment ? VERSION_MARK.exec(row.comment) : null;
  return m ? Number(m[1]) : 0;
}

export type EnsureResult = "unchanged" | "created" | "checked";

/**
 * Creates or updates the schema when --postgres_ensure_schema allows it, then checks it. Throws
 * SchemaError for what no retry fixes: bad names, a newer schema, one that does not fit.
 */
export async function ensureSchema(sql: Sql, o: Options): Promise<EnsureResult> {
  const bad = validateNames(o);
  if (bad) throw new SchemaError(bad);
  const result = await sql.begin(async (tx) => {
    // A node waiting here for an application's open transaction says so instead of hanging.
    await tx`SET LOCAL lock_timeout = '15s'`;
    await tx`SELECT pg_advisory_xact_lock(${DDL_LOCK})`;
    const version = await schemaVersion(tx, o);
    if (version > SCHEMA_VERSION) {
      const table = o.offsetsTable;
      throw new SchemaError(
        `the PostgreSQL signalling schema is version ${version} (comment on ${table}), newer than this server's ${SCHEMA_VERSION}: upgrade anycable-ts or use another database`,
      );
    }
    const problems = await checkSchema(tx, o);
    if (problems.length === 0 && (version === SCHEMA_VERSION || !o.ensureSchema)) {
      return o.ensureSchema ? ("unchanged" as const) : ("checked" as const);
    }
    if (!o.ensureSchema) {
      throw new SchemaError(
        `the PostgreSQL signalling schema does not fit: ${problems[0]}${problems.length > 1 ? ` (and ${problems.length - 1} more)` : ""}; --postgres_ensure_schema=false, so it is not created`,
      );
    }
    await tx.unsafe(schemaSql(o)).simple();
    const left = await checkSchema(tx, o);
    if (left.length > 0) {
      throw new SchemaError(
        `the PostgreSQL signalling schema could not be made to fit: ${left[0]}${left.length > 1 ? ` (and ${left.length - 1} more)` : ""}`,
      );
    }
    return "created" as const;
  });
  return result;
}
