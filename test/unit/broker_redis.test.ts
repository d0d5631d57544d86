// The Redis broker against a real redis-server: the Broker contract unchanged (with a hand-moved
// clock: expiry follows the broker's clock, not Redis's), then what only a shared store shows —
// two brokers (two nodes) agreeing on offsets, epochs, sessions and presence, a flushed Redis,
// foreign data, and Redis going away.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { isBrokerError, isHistoryError } from "../../src/broker/broker.ts";
import { ERRORS_METRIC, RedisBroker, type RedisBrokerOptions } from "../../src/broker/redis.ts";
import { Logger } from "../../src/log/logger.ts";
import { Metrics } from "../../src/metrics/registry.ts";
import { redisOptions } from "../support/redis_options.ts";
import { type RedisProbe, redisProbe } from "../support/redis_probe.ts";
import { hasService, type ServiceProcess, startRedis } from "../support/services.ts";
import { waitFor } from "../support/wait.ts";
import { brokerContract, RecordingPresenter, RecordingPubSub } from "./contracts/broker_contract.ts";

const SETTINGS = { historyLimit: 5, historyTtlSec: 60, sessionsTtlSec: 120, presenceTtlSec: 15 };
const silent = new Logger("error", "text", {}, { write() {} });
const available = hasService("redis-server");

let redis: ServiceProcess | undefined;
let starting: Promise<ServiceProcess> | undefined;
const redisUrl = async (): Promise<string> => {
  starting ??= startRedis().then((r) => (redis = r));
  return (await starting).url;
};

let seq = 0;
/** A key prefix of its own per broker family, so tests sharing one redis-server never meet. */
const prefix = () => `t${process.pid}.${++seq}:`;

async function build(
  extra: Partial<RedisBrokerOptions> & { metrics?: Metrics } = {},
): Promise<{ broker: RedisBroker; pubsub: RecordingPubSub; presenter: RecordingPresenter }> {
  const pubsub = new RecordingPubSub();
  const presenter = new RecordingPresenter();
  const { metrics, ...rest } = extra;
  const broker = new RedisBroker(
    {
      redis: redisOptions(await redisUrl()),
      pubsub,
      presenter,
      ...SETTINGS,
      keyPrefix: prefix(),
      ...rest,
    },
    silent,
    metrics,
  );
  await broker.start(() => {});
  await waitFor(() => broker.connected, "the broker's Redis connection", 5000);
  return { broker, pubsub, presenter };
}

const pub = (stream: string, data: unknown) => ({ stream, dataJson: JSON.stringify(data) });

