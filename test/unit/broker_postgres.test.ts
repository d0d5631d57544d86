// The PostgreSQL broker against a real PostgreSQL: the Broker contract unchanged (with a
// hand-moved clock: expiry follows the broker's clock), then what only a shared database shows —
// two brokers (two nodes, each with a pool of its own) agreeing on offsets, epochs, sessions and
// presence, concurrent sweeps reporting each leave once, pruning in batches, idle streams, the
// schema's version check, and PostgreSQL going away and coming back with its history.
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { isBrokerError, isHistoryError } from "../../src/broker/broker.ts";
import { ERRORS_METRIC, PostgresBroker, type PostgresBrokerOptions } from "../../src/broker/postgres.ts";
import { Logger } from "../../src/log/logger.ts";
import { Metrics } from "../../src/metrics/registry.ts";
import { defaults } from "../../src/postgres/options.ts";
import { pgClient } from "../support/pg_probe.ts";
import { hasService, type PostgresProcess, startPostgres } from "../support/services.ts";
import { waitFor } from "../support/wait.ts";
import { brokerContract, RecordingPresenter, RecordingPubSub } from "./contracts/broker_contract.ts";

const SETTINGS = { historyLimit: 5, historyTtlSec: 60, sessionsTtlSec: 120, presenceTtlSec: 15 };
const silent = new Logger("error", "text", {}, { write() {} });
const available = hasService("postgres");

let pg: PostgresProcess | undefined;
let starting: Promise<PostgresProcess> | undefined;
const pgUrl = async (): Promise<string> => {
  starting ??= startPostgres().then((p) => (pg = p));
  return (await starting).url;
};

let seq = 0;
/** A table prefix of its own per broker family, so tests sharing one database never meet. */
const prefix = () => `t${process.pid}_${++seq}`;

type Extra = Partial<Omit<PostgresBrokerOptions, "postgres">> & {
  metrics?: Metrics;
  url?: string;
  tablePrefix?: string;
};

async function make(extra: Extra = {}) {
  const pubsub = new RecordingPubSub();
  const presenter = new RecordingPresenter();
  const { metrics, url, tablePrefix, ...rest } = extra;
  const broker = new PostgresBroker(
    {
      postgres: defaults(url ?? (await pgUrl()), {
        brokerTablePrefix: tablePrefix ?? prefix(),
        startupAttempts: 1,
      }),
      connection: { private: true },
      pubsub,
      presenter,
      ...SETTINGS,
      ...rest,
    },
    silent,
    metrics,
  );
  return { broker, pubsub, presenter };
}

async function build(extra: Extra = {}) {
  const built = await make(extra);
  await built.broker.start(() => {});
  return built;
}

const pub = (stream: string, data: unknown) => ({ stream, dataJson: JSON.stringify(data) });

