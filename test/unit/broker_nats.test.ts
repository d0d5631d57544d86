// The NATS broker against a real `nats-server -js`: the Broker contract unchanged, then what only a
// shared JetStream shows — anycable-go's layout (streams, buckets, keys), two brokers (two nodes)
// agreeing on offsets, epochs, sessions and presence, a dead node's presence swept by a survivor,
// a stream deleted mid-run, foreign data, NATS going away and a server that comes back empty.
//
// Time: JetStream expires messages and KV entries by its own clock (MaxAge), which a test cannot
// move, so the contract's clock here is the real one with short TTLs (6 s): `advance(ms)` lets
// that much time pass — the passage of time is what those tests are about — then runs the
// broker's expiry as the cable's ticker would.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type JetStreamManager, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { isBrokerError, isHistoryError } from "../../src/broker/broker.ts";
import { ERRORS_METRIC, NatsBroker, type NatsBrokerOptions } from "../../src/broker/nats.ts";
import {
  isKvKey,
  jetstreamName,
  keyToken,
  parsePresenceValue,
  presenceKey,
} from "../../src/broker/nats_layout.ts";
import { Logger } from "../../src/log/logger.ts";
import { Metrics } from "../../src/metrics/registry.ts";
import { parseServers } from "../../src/nats/options.ts";
import { hasService, type NatsProcess, startNats } from "../support/services.ts";
import { waitFor } from "../support/wait.ts";
import { brokerContract, RecordingPresenter, RecordingPubSub } from "./contracts/broker_contract.ts";

const SETTINGS = { historyLimit: 5, historyTtlSec: 6, sessionsTtlSec: 6, presenceTtlSec: 6 };
const silent = new Logger("error", "text", {}, { write() {} });
const available = hasService("nats-server");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pub = (stream: string, data: unknown) => ({ stream, dataJson: JSON.stringify(data) });

describe("layout (nats_layout.ts)", () => {
  it("names a stream's JetStream stream _ac_<stream> as anycable-go, hashing what nats-server refuses", () => {
    assert.equal(jetstreamName("chat_42"), "_ac_chat_42");
    assert.equal(jetstreamName("room:1@x-y"), "_ac_room:1@x-y");
    assert.equal(jetstreamName("é"), "_ac_é");
    const refused = ["a.b", "a*", "a>", "gid://app/Room/1", "a\\b", "a b", "a\tb", "a\nb", "\u0001", ""];
    const long = "x".repeat(252); // 4 + 252 bytes > 255
    const names = [...refused, long].map(jetstreamName);
    for (const n of names) assert.match(n, /^_acx_[A-Za-z0-9_-]{43}$/);
    assert.equal(new Set(names).size, names.length, "distinct names get distinct streams");
    assert.equal(jetstreamName("x".repeat(251)), `_ac_${"x".repeat(251)}`, "255 bytes is the limit");
  });

  it("escapes any text into one KV key token, injectively", () => {
    assert.equal(keyToken("room_1-A"), "room_1-A");
    assert.equal(keyToken("a.b c"), "a=2Eb=20c");
    assert.equal(keyToken("="), "=3D");
    assert.equal(keyToken(""), "=");
    assert.equal(keyToken("é"), "=C3=A9");
    const long = keyToken("é".repeat(100));
    assert.match(long, /^==[A-Za-z0-9_-]{43}$/);
    const samples = ["", "=", "==", "=3D", "a.b", "a=2Eb", "é", "=C3=A9", "x".repeat(300), "y".repeat(300)];
    assert.equal(new Set(samples.map(keyToken)).size, samples.length);
    for (const s of samples) assert.ok(isKvKey(keyToken(s)), `${keyToken(s)} is a valid key`);
    assert.ok(isKvKey(presenceKey("a.b", "user 1")));
  });

  it("takes session ids as keys when NATS KV can, as anycable-go does", () => {
    assert.ok(isKvKey("yWbH-8BFCg_Y3xZb1JzRb"));
    for (const bad of ["", "a b", ".a", "a.", "a..b", "a*", "a>", "é"]) assert.ok(!isKvKey(bad), bad);
  });

  it("reads presence values of its own shape only", () => {
    assert.deepEqual(parsePresenceValue('{"stream":"s","id":"u","info":1,"sessions":{"s1":"n1"}}'), {
      stream: "s",
      id: "u",
      info: 1,
      sessions: { s1: "n1" },
    });
    for (const bad of [
      "",
      "[]",
      "null",
      '{"id":"u"}',
      '{"stream":"s","id":1,"sessions":{}}',
      '{"stream":"s","id":"u","sessions":{"a":1}}',
    ]) {
      assert.equal(parsePresenceValue(bad), undefined, bad);
    }
  });
});