describe("Redis broker", { skip: !available }, () => {
  after(async () => {
    await redis?.stop();
  });

  brokerContract(
    "redis",
    async (pubsub, presenter) => {
      let t = Date.now();
      const broker = new RedisBroker(
        {
          redis: redisOptions(await redisUrl()),
          pubsub,
          presenter,
          ...SETTINGS,
          keyPrefix: prefix(),
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
            await waitFor(() => broker.connected, "connected", 5000);
            broker.expire(t);
            await broker.expireNow(t);
          },
        },
        async close() {},
      };
    },
    { history: true, sessions: true, presence: true, clock: true },
  );

  describe("two nodes on one Redis", () => {
    let probe: RedisProbe;
    before(async () => {
      probe = await redisProbe(await redisUrl());
    });
    after(async () => {
      await probe?.close();
    });

    async function pair() {
      const keyPrefix = prefix();
      const a = await build({ keyPrefix });
      const b = await build({ keyPrefix });
      return { a, b, close: () => Promise.all([a.broker.shutdown(), b.broker.shutdown()]) };
    }

    it("numbers one stream's messages as one sequence under one epoch, whichever node publishes", async () => {
      const { a, b, close } = await pair();
      for (let i = 1; i <= 6; i++) (i % 2 ? a : b).broker.handleBroadcast(pub("shared", i));
      await a.pubsub.count(3, "node A's publications");
      await b.pubsub.count(3, "node B's publications");
      const all = [...a.pubsub.messages, ...b.pubsub.messages].sort((x, y) => x.offset! - y.offset!);
      assert.deepEqual(
        all.map((m) => m.offset),
        [1, 2, 3, 4, 5, 6],
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
      // node B serves what node A published, with the same offsets
      const fromB = await b.broker.historyFrom("shared", epoch, 2);
      assert.ok(!isHistoryError(fromB), JSON.stringify(fromB));
      assert.deepEqual(
        fromB.map((m) => m.offset),
        [3, 4, 5, 6],
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

    it("reports each expired record's leave from exactly one node when both sweep", async () => {
      const keyPrefix = prefix();
      let t = Date.now();
      const now = () => t;
      const a = await build({ keyPrefix, now });
      const b = await build({ keyPrefix, now });
      for (let i = 0; i < 50; i++) await a.broker.presenceAdd(`room-${i % 5}`, `dead-${i}`, `u${i}`, null);
      t += SETTINGS.presenceTtlSec * 1000 + 1000;
      await Promise.all([a.broker.expireNow(t), b.broker.expireNow(t), a.broker.expireNow(t)]);
      const leaves = [...a.presenter.events, ...b.presenter.events].filter((e) => e.event.type === "leave");
      assert.equal(leaves.length, 50, "50 leaves in all");
      assert.equal(new Set(leaves.map((e) => e.event.id)).size, 50, "none twice");
      assert.deepEqual(await b.broker.presenceInfo("room-0", { returnRecords: false }), {
        type: "info",
        total: 0,
      });
      assert.equal(await probe.zCard(`${keyPrefix}pd`), 0, "no deadlines left behind");
      await Promise.all([a.broker.shutdown(), b.broker.shutdown()]);
    });

    it("starts a new epoch after Redis lost its data (FLUSHALL), refusing the old one", async () => {
      const { a, b, close } = await pair();
      a.broker.handleBroadcast(pub("flushed", 1));
      const [before] = await a.pubsub.count(1, "before the flush");
      await probe.flushAll();
      b.broker.handleBroadcast(pub("flushed", 2));
      const [afterFlush] = await b.pubsub.count(1, "after the flush");
      assert.notEqual(afterFlush.epoch, before.epoch, "a new epoch");
      assert.equal(afterFlush.offset, 1, "numbered from 1 again");
      const old = await a.broker.historyFrom("flushed", before.epoch!, 1);
      assert.ok(isHistoryError(old), "the old epoch is refused: the client gets reject_history");
      assert.match(old.error, /unknown epoch/);
      await close();
    });

    it("drops a stream idle for 10 history TTLs; offsets then carry on above every one issued", async () => {
      const keyPrefix = prefix();
      let t = Date.now();
      const { broker, pubsub } = await build({ keyPrefix, now: () => t });
      for (const s of ["idle", "idle", "idle", "busy"]) broker.handleBroadcast(pub(s, s));
      const [first] = await pubsub.count(4, "4 publications");
      t += 10 * SETTINGS.historyTtlSec * 1000 - 1000;
      broker.handleBroadcast(pub("busy", "keeps it"));
      await pubsub.count(5, "busy's second");
      t += 2000;
      await broker.expireNow(t);
      assert.equal(await probe.hGet(`${keyPrefix}o`, "idle"), null, "idle's offset is gone");
      assert.equal(await probe.hGet(`${keyPrefix}o`, "busy"), "2", "busy's stays");
      broker.handleBroadcast(pub("idle", "back"));
      broker.handleBroadcast(pub("brand-new", "x"));
      const got = await pubsub.count(7, "after the drop");
      assert.deepEqual(
        got.slice(5).map((m) => [m.stream, m.offset, m.epoch]),
        [
          ["idle", 4, first.epoch],
          ["brand-new", 5, first.epoch],
        ],
        "above the highest offset issued (3, then 4): no client's old offset comes back",
      );
      assert.ok(
        isHistoryError(await broker.historyFrom("idle", first.epoch!, 2)),
        "the old offset is refused",
      );
      await broker.shutdown();
    });

    it("skips foreign history entries and counts them", async () => {
      const metrics = new Metrics();
      const keyPrefix = prefix();
      const { broker, pubsub } = await build({ keyPrefix, metrics });
      broker.handleBroadcast(pub("mixed", 1));
      broker.handleBroadcast(pub("mixed", 2));
      const [first] = await pubsub.count(2, "2 publications");
      // another program's entry, without our fields, between ours
      await probe.xAdd(`${keyPrefix}h:mixed`, "0-3", { junk: "yes" });
      await probe.hIncrBy(`${keyPrefix}o`, "mixed", 1);
      broker.handleBroadcast(pub("mixed", 4));
      await pubsub.count(3, "the third publication");
      const got = await broker.historyFrom("mixed", first.epoch!, 1);
      assert.ok(!isHistoryError(got), JSON.stringify(got));
      assert.deepEqual(
        got.map((m) => m.offset),
        [2, 4],
      );
      assert.ok(metrics.counter(ERRORS_METRIC, "").value >= 1, "counted");
      await broker.shutdown();
    });
  });

  describe("Redis unreachable", () => {
    it("answers with error values at once and delivers publications without offsets, in order", async () => {
      const dead = await startRedis();
      const metrics = new Metrics();
      const pubsub = new RecordingPubSub();
      const broker = new RedisBroker(
        { redis: redisOptions(dead.url), pubsub, ...SETTINGS, keyPrefix: prefix() },
        silent,
        metrics,
      );
      await broker.start(() => assert.fail("a broker outage is never fatal"));
      await waitFor(() => broker.connected, "connected", 5000);
      broker.handleBroadcast(pub("live", 1));
      await pubsub.count(1, "the first publication");
      assert.equal(pubsub.messages[0].offset, 1);
      await dead.stop();
      await waitFor(() => !broker.connected, "the broker noticed", 5000);
      const started = performance.now();
      broker.handleBroadcast(pub("live", 2));
      broker.handleBroadcast({ ...pub("live", "presence"), transient: true });
      broker.handleBroadcast(pub("live", 3));
      const got = await pubsub.count(4, "the publications made while Redis is down");
      assert.deepEqual(
        got.slice(1).map((m) => [m.dataJson, m.offset]),
        [
          ["2", undefined],
          ['"presence"', undefined],
          ["3", undefined],
        ],
      );
      const history = await broker.historyFrom("live", pubsub.messages[0].epoch!, 0);
      assert.ok(isHistoryError(history), "reject_history");
      assert.equal(await broker.restoreSession("any"), undefined, "a fresh session instead");
      assert.ok(isBrokerError(await broker.presenceAdd("room", "s1", "u1", null)));
      assert.ok(performance.now() - started < 2000, "nothing waited for a timeout");
      assert.ok(metrics.counter(ERRORS_METRIC, "").value >= 4);
      await broker.shutdown();
    });
  });
});
