// PostgreSQL pub/sub against a real PostgreSQL: the PubSub contract (multi-node, each node with a
// pool of its own, as separate processes would have), the rows anycable-go's PR reads and writes,
// payloads beyond NOTIFY's limit, bad rows, retention, and a PostgreSQL restart.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { StreamMessage } from "../../src/broadcast/publication.ts";
import { Logger } from "../../src/log/logger.ts";
import { Metrics } from "../../src/metrics/registry.ts";
import { defaults, type Options } from "../../src/postgres/options.ts";
import { PostgresPubSub } from "../../src/pubsub/postgres.ts";
import { DROPPED_METRIC } from "../../src/pubsub/redis.ts";
import { createDatabase, pgClient } from "../support/pg_probe.ts";
import { hasService, type PostgresProcess, startPostgres } from "../support/services.ts";
import { waitFor } from "../support/wait.ts";
import { pubsubContract, RecordingPubSubHandler } from "./contracts/pubsub_contract.ts";

const silent = new Logger("error", "text", {}, { write() {} });

let seq = 0;

const msg = (stream: string, data: unknown, extra: Partial<StreamMessage> = {}): StreamMessage => ({
  stream,
  dataJson: JSON.stringify(data),
  ...extra,
});

describe("Postgres pub/sub", { skip: !hasService("postgres") }, () => {
  let pg: PostgresProcess;
  before(async () => {
    pg = await startPostgres();
  });
  after(async () => {
    await pg?.destroy();
  });

  const freshDb = () => createDatabase(pg.url, `p_${process.pid}_${++seq}`);
  const options = (url: string, extra: Partial<Options> = {}): Options =>
    defaults(url, { pollIntervalMs: 200, startupAttempts: 1, ...extra });
  const node = (opts: Options, handler: RecordingPubSubHandler, metrics?: Metrics, maxQueued?: number) =>
    new PostgresPubSub(
      { postgres: opts, connection: { private: true }, maxQueued },
      handler,
      silent,
      metrics,
    );

  pubsubContract(
    "postgres",
    async () => {
      const url = await freshDb();
      const nodes: PostgresPubSub[] = [];
      return {
        async node(handler) {
          const ps = node(options(url), handler as RecordingPubSubHandler);
          nodes.push(ps);
          return ps;
        },
        async synced() {
          await Promise.all(nodes.map((n) => n.synced()));
        },
        async close() {},
      };
    },
    { multiNode: true },
  );

  it("writes and reads the rows anycable-go's PR does: per-stream offsets, its JSON, the internal stream", async () => {
    const url = await freshDb();
    const client = pgClient(url);
    const handler = new RecordingPubSubHandler();
    const ps = node(options(url), handler);
    try {
      await ps.start(() => {});
      ps.subscribe("chat_1");
      await ps.synced();
      ps.broadcast(msg("chat_1", { text: "hi" }, { excludeSocket: "sid-1", offset: 4, epoch: "e1" }));
      ps.broadcast(msg("chat_1", "two"));
      ps.broadcastCommand({ command: "disconnect", identifier: '{"u":1}', reconnect: true });
      await waitFor(() => handler.events.length >= 3, "three deliveries");
      const rows =
        await client`SELECT stream, "offset"::int AS "offset", payload, meta FROM anycable_pubsub ORDER BY id`;
      assert.deepEqual(
        rows.map((r) => [r.stream, r.offset, JSON.parse(r.payload), r.meta]),
        [
          [
            "chat_1",
            1,
            {
              stream: "chat_1",
              data: '{"text":"hi"}',
              meta: { exclude_socket: "sid-1" },
              offset: 4,
              epoch: "e1",
            },
            "{}",
          ],
          ["chat_1", 2, { stream: "chat_1", data: '"two"' }, "{}"],
          [
            "__anycable_internal__",
            1,
            { command: "disconnect", payload: { identifier: '{"u":1}', reconnect: true } },
            "{}",
          ],
        ],
      );
      const offsets =
        await client`SELECT scope, stream, "offset"::int AS "offset" FROM anycable_stream_offsets ORDER BY stream`;
      assert.deepEqual(
        offsets.map((r) => [r.scope, r.stream, r.offset]),
        [
          ["pubsub", "__anycable_internal__", 1],
          ["pubsub", "chat_1", 2],
        ],
      );
      // A row another server wrote (anycable-go with the PR: the same upsert, the same JSON).
      await client`
        WITH o AS (INSERT INTO anycable_stream_offsets AS o (scope, stream, "offset") VALUES ('pubsub', 'chat_1', 1)
                   ON CONFLICT (scope, stream) DO UPDATE SET "offset" = o."offset" + 1 RETURNING "offset")
        INSERT INTO anycable_pubsub (stream, "offset", payload) SELECT 'chat_1', "offset", ${JSON.stringify({ stream: "chat_1", data: "3" })} FROM o`;
      await handler.received((m) => m.dataJson === "3", "the foreign row");
    } finally {
      await ps.shutdown(AbortSignal.timeout(2000));
      await client.end();
    }
  });

  it("a stream subscribed while this node's own messages to it are still queued starts after them", async () => {
    // The node's broker already numbered those messages and keeps them as history: a client that
    // subscribes now with a history request gets them from there, and must not get them twice.
    const url = await freshDb();
    const handler = new RecordingPubSubHandler();
    const ps = node(options(url), handler);
    try {
      await ps.start(() => {});
      await ps.synced();
      for (let round = 0; round < 5; round++) {
        const stream = `own_${round}`;
        for (let n = 0; n < 200; n++) ps.broadcast(msg(stream, { before: n }));
        ps.subscribe(stream);
        ps.broadcast(msg(stream, { after: true }));
        await handler.received(
          (m) => m.stream === stream && m.dataJson === '{"after":true}',
          "the later one",
        );
        await ps.synced();
        const got = handler.messages.filter((m) => m.stream === stream).map((m) => m.dataJson);
        assert.deepEqual(got, ['{"after":true}'], `round ${round}`);
      }
    } finally {
      await ps.shutdown(AbortSignal.timeout(2000));
    }
  });

  it("carries messages far beyond NOTIFY's 8,000 bytes, and streams with names too long for a NOTIFY", async () => {
    const url = await freshDb();
    const a = new RecordingPubSubHandler();
    const b = new RecordingPubSubHandler();
    const na = node(options(url, { pollIntervalMs: 60_000 }), a);
    const nb = node(options(url, { pollIntervalMs: 60_000 }), b);
    const big = "x".repeat(200_000);
    const longName = `s${"y".repeat(5000)}`;
    try {
      await na.start(() => {});
      await nb.start(() => {});
      for (const n of [na, nb]) {
        n.subscribe("big");
        n.subscribe(longName);
      }
      await Promise.all([na.synced(), nb.synced()]);
      na.broadcast(msg("big", big));
      na.broadcast(msg(longName, 1));
      // No poll for a minute: B hears of both through NOTIFY alone.
      await b.received((m) => m.stream === longName, "the long-named stream on B");
      assert.deepEqual(b.messages, [msg("big", big), msg(longName, 1)]);
    } finally {
      await na.shutdown(AbortSignal.timeout(2000));
      await nb.shutdown(AbortSignal.timeout(2000));
    }
  });

  it("skips a row that is not a message and goes on", async () => {
    const url = await freshDb();
    const client = pgClient(url);
    const handler = new RecordingPubSubHandler();
    const ps = node(options(url), handler);
    try {
      await ps.start(() => {});
      ps.subscribe("s");
      await ps.synced();
      await client`INSERT INTO anycable_pubsub (stream, "offset", payload) VALUES ('s', 1, '{broken'), ('s', 2, '42')`;
      await client`INSERT INTO anycable_stream_offsets (scope, stream, "offset") VALUES ('pubsub', 's', 2)`;
      ps.broadcast(msg("s", "after"));
      await handler.received((m) => m.dataJson === '"after"', "the message after the bad rows");
      assert.deepEqual(handler.events, [{ kind: "broadcast", message: msg("s", "after") }]);
    } finally {
      await ps.shutdown(AbortSignal.timeout(2000));
      await client.end();
    }
  });

  it("deletes rows older than the retention, keeping the offsets", async () => {
    const url = await freshDb();
    const client = pgClient(url);
    const handler = new RecordingPubSubHandler();
    const ps = node(options(url, { retentionSec: 1, cleanupIntervalSec: 1 }), handler);
    try {
      await ps.start(() => {});
      ps.subscribe("s");
      await ps.synced();
      ps.broadcast(msg("s", 1));
      await handler.received(() => true, "the message");
      await waitFor(
        async () => (await client`SELECT 1 FROM anycable_pubsub`).length === 0,
        "the row deleted after the retention",
        6000,
      );
      const [o] =
        await client`SELECT "offset"::int AS "offset" FROM anycable_stream_offsets WHERE stream = 's'`;
      assert.equal(o.offset, 1, "the offset is kept");
      ps.broadcast(msg("s", 2));
      await handler.received((m) => m.dataJson === "2", "the next message");
      const [row] = await client`SELECT "offset"::int AS "offset" FROM anycable_pubsub`;
      assert.equal(row.offset, 2);
    } finally {
      await ps.shutdown(AbortSignal.timeout(2000));
      await client.end();
    }
  });

  it("keeps what is broadcast while PostgreSQL is down (bounded) and catches up after a restart", {
    timeout: 30_000,
  }, async () => {
    let own = await startPostgres();
    const metrics = new Metrics();
    const a = new RecordingPubSubHandler();
    const b = new RecordingPubSubHandler();
    const fatals: Error[] = [];
    const na = node(options(own.url), a, metrics, 3);
    const nb = node(options(own.url), b);
    try {
      await na.start((e) => fatals.push(e));
      await nb.start((e) => fatals.push(e));
      for (const n of [na, nb]) n.subscribe("s");
      await Promise.all([na.synced(), nb.synced()]);
      na.broadcast(msg("s", 0));
      await b.received(() => true, "before the restart");
      await own.stop("immediate");
      for (let i = 1; i <= 5; i++) na.broadcast(msg("s", i));
      assert.equal(metrics.counterValue(DROPPED_METRIC), 2, "the two oldest of five dropped (queue of 3)");
      own = await own.restart();
      // Written by another node before these noticed PostgreSQL was back.
      const client = pgClient(own.url);
      await client`
        WITH o AS (INSERT INTO anycable_stream_offsets AS o (scope, stream, "offset") VALUES ('pubsub', 's', 1)
                   ON CONFLICT (scope, stream) DO UPDATE SET "offset" = o."offset" + 1 RETURNING "offset")
        INSERT INTO anycable_pubsub (stream, "offset", payload) SELECT 's', "offset", ${JSON.stringify({ stream: "s", data: '"other"' })} FROM o`;
      await client.end();
      await waitFor(() => b.messages.length >= 5, "the queued messages and the other node's", 15_000);
      await waitFor(() => a.messages.length >= 5, "the same on A", 5000);
      for (const h of [a, b]) {
        assert.deepEqual(h.messages.map((m) => m.dataJson).sort(), ["0", "3", "4", "5", '"other"'].sort());
        assert.deepEqual(
          h.messages.map((m) => m.dataJson).filter((d) => d !== '"other"'),
          ["0", "3", "4", "5"],
          "in order",
        );
      }
      assert.deepEqual(fatals, []);
    } finally {
      await na.shutdown(AbortSignal.timeout(2000));
      await nb.shutdown(AbortSignal.timeout(2000));
      await own.destroy();
    }
  });
});