describe("NATS broker", { skip: !available }, () => {
  let nats: NatsProcess;
  let probe: NatsConnection;
  let jsm: JetStreamManager;

  before(async () => {
    nats = await startNats();
    probe = await connect({ servers: nats.url });
    jsm = await jetstreamManager(probe);
  });
  after(async () => {
    await probe?.close();
    await nats?.stop();
  });

  /** Every stream and bucket gone: each test starts on an empty JetStream (a fresh epoch). */
  async function wipe(): Promise<void> {
    const names: string[] = [];
    for await (const s of jsm.streams.list()) names.push(s.config.name);
    for (const n of names) await jsm.streams.delete(n);
  }

  const started: NatsBroker[] = [];
  async function build(
    extra: Partial<NatsBrokerOptions> & { metrics?: Metrics } = {},
  ): Promise<{ broker: NatsBroker; pubsub: RecordingPubSub; presenter: RecordingPresenter }> {
    const pubsub = new RecordingPubSub();
    const presenter = new RecordingPresenter();
    const { metrics, ...rest } = extra;
    const broker = new NatsBroker(
      { nats: parseServers(nats.url), pubsub, presenter, ...SETTINGS, ...rest },
      silent,
      metrics,
    );
    await broker.start(() => {});
    await waitFor(() => broker.available, "the broker's JetStream", 5000);
    started.push(broker);
    return { broker, pubsub, presenter };
  }
  async function stopAll(): Promise<void> {
    await Promise.all(started.splice(0).map((b) => b.shutdown()));
  }

  brokerContract(
    "nats",
    async (pubsub, presenter) => {
      await wipe();
      const broker = new NatsBroker({ nats: parseServers(nats.url), pubsub, presenter, ...SETTINGS }, silent);
      return {
        broker,
        settings: SETTINGS,
        clock: {
          now: () => Date.now(),
          async advance(ms: number) {
            await sleep(ms);
            await broker.expireNow(Date.now());
          },
        },
        async close() {},
      };
    },
    { history: true, sessions: true, presence: true, clock: true },
  );

  describe("anycable-go's layout", () => {
    it("keeps history in _ac_<stream> (MaxMsgs, MaxAge; offsets are sequences), sessions by sid, the epoch", async () => {
      await wipe();
      const { broker, pubsub } = await build();
      for (let i = 1; i <= 3; i++) broker.handleBroadcast(pub("layout/1", i));
      broker.handleBroadcast(pub("chat_1", { text: "hi" }));
      const got = await pubsub.count(4, "4 publications");
      const info = await jsm.streams.info("_ac_chat_1");
      assert.equal(info.config.max_msgs, SETTINGS.historyLimit);
      assert.equal(info.config.max_age, SETTINGS.historyTtlSec * 1e9);
      assert.deepEqual(info.config.subjects, ["_ac_chat_1"]);
      const stored = await jsm.streams.getMessage("_ac_chat_1", { seq: 1 });
      assert.equal(stored?.string(), '{"text":"hi"}', "the payload is the data, no envelope");
      assert.equal(got[3].offset, 1);
      const hashed = await jsm.streams.info(jetstreamName("layout/1"));
      assert.equal(hashed.state.last_seq, 3, "a name with '/' goes to its hashed stream");
      assert.deepEqual(
        got.slice(0, 3).map((m) => m.offset),
        [1, 2, 3],
      );

      await broker.commitSession("sid-layout", '{"ids":"{}"}');
      const kvm = new Kvm(probe);
      const sessions = await kvm.open("_anycable_");
      assert.equal((await sessions.get("sid-layout"))?.string(), '{"ids":"{}"}');
      assert.equal((await sessions.status()).ttl, SETTINGS.sessionsTtlSec * 1000);
      const epochs = await kvm.open("_anycable_epoch_");
      assert.equal((await epochs.get("_epoch_"))?.string(), broker.epoch);
      assert.equal((await epochs.status()).ttl, 10 * SETTINGS.historyTtlSec * 1000);
      assert.equal(got[0].epoch, broker.epoch);
      await stopAll();
    });

    it("uses the epoch already in _anycable_epoch_ and a stream an anycable-go node made", async () => {
      await wipe();
      const kvm = new Kvm(probe);
      const epochs = await kvm.create("_anycable_epoch_", { ttl: 10 * SETTINGS.historyTtlSec * 1000 });
      await epochs.put("_epoch_", "GoGo");
      await jsm.streams.add({ name: "_ac_from_go", max_msgs: 50, max_age: 300e9, num_replicas: 1 });
      const js = jsm.jetstream();
      await js.publish("_ac_from_go", '{"n":1}');
      await js.publish("_ac_from_go", "plain text");
      const { broker, pubsub } = await build();
      assert.equal(broker.epoch, "GoGo");
      broker.handleBroadcast(pub("from_go", 3));
      const [m] = await pubsub.count(1, "the publication");
      assert.deepEqual([m.offset, m.epoch], [3, "GoGo"]);
      const r = await broker.historyFrom("from_go", "GoGo", 0);
      assert.ok(isHistoryError(r), "offset 0 is below the lowest kept (1)");
      const all = await broker.historySince("from_go", 0);
      assert.ok(!isHistoryError(all));
      assert.deepEqual(
        all.map((e) => [e.offset, e.dataJson]),
        [
          [1, '{"n":1}'],
          [2, '"plain text"'],
          [3, "3"],
        ],
        "what anycable-go wrote reads as it would deliver it",
      );
      await stopAll();
    });
  });

  describe("two nodes on one NATS", () => {
    it("numbers one stream's messages as one sequence under one epoch, whichever node publishes", async () => {
      await wipe();
      const a = await build();
      const b = await build();
      for (let i = 1; i <= 6; i++) (i % 2 ? a : b).broker.handleBroadcast(pub("shared", i));
      await a.pubsub.count(3, "node A's publications");
      await b.pubsub.count(3, "node B's publications");
      const all = [...a.pubsub.messages, ...b.pubsub.messages].sort((x, y) => x.offset! - y.offset!);
      assert.deepEqual(
        all.map((m) => m.offset),
        [1, 2, 3, 4, 5, 6],
      );
      assert.equal(new Set(all.map((m) => m.epoch)).size, 1, "one epoch");
      const epoch = all[0].epoch!;
      const fromB = await b.broker.historyFrom("shared", epoch, 2);
      assert.ok(!isHistoryError(fromB), JSON.stringify(fromB));
      assert.deepEqual(
        fromB.map((m) => m.offset),
        [3, 4, 5, 6],
      );
      // node B's copy is current the moment node A's next publication is acknowledged
      a.broker.handleBroadcast(pub("shared", 7));
      await a.pubsub.count(4, "the seventh");
      const latest = await b.broker.historyFrom("shared", epoch, 6);
      assert.ok(!isHistoryError(latest));
      assert.deepEqual(
        latest.map((m) => [m.offset, m.dataJson]),
        [[7, "7"]],
      );
      await stopAll();
    });

    it("serves a reconnect storm of one stream from its copy with a few JetStream requests", async () => {
      await wipe();
      const a = await build();
      const b = await build();
      for (let i = 1; i <= 5; i++) a.broker.handleBroadcast(pub("storm", i));
      const epoch = (await a.pubsub.count(5, "5 publications"))[0].epoch!;
      const probeSub = probe.subscribe("$JS.API.>");
      let apiCalls = 0;
      (async () => {
        for await (const _ of probeSub) apiCalls++;
      })();
      await probe.flush();
      const answers = await Promise.all(
        Array.from({ length: 500 }, () => b.broker.historyFrom("storm", epoch, 2)),
      );
      await probe.flush();
      probeSub.unsubscribe();
      for (const r of answers) {
        assert.ok(!isHistoryError(r));
        assert.deepEqual(
          r.map((m) => m.offset),
          [3, 4, 5],
        );
      }
      assert.ok(apiCalls <= 20, `500 readers, ${apiCalls} JetStream API requests`);
      await stopAll();
    });

    it("fetches a client's missed messages (and its own offset's), not the whole history", async () => {
      await wipe();
      const a = await build({ historyLimit: 100 });
      const b = await build({ historyLimit: 100 });
      for (let i = 1; i <= 100; i++) a.broker.handleBroadcast(pub("long", i));
      const epoch = (await a.pubsub.count(100, "100 publications"))[0].epoch!;
      const gets: string[] = [];
      const sub = probe.subscribe("$JS.API.STREAM.MSG.GET.>", {
        callback: (_e, m) => {
          gets.push(m.string());
        },
      });
      await probe.flush();
      const missed = async (offset: number) => {
        const r = await b.broker.historyFrom("long", epoch, offset);
        assert.ok(!isHistoryError(r), JSON.stringify(r));
        return r.map((m) => m.offset);
      };
      assert.deepEqual(await missed(95), [96, 97, 98, 99, 100]);
      await probe.flush();
      assert.equal(gets.length, 6, "messages 95..100");
      assert.deepEqual(await missed(90), [91, 92, 93, 94, 95, 96, 97, 98, 99, 100]);
      await probe.flush();
      assert.equal(gets.length, 6 + 5, "then 90..94 only");
      const all = await b.broker.historySince("long", 0);
      assert.ok(!isHistoryError(all));
      assert.equal(all.length, 100);
      await probe.flush();
      assert.equal(gets.length, 100, "and the rest once, for a since request");
      sub.unsubscribe();
      await stopAll();
    });

    it("restores on node B a session committed on node A; touches keep it, a newer commit wins", async () => {
      await wipe();
      const a = await build();
      const b = await build();
      await a.broker.commitSession("s-1", '{"v":1}');
      assert.equal(await b.broker.restoreSession("s-1"), '{"v":1}');
      await b.broker.commitSession("s-1", '{"v":2}');
      a.broker.touchSessions(["s-1", "s-none"]);
      await waitFor(async () => (await a.broker.restoreSession("s-1")) === '{"v":2}', "the newer snapshot");
      assert.equal(await a.broker.restoreSession("s-none"), undefined, "a touch creates nothing");
      await a.broker.commitSession("not a key", "{}");
      assert.equal(await a.broker.restoreSession("not a key"), undefined);
      await stopAll();
    });

    it("joins an id once cluster-wide, lists it from either node, leaves once after its last session", async () => {
      await wipe();
      const a = await build();
      const b = await build();
      const [ja, jb] = await Promise.all([
        a.broker.presenceAdd("room", "sa", "u1", { n: "a" }),
        b.broker.presenceAdd("room", "sb", "u1", { n: "b" }),
      ]);
      const joins = [ja, jb].filter((e) => e !== undefined);
      assert.equal(joins.length, 1, `one join for two concurrent sessions: ${JSON.stringify([ja, jb])}`);
      assert.equal(a.presenter.events.length + b.presenter.events.length, 1);
      await b.broker.presenceAdd("room", "sb2", "u2", null);
      for (const node of [a, b]) {
        const info = await node.broker.presenceInfo("room", { returnRecords: true });
        assert.ok(!isBrokerError(info));
        assert.equal(info.total, 2);
        assert.deepEqual(info.records?.map((r) => r.id).sort(), ["u1", "u2"]);
      }
      assert.equal(await a.broker.presenceRemove("room", "sa"), undefined, "u1 still has sb");
      assert.deepEqual(await b.broker.presenceRemove("room", "sb"), { type: "leave", id: "u1" });
      assert.deepEqual(await a.broker.presenceInfo("room", { returnRecords: false }), {
        type: "info",
        total: 1,
      });
      await stopAll();
    });

    it("sweeps a dead node's presence after its heartbeat runs out: one survivor tells each leave", async () => {
      await wipe();
      const ttl = { presenceTtlSec: 1 };
      const a = await build(ttl);
      const b = await build(ttl);
      const c = await build(ttl);
      await c.broker.presenceAdd("hall", "sc1", "carol", "C");
      await c.broker.presenceAdd("hall", "sc2", "dave", "D");
      await c.broker.presenceAdd("lobby", "sc1", "carol", "C");
      await a.broker.presenceAdd("hall", "sa1", "dave", "D");
      // node C dies: it neither removes its records nor heartbeats again
      await c.broker.shutdown();
      const t0 = Date.now();
      const leaves = () =>
        [...a.presenter.events, ...b.presenter.events]
          .filter((e) => e.event.type === "leave")
          .map((e) => `${e.stream}:${e.event.id}`)
          .sort();
      await waitFor(
        async () => {
          a.broker.touchPresence(["sa1"]); // node A's session is live
          await Promise.all([a.broker.expireNow(Date.now()), b.broker.expireNow(Date.now())]);
          return leaves().length >= 2;
        },
        "carol's leaves",
        10_000,
        200,
      );
      assert.deepEqual(leaves(), ["hall:carol", "lobby:carol"], "dave stays: node A still has him");
      assert.ok(Date.now() - t0 >= 1000, "not before the presence TTL");
      const info = await a.broker.presenceInfo("hall", { returnRecords: true });
      assert.ok(!isBrokerError(info));
      assert.deepEqual(
        info.records?.map((r) => r.id),
        ["dave"],
      );
      await stopAll();
    });
  });

  describe("faults", () => {
    it("adds its presence again after a survivor took it for dead and swept it", async () => {
      await wipe();
      const a = await build();
      const b = await build();
      await a.broker.presenceAdd("room", "sa", "ann", { n: 1 });
      // node B's clock far ahead: node A's heartbeat looks run out, B claims A and sweeps it
      await b.broker.expireNow(Date.now() + 60_000);
      assert.deepEqual(
        b.presenter.events.map((e) => [e.stream, e.event]),
        [["room", { type: "leave", id: "ann" }]],
      );
      assert.deepEqual(await a.broker.presenceInfo("room", { returnRecords: false }), {
        type: "info",
        total: 0,
      });
      a.broker.touchPresence(["sa"]);
      await a.broker.expireNow(Date.now() + 2500); // node A's next heartbeat finds its key taken
      assert.deepEqual(a.presenter.events.at(-1), {
        stream: "room",
        event: { type: "join", id: "ann", info: { n: 1 } },
      });
      assert.deepEqual(await b.broker.presenceInfo("room", { returnRecords: true }), {
        type: "info",
        total: 1,
        records: [{ id: "ann", info: { n: 1 } }],
      });
      await stopAll();
    });

    it("starts a new epoch when a stream it knows is deleted mid-run; the old one is refused", async () => {
      await wipe();
      const a = await build();
      const b = await build();
      a.broker.handleBroadcast(pub("doomed", 1));
      a.broker.handleBroadcast(pub("doomed", 2));
      const [first] = await a.pubsub.count(2, "2 publications");
      const oldEpoch = first.epoch!;
      assert.ok(!isHistoryError(await b.broker.historyFrom("doomed", oldEpoch, 1)), "node B has seen it");
      await jsm.streams.delete("_ac_doomed");
      a.broker.handleBroadcast(pub("doomed", 3));
      const [, , third] = await a.pubsub.count(3, "the publication after the delete");
      assert.equal(third.offset, 1, "the stream starts over");
      assert.notEqual(third.epoch, oldEpoch, "under a new epoch");
      await waitFor(() => b.broker.epoch === third.epoch, "node B on the new epoch");
      assert.ok(isHistoryError(await b.broker.historyFrom("doomed", oldEpoch, 1)));
      const fresh = await b.broker.historyFrom("doomed", third.epoch!, 1);
      assert.ok(!isHistoryError(fresh));
      assert.deepEqual(fresh, []);
      await stopAll();
    });

    it("keeps the epoch stored when its key expires; a key deleted on purpose gives a new one", async () => {
      await wipe();
      const a = await build();
      const epoch = a.broker.epoch;
      const kvm = new Kvm(probe);
      const epochs = await kvm.open("_anycable_epoch_");
      const entry = await epochs.get("_epoch_");
      // what the bucket's MaxAge does: the message goes, no delete marker stays
      await jsm.streams.deleteMessage("KV__anycable_epoch_", entry!.revision, false);
      assert.equal(await epochs.get("_epoch_"), null);
      await waitFor(
        async () => {
          await a.broker.expireNow(Date.now() + 3_600_000);
          return (await epochs.get("_epoch_"))?.string() === epoch;
        },
        "the epoch stored again",
        8000,
        250,
      );
      const b = await build();
      assert.equal(b.broker.epoch, epoch, "a node starting later joins it");
      await epochs.delete("_epoch_");
      await waitFor(
        async () => {
          await a.broker.expireNow(Date.now() + 3_600_000);
          return a.broker.epoch !== epoch && b.broker.epoch === a.broker.epoch;
        },
        "a new epoch on both nodes",
        8000,
        250,
      );
      await stopAll();
    });

    it("skips and counts foreign presence, epoch and node values", async () => {
      await wipe();
      const metrics = new Metrics();
      const { broker } = await build({ metrics });
      const kvm = new Kvm(probe);
      const presence = await kvm.open("_anycable_presence_");
      await broker.presenceAdd("mixed", "s1", "u1", "ok");
      await presence.put(presenceKey("mixed", "junk"), "not json");
      await presence.put(presenceKey("mixed", "shape"), '{"id":5}');
      const info = await broker.presenceInfo("mixed", { returnRecords: true });
      assert.deepEqual(info, { type: "info", total: 1, records: [{ id: "u1", info: "ok" }] });
      assert.ok(metrics.counterValue(ERRORS_METRIC) >= 2, "counted");
      // a foreign value where a record goes is replaced by a join
      assert.deepEqual(await broker.presenceAdd("mixed", "s2", "junk", 1), {
        type: "join",
        id: "junk",
        info: 1,
      });
      const nodes = await kvm.open("_anycable_presence_nodes_");
      await nodes.put("foreign", "{}");
      const before = metrics.counterValue(ERRORS_METRIC);
      await broker.expireNow(Date.now() + 10_000);
      assert.ok(metrics.counterValue(ERRORS_METRIC) > before, "a foreign node value counted");
      await stopAll();
    });

    it("after publications went out unkept (NATS away, its data kept), continues under a new epoch", async () => {
      const dir = mkdtempSync(join(tmpdir(), "acts-nats-kept-"));
      let own = await startNats(undefined, undefined, ["-sd", dir]);
      try {
        const { broker, pubsub } = await build({ nats: parseServers(own.url) });
        broker.handleBroadcast(pub("gap", "kept"));
        const [kept] = await pubsub.count(1, "the first");
        await own.stop();
        await waitFor(() => !broker.available, "the broker noticing");
        broker.handleBroadcast(pub("gap", "unkept"));
        const [, unkept] = await pubsub.count(2, "the one while NATS is away");
        assert.equal(unkept.offset, undefined);
        own = await own.restart();
        await waitFor(() => broker.available, "NATS back", 15_000);
        assert.equal(broker.epoch, kept.epoch, "the stored epoch is still there");
        broker.handleBroadcast(pub("gap", "after"));
        const [, , after] = await pubsub.count(3, "the one after");
        assert.equal(after.offset, 2, "the stream kept its sequence");
        assert.notEqual(after.epoch, kept.epoch, "a new epoch: resuming across the hole is refused");
        const r = await broker.historyFrom("gap", kept.epoch!, 1);
        assert.ok(isHistoryError(r) && /unknown epoch/.test(r.error), JSON.stringify(r));
        await stopAll();
      } finally {
        await own.stop();
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it("with NATS away: errors at once, broadcasts without offsets in order; then recovers", async () => {
      await wipe();
      const metrics = new Metrics();
      const { broker, pubsub } = await build({ metrics, callTimeoutMs: 1000 });
      broker.handleBroadcast(pub("away", "before"));
      const [before] = await pubsub.count(1, "before");
      await nats.stop();
      await waitFor(() => !broker.available, "the broker noticing");
      const t = performance.now();
      const h = await broker.historyFrom("away", before.epoch!, 1);
      assert.ok(isHistoryError(h) && /not connected|unavailable/.test(h.error), JSON.stringify(h));
      assert.equal(await broker.restoreSession("s-x"), undefined);
      assert.ok(isBrokerError(await broker.presenceAdd("r", "s", "u", null)));
      assert.ok(performance.now() - t < 500, "no waiting on a NATS that is not there");
      for (const n of [1, 2, 3]) broker.handleBroadcast(pub("away", n));
      const got = await pubsub.count(4, "live messages while NATS is away");
      assert.deepEqual(
        got.slice(1).map((m) => [m.dataJson, m.offset, m.epoch]),
        [
          ["1", undefined, undefined],
          ["2", undefined, undefined],
          ["3", undefined, undefined],
        ],
      );
      // back, but empty (its store went with it): the buckets are made again under a new epoch
      nats = await nats.restart();
      await probe.close();
      probe = await connect({ servers: nats.url });
      jsm = await jetstreamManager(probe);
      await waitFor(
        () => broker.available && broker.epoch !== before.epoch,
        "a new epoch after the restart",
        15_000,
      );
      broker.handleBroadcast(pub("away", "after"));
      const [after] = (await pubsub.count(5, "after")).slice(4);
      assert.deepEqual([after.offset, after.epoch], [1, broker.epoch]);
      assert.ok(
        isHistoryError(await broker.historyFrom("away", before.epoch!, 1)),
        "the old epoch is refused",
      );
      await stopAll();
    });
  });
});
