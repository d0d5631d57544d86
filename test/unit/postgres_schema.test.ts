// The server-owned signalling schema against a real PostgreSQL: what it creates, the functions the
// applications call, --postgres_ensure_schema=false, a newer schema refused, schema-qualified
// tables, nodes starting together, startup attempts.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Logger } from "../../src/log/logger.ts";
import { acquire } from "../../src/postgres/connection.ts";
import { defaults, type Options } from "../../src/postgres/options.ts";
import { checkSchema, ensureSchema, SCHEMA_VERSION, SchemaError } from "../../src/postgres/schema.ts";
import { createDatabase, pgClient, psql } from "../support/pg_probe.ts";
import { freePort } from "../support/ports.ts";
import { hasService, type PostgresProcess, startPostgres } from "../support/services.ts";

const silent = new Logger("error", "text", {}, { write() {} });
let seq = 0;

describe("Postgres signalling schema", { skip: !hasService("postgres") }, () => {
  let pg: PostgresProcess;
  before(async () => {
    pg = await startPostgres();
  });
  after(async () => {
    await pg?.destroy();
  });

  const freshDb = () => createDatabase(pg.url, `s_${process.pid}_${++seq}`);
  const opts = (url: string, extra: Partial<Options> = {}) => defaults(url, { startupAttempts: 1, ...extra });

  it("creates the tables, triggers and functions; publishing returns per-stream offsets", async () => {
    const url = await freshDb();
    const sql = pgClient(url);
    try {
      assert.equal(await ensureSchema(sql, opts(url)), "created");
      assert.equal(await ensureSchema(sql, opts(url)), "unchanged", "a second start changes nothing");
      const tables = await psql(
        url,
        "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'public'",
      );
      assert.equal(tables, "anycable_broadcasts,anycable_pubsub,anycable_stream_offsets");
      assert.match(
        await psql(url, "SELECT obj_description('anycable_stream_offsets'::regclass)"),
        /schema 1/,
      );
      const offsets = await psql(
        url,
        `SELECT anycable_publish('chat', '{"stream":"chat","data":"1"}');
         SELECT anycable_publish('chat', '{"stream":"chat","data":"2"}', '{"k":1}');
         SELECT anycable_publish('other', 'x');
         SELECT anycable_remote_command('{"command":"disconnect","payload":{"identifier":"u"}}')`,
      );
      assert.deepEqual(offsets.split("\n"), ["1", "2", "1", "1"]);
      const rows =
        await sql`SELECT stream, "offset"::int AS "offset", payload, meta FROM anycable_broadcasts ORDER BY id`;
      assert.deepEqual(
        rows.map((r) => [r.stream, r.offset, r.meta]),
        [
          ["chat", 1, "{}"],
          ["chat", 2, '{"k":1}'],
          ["other", 1, "{}"],
          ["__anycable_internal__", 1, "{}"],
        ],
      );
      assert.equal(rows[0].payload, '{"stream":"chat","data":"1"}', "the payload is kept as sent");
      await assert.rejects(psql(url, "SELECT anycable_publish('', 'x')"), /non-empty/);
      await assert.rejects(psql(url, "SELECT anycable_publish('__anycable_internal__', 'x')"), /internal/);
      await assert.rejects(psql(url, "SELECT anycable_publish('s', NULL)"), /cannot be null/);
      // NOTIFY payloads: the version, the stream and its offset.
      const heard: string[] = [];
      await sql.listen("anycable_broadcasts", (p) => heard.push(p));
      await psql(url, "SELECT anycable_publish('chat', 'x')");
      for (let i = 0; i < 100 && heard.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
      assert.deepEqual(
        heard.map((h) => JSON.parse(h)),
        [{ v: 1, stream: "chat", offset: 3 }],
      );
    } finally {
      await sql.end();
    }
  });

  it("with --postgres_ensure_schema=false only checks, and says what is missing", async () => {
    const url = await freshDb();
    const sql = pgClient(url);
    try {
      await assert.rejects(
        ensureSchema(sql, opts(url, { ensureSchema: false })),
        (e: Error) =>
          e instanceof SchemaError &&
          /does not fit: table anycable_stream_offsets does not exist/.test(e.message),
      );
      await ensureSchema(sql, opts(url));
      assert.equal(await ensureSchema(sql, opts(url, { ensureSchema: false })), "checked");
      await psql(url, "DROP TRIGGER anycable_pubsub_notify_insert ON anycable_pubsub");
      await assert.rejects(
        ensureSchema(sql, opts(url, { ensureSchema: false })),
        /anycable_pubsub has no enabled trigger anycable_pubsub_notify_insert/,
      );
      assert.equal(await ensureSchema(sql, opts(url)), "created", "ensured again");
      assert.deepEqual(await checkSchema(sql, opts(url)), []);
      // Another broadcasts table: the functions must be rewritten to write there.
      assert.match(
        (await checkSchema(sql, opts(url, { broadcastsTable: "other_broadcasts" }))).join("\n"),
        /function anycable_publish does not use "other_broadcasts"/,
      );
    } finally {
      await sql.end();
    }
  });

  it("refuses a schema from a newer version with one line, and keeps it as it is", async () => {
    const url = await freshDb();
    const sql = pgClient(url);
    try {
      await ensureSchema(sql, opts(url));
      await psql(
        url,
        `COMMENT ON TABLE anycable_stream_offsets IS 'anycable signalling schema ${SCHEMA_VERSION + 1}'`,
      );
      await assert.rejects(acquire(opts(url), silent, { private: true }), (e: Error) => {
        assert.ok(e instanceof SchemaError);
        assert.equal(
          e.message,
          `the PostgreSQL signalling schema is version ${SCHEMA_VERSION + 1} (comment on anycable_stream_offsets), newer than this server's ${SCHEMA_VERSION}: upgrade anycable-ts or use another database`,
        );
        return true;
      });
      assert.match(
        await psql(url, "SELECT obj_description('anycable_stream_offsets'::regclass)"),
        /schema 2/,
      );
    } finally {
      await sql.end();
    }
  });

  it("serves schema-qualified tables and names needing quotes", async () => {
    const url = await freshDb();
    await psql(url, 'CREATE SCHEMA signals; CREATE SCHEMA "Odd Schema"');
    const o = opts(url, {
      broadcastsTable: "signals.broadcasts",
      pubsubTable: 'Odd Schema.Pub"Sub',
      offsetsTable: "signals.offsets",
      broadcastChannel: "Wake Up",
      internalStream: "it's internal",
    });
    const sql = pgClient(url);
    try {
      assert.equal(await ensureSchema(sql, o), "created");
      assert.deepEqual(await checkSchema(sql, o), []);
      assert.equal(await psql(url, "SELECT anycable_publish('s', 'x')"), "1");
      assert.equal(await psql(url, `SELECT anycable_remote_command('{}')`), "1");
      assert.equal(
        await psql(url, `SELECT stream FROM signals.broadcasts WHERE "offset" = 1 ORDER BY id DESC LIMIT 1`),
        "it's internal",
      );
    } finally {
      await sql.end();
    }
  });

  it("lets nodes starting together on an empty database all start", async () => {
    const url = await freshDb();
    const leases = await Promise.all(
      Array.from({ length: 5 }, () => acquire(opts(url), silent, { private: true })),
    );
    try {
      const sql = leases[0].sql;
      assert.deepEqual(await checkSchema(sql, opts(url)), []);
    } finally {
      for (const l of leases) await l.release();
    }
  });

  it("tries --postgres_startup_max_attempts times, then fails with one line naming the database", async () => {
    const port = await freePort();
    const url = `postgres://postgres:secret@127.0.0.1:${port}/postgres`;
    const lines: string[] = [];
    const logger = new Logger("info", "text", {}, { write: (l) => lines.push(l) });
    await assert.rejects(
      acquire(opts(url, { startupAttempts: 3 }), logger, { private: true, retryDelayMs: () => 10 }),
      (e: Error) => {
        assert.match(
          e.message,
          new RegExp(
            `^no PostgreSQL at postgres://postgres:\\*\\*\\*@127.0.0.1:${port}/postgres after 3 attempt\\(s\\): .*ECONNREFUSED`,
          ),
        );
        return true;
      },
    );
    const warns = lines.filter((l) => l.includes("PostgreSQL startup check failed"));
    assert.equal(warns.length, 2, lines.join("\n"));
    assert.match(warns[0], /attempt=1 max_attempts=3/);
    assert.ok(!lines.join("\n").includes("secret"), "no password in the log");
  });
});