describe("PostgreSQL broker", { skip: !available }, () => {
  after(async () => {
    await pg?.destroy();
  });

  brokerContract(
    "postgres",
    async (pubsub, presenter) => {
      let t = Date.now();
      const broker = new PostgresBroker(
        {
          postgres: defaults(await pgUrl(), { brokerTablePrefix: prefix(), startupAttempts: 1 }),
          connection: { private: true },
          pubsub,
          presenter,
          ...SETTINGS,
          now: () => t,
        },
        silent,
      );
      return {
        broker,
        settings: SETTINGS,
        clock: {
          now: () => t,
          async advance(ms: number) {
            t += ms;
            broker.expire(t);
            await broker.expireNow(t);
          },
        },
        async close() {},
      };
    },
    { history: true, sessions: true, presence: true, clock: true },
  );

  describe("two nodes on one database", () => {
    async function pair(extra: Extra = {}) {
      const tablePrefix = prefix();
      const a = await build({ tablePrefix, ...extra });
      const b = await build({ tablePrefix, ...extra });
      return { a, b, close: () => Promise.all([a.broker.shutdown(), b.broker.shutdown()]) };
    }

    it("numbers one stream's messages as one sequence under one epoch, whichever node publishes", async () => {
      const { a, b, close } = await pair();
      for (let i = 1; i <= 40; i++) (i % 2 ? a : b).broker.handleBroadcast(pub("shared", i));
      await a.pubsub.count(20, "node A's publications");
      await b.pubsub.count(20, "node B's publications");
      const all = [...a.pubsub.messages, ...b.pubsub.messages].sort((x, y) => x.offset! - y.offset!);
      assert.deepEqual(
        all.map((m) => m.offset),
        Array.from({ length: 40 }, (_, i) => i + 1),
        "one sequence, no offset twice",
      );
      for (const node of [a, b]) {
        const own = node.pubsub.messages.map((m) => [Number(m.dataJson), m.offset!]);
        assert.deepEqual(
          own,
          [...own].sort((x, y) => x[0] - y[0]),
          "each node's in the order it published",
        );
        assert.deepEqual(
          own,
          [...own].sort((x, y) => x[1] - y[1]),
        );
      }
      assert.equal(new Set(all.map((m) => m.epoch)).size, 1, "one epoch");
      const epoch = all[0].epoch!;
      // node B serves what node A published, with the same offsets (the last history_limit)
      const fromB = await b.broker.historyFrom("shared", epoch, 36);
      assert.ok(!isHistoryError(fromB), JSON.stringify(fromB));
      assert.deepEqual(
        fromB.map((m) => [m.offset, m.dataJson]),
        all.slice(36).map((m) => [m.offset, m.dataJson]),
      );
      await close();
    });

    it("restores on one node the session committed on the other", async () => {
      const { a, b, close } = await pair();
      await a.broker.commitSession("sid-x", '{"subs":["s"]}');
      assert.equal(await b.broker.restoreSession("sid-x"), '{"subs":["s"]}');
      await close();
    });

    it("shows one presence list, joins once and leaves once across nodes", async () => {
      const { a, b, close } = await pair();
      assert.deepEqual(await a.broker.presenceAdd("room", "s1", "u1", { n: "Ann" }), {
        type: "join",
        id: "u1",
        info: { n: "Ann" },
      });
      assert.equal(await b.broker.presenceAdd("room", "s2", "u1", { n: "Ann" }), undefined, "u1 is there");
      assert.deepEqual(await b.broker.presenceInfo("room", { returnRecords: true }), {
        type: "info",
        total: 1,
        records: [{ id: "u1", info: { n: "Ann" } }],
      });
      assert.equal(await a.broker.presenceRemove("room", "s1"), undefined, "s2 on node B keeps u1");
      assert.deepEqual(await b.broker.presenceRemove("room", "s2"), { type: "leave", id: "u1" });
      assert.deepEqual(
        [...a.presenter.events, ...b.presenter.events].map((e) => e.event.type),
        ["join", "leave"],
      );
      await close();
    });

    it("joins an id once when two nodes add its first sessions at the same time", async () => {
      const { a, b, close } = await pair();
      for (let round = 0; round < 10; round++) {
        const stream = `race-${round}`;
        const results = await Promise.all([
          a.broker.presenceAdd(stream, `a-${round}`, "u", null),
          b.broker.presenceAdd(stream, `b-${round}`, "u", null),
        ]);
        assert.equal(results.filter((r) => r !== undefined && !isBrokerError(r)).length, 1, `round ${round}`);
        const removed = await Promise.all([
          a.broker.presenceRemove(stream, `a-${round}`),
          b.broker.presenceRemove(stream, `b-${round}`),
        ]);
        assert.equal(removed.filter((r) => r !== undefined && !isBrokerError(r)).length, 1, "one leave");
      }
      await close();
    });

    it("numbers every publication of two busy nodes while both prune: no deadlock costs an offset", {
      timeout: 30_000,
    }, async () => {
      let t = Date.now();
      const now = () => t;
      const metrics = new Metrics();
      const { a, b, close } = await pair({ now, metrics, historyLimit: 3, historyTtlSec: 5 });
      const N = 1500;
      const pruning = (async () => {
        for (let i = 0; i < 20; i++) {
          t += 700; // history keeps expiring under the publishers
          await Promise.all([a.broker.expireNow(t), b.broker.expireNow(t)]);
        }
      })();
      for (let i = 0; i < N; i++) {
        (i % 2 ? a : b).broker.handleBroadcast(pub(`busy-${i % 13}`, i));
        if (i % 250 === 249) await Promise.all([a.broker.drained(), b.broker.drained()]);
      }
      await Promise.all([a.broker.drained(), b.broker.drained(), pruning]);
      const all = [...a.pubsub.messages, ...b.pubsub.messages];
      assert.equal(all.length, N);
      assert.equal(all.filter((m) => m.offset === undefined).length, 0, "every one numbered");
      assert.equal(new Set(all.map((m) => m.epoch)).size, 1, "one epoch: nothing went unnumbered");
      for (let s = 0; s < 13; s++) {
        const offsets = all.filter((m) => m.stream === `busy-${s}`).map((m) => m.offset!);
        assert.equal(new Set(offsets).size, offsets.length, `no offset twice in busy-${s}`);
        assert.equal(Math.max(...offsets), offsets.length, `no gap in busy-${s}`);
      }
      assert.equal(metrics.counter(ERRORS_METRIC, "").value, 0, "no failed operation");
      await close();
    });

    it("reports each expired record's leave from exactly one node when both sweep", {
      timeout: 30_000,
    }, async () => {
      let t = Date.now();
      const now = () => t;
      const { a, b, close } = await pair({ now });
      for (let i = 0; i < 300; i++) await a.broker.presenceAdd(`room-${i % 5}`, `dead-${i}`, `u${i}`, null);
      t += SETTINGS.presenceTtlSec * 1000 + 1000;
      await Promise.all([a.broker.expireNow(t), b.broker.expireNow(t), a.broker.expireNow(t)]);
      await Promise.all([a.broker.expireNow(t), b.broker.expireNow(t)]);
      const leaves = [...a.presenter.events, ...b.presenter.events].filter((e) => e.event.type === "leave");
      assert.equal(leaves.length, 300, "300 leaves in all");
      assert.equal(new Set(leaves.map((e) => e.event.id)).size, 300, "none twice");
      assert.deepEqual(await b.broker.presenceInfo("room-0", { returnRecords: false }), {
        type: "info",
        total: 0,
      });
      await close();
    });
  });

  describe("tables", () => {
    it("keeps history durable and prunes it in batches past its TTL and limit", async () => {
      let t = Date.now();
      const tablePrefix = prefix();
      const sql = pgClient(await pgUrl());
      try {
        const { broker, pubsub } = await build({ tablePrefix, now: () => t, historyLimit: 3 });
        for (let i = 1; i <= 7; i++) broker.handleBroadcast(pub("kept", i));
        for (let i = 1; i <= 2500; i++) broker.handleBroadcast(pub(`many-${i % 1250}`, i));
        await pubsub.count(2507, "every publication");
        const rows = async () =>
          Number((await sql.unsafe(`SELECT count(*)::int AS n FROM "${tablePrefix}_history"`))[0]!.n);
        assert.equal(await rows(), 3 + 2500, "the limit is kept on publish");
        t += SETTINGS.historyTtlSec * 1000 + 1000;
        await broker.expireNow(t);
        assert.equal(await rows(), 0, "past the TTL, pruned in batches of 1000");
        const epoch = pubsub.messages[0].epoch!;
        const gone = await broker.historyFrom("kept", epoch, 6);
        assert.ok(isHistoryError(gone) && /empty/.test(gone.error), JSON.stringify(gone));
        await broker.shutdown();
      } finally {
        await sql.end();
      }
    });

    it("serves a week-long --history_ttl from the table and prunes it only after the week", async () => {
      let t = Date.now();
      const week = 7 * 24 * 3600;
      const { broker, pubsub } = await build({ now: () => t, historyTtlSec: week, historyLimit: 1000 });
      for (let i = 1; i <= 600; i++) broker.handleBroadcast(pub("week", i));
      await broker.drained();
      const epoch = pubsub.messages[0].epoch!;
      t += 6 * 24 * 3600 * 1000;
      await broker.expireNow(t);
      const kept = await broker.historyFrom("week", epoch, 100);
      assert.ok(!isHistoryError(kept), JSON.stringify(kept));
      assert.equal(kept.length, 500, "six days later: all there");
      t += 2 * 24 * 3600 * 1000;
      await broker.expireNow(t);
      assert.ok(isHistoryError(await broker.historyFrom("week", epoch, 100)), "eight days later: gone");
      await broker.shutdown();
    });

    it("drops a stream idle for 10 history TTLs; offsets then carry on above every one issued", async () => {
      let t = Date.now();
      const { broker, pubsub } = await build({ now: () => t });
      for (const s of ["idle", "idle", "idle", "busy"]) broker.handleBroadcast(pub(s, s));
      const [first] = await pubsub.count(4, "4 publications");
      t += 10 * SETTINGS.historyTtlSec * 1000 - 1000;
      broker.handleBroadcast(pub("busy", "keeps it"));
      await pubsub.count(5, "busy's second");
      t += 2000;
      await broker.expireNow(t);
      broker.handleBroadcast(pub("idle", "back"));
      broker.handleBroadcast(pub("brand-new", "x"));
      const got = await pubsub.count(7, "after the drop");
      assert.deepEqual(
        got.slice(5).map((m) => [m.stream, m.offset, m.epoch]),
        [
          ["idle", 4, first.epoch],
          ["brand-new", 4, first.epoch],
        ],
        "above the highest offset a dropped stream gave out (3): no client's old offset comes back",
      );
      assert.ok(
        isHistoryError(await broker.historyFrom("idle", first.epoch!, 2)),
        "the old offset is refused",
      );
      await broker.shutdown();
    });

    it("drained() resolves once what was handed in went on to pub/sub (a broadcaster acks after it)", async () => {
      const { broker, pubsub } = await build();
      for (let i = 0; i < 300; i++) broker.handleBroadcast(pub(`d-${i % 7}`, i));
      assert.ok(pubsub.messages.length < 300, "numbering takes a round trip");
      await broker.drained();
      assert.equal(pubsub.messages.length, 300);
      assert.ok(pubsub.messages.every((m) => typeof m.offset === "number"));
      await broker.drained(); // nothing pending: at once
      await broker.shutdown();
    });

    it("gives no history to streams PostgreSQL cannot key, and still delivers them", async () => {
      const { broker, pubsub } = await build();
      const long = "x".repeat(4000);
      broker.handleBroadcast(pub(long, 1));
      broker.handleBroadcast(pub("nul\0name", 2));
      broker.handleBroadcast(pub("fine", 3));
      const got = await pubsub.count(3, "3 publications");
      assert.deepEqual(
        got.map((m) => m.offset),
        [undefined, undefined, 1],
      );
      assert.deepEqual(await broker.historySince(long, 0), []);
      assert.equal(
        await broker.presenceInfo(long, { returnRecords: false }).then((r) => !isBrokerError(r)),
        true,
      );
      await broker.shutdown();
    });

    it("refuses, in one line, a broker schema from a newer anycable-ts", async () => {
      const tablePrefix = prefix();
      const first = await build({ tablePrefix });
      await first.broker.shutdown();
      const sql = pgClient(await pgUrl());
      await sql.unsafe(`COMMENT ON TABLE "${tablePrefix}_meta" IS 'anycable broker schema 99'`);
      await sql.end();
      const { broker } = await make({ tablePrefix });
      await assert.rejects(
        broker.start(() => {}),
        /broker schema is version 99.*newer than this server's 1/,
      );
      await broker.shutdown();
    });

    it("only checks the tables with --postgres_ensure_schema=false, failing when they are missing", async () => {
      const pubsub = new RecordingPubSub();
      const broker = new PostgresBroker(
        {
          postgres: defaults(await pgUrl(), {
            brokerTablePrefix: prefix(),
            startupAttempts: 1,
            ensureSchema: false,
          }),
          connection: { private: true },
          pubsub,
          ...SETTINGS,
        },
        silent,
      );
      await assert.rejects(
        broker.start(() => {}),
        /broker schema does not fit: table \S+_meta does not exist/,
      );
      await broker.shutdown();
    });
  });

  describe("PostgreSQL unreachable", () => {
    it("answers with error values, delivers without offsets, then keeps its history under a new epoch", {
      timeout: 30_000,
    }, async () => {
      const own = await startPostgres();
      let db: PostgresProcess = own;
      try {
        const metrics = new Metrics();
        const { broker, pubsub } = await build({ url: own.url, metrics });
        broker.handleBroadcast(pub("live", 1));
        broker.handleBroadcast(pub("live", 2));
        await pubsub.count(2, "before the outage");
        const epoch = pubsub.messages[0].epoch!;
        assert.equal(pubsub.messages[1].offset, 2);
        await broker.commitSession("sid-1", "snap");
        await db.stop("immediate");
        const started = performance.now();
        broker.handleBroadcast(pub("live", 3));
        broker.handleBroadcast({ ...pub("live", "presence"), transient: true });
        const got = await pubsub.count(4, "the publications made while PostgreSQL is down");
        assert.deepEqual(
          got.slice(2).map((m) => [m.dataJson, m.offset]),
          [
            ["3", undefined],
            ['"presence"', undefined],
          ],
        );
        assert.ok(isHistoryError(await broker.historyFrom("live", epoch, 1)), "reject_history");
        assert.equal(await broker.restoreSession("sid-1"), undefined, "a fresh session instead");
        assert.ok(isBrokerError(await broker.presenceAdd("room", "s1", "u1", null)));
        assert.ok(performance.now() - started < 2500, "nothing waited past the call timeout");
        assert.ok(metrics.counter(ERRORS_METRIC, "").value >= 3);

        db = await db.restart();
        // what was kept before the outage is still there (durable), and the session restores
        await waitFor(
          async () => (await broker.restoreSession("sid-1")) === "snap",
          "the session back",
          15_000,
        );
        const kept = await broker.historySince("live", 0);
        assert.ok(!isHistoryError(kept));
        assert.deepEqual(
          kept.map((m) => m.dataJson),
          ["1", "2"],
        );
        // the first publication numbered after the gap starts a new epoch: resuming across the
        // unnumbered message is refused, not served with a hole in it
        broker.handleBroadcast(pub("live", 4));
        const [after] = (await pubsub.count(5, "after the restart")).slice(4);
        assert.equal(after.offset, 3);
        assert.notEqual(after.epoch, epoch);
        const old = await broker.historyFrom("live", epoch, 2);
        assert.ok(isHistoryError(old) && /unknown epoch/.test(old.error));
        await broker.shutdown();
      } finally {
        await db.destroy();
      }
    });
  });
});
