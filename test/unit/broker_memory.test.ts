// The in-memory broker: the Broker contract with every capability, then what is its own (bounds,
// offsets after a drop, the idle-stream lifetime, the start-up line) and its deadline heap.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isHistoryError, type PresenceEvent, type Presenter } from "../../src/broker/broker.ts";
import { DeadlineHeap, type Timed } from "../../src/broker/deadlines.ts";
import { MemoryBroker, type MemoryBrokerOptions } from "../../src/broker/memory.ts";
import { prng } from "../support/prng.ts";
import { brokerContract, RecordingPresenter, RecordingPubSub } from "./contracts/broker_contract.ts";

const SETTINGS = { historyLimit: 5, historyTtlSec: 60, sessionsTtlSec: 120, presenceTtlSec: 15 };

/** A broker on a hand-moved clock; `advance` runs its expiry as the cable's ticker would. */
function build(extra: Partial<MemoryBrokerOptions> = {}) {
  const pubsub = new RecordingPubSub();
  const presenter = new RecordingPresenter();
  let t = Date.UTC(2030, 0, 1);
  const broker = new MemoryBroker({
    pubsub,
    presenter,
    ...SETTINGS,
    maxStreams: 1000,
    maxSessions: 1000,
    now: () => t,
    ...extra,
  });
  const clock = {
    now: () => t,
    advance(ms: number) {
      t += ms;
      broker.expire(t);
    },
  };
  return { broker, pubsub, presenter, clock };
}

brokerContract(
  "memory",
  async (pubsub, presenter) => {
    let t = Date.now();
    const broker = new MemoryBroker({
      pubsub,
      presenter,
      ...SETTINGS,
      maxStreams: 1000,
      maxSessions: 1000,
      now: () => t,
    });
    return {
      broker,
      settings: SETTINGS,
      clock: {
        now: () => t,
        advance(ms: number) {
          t += ms;
          broker.expire(t);
        },
      },
      async close() {},
    };
  },
  { history: true, sessions: true, presence: true, clock: true },
);

async function offsets(broker: MemoryBroker, stream: string, since = 0): Promise<number[]> {
  const r = await broker.historySince(stream, since);
  assert.ok(!isHistoryError(r), JSON.stringify(r));
  return r.map((m) => m.offset as number);
}

const pub = (stream: string, data: unknown) => ({ stream, dataJson: JSON.stringify(data) });

describe("MemoryBroker", () => {
  it("announces itself as anycable-go's in-memory broker, with its epoch and settings", () => {
    const { broker } = build({ epoch: "Ab_9" });
    assert.equal(
      broker.announce(),
      "Using in-memory broker (epoch: Ab_9, history limit: 5, history ttl: 60s, sessions ttl: 120s, presence ttl: 15s)",
    );
  });

  it("picks a 4-character epoch of its own and stamps it on every message", async () => {
    const a = build().broker;
    const { broker, pubsub } = build();
    assert.match(broker.epoch, /^[A-Za-z0-9_-]{4}$/);
    assert.notEqual(a.epoch, broker.epoch, "a new epoch per broker");
    broker.handleBroadcast(pub("s", 1));
    assert.equal(pubsub.messages.length, 1, "passed on synchronously");
    assert.deepEqual(pubsub.messages[0], { stream: "s", dataJson: "1", offset: 1, epoch: broker.epoch });
  });

  it("keeps at most max_streams streams, dropping the least recently published", async () => {
    const { broker } = build({ maxStreams: 1000, historyLimit: 3 });
    for (let i = 0; i < 100_000; i++) broker.handleBroadcast(pub(`flood-${i}`, i));
    assert.deepEqual(broker.stats(), {
      streams: 1000,
      messages: 1000,
      sessions: 0,
      presenceRecords: 0,
      presenceStreams: 0,
    });
    assert.deepEqual(await offsets(broker, "flood-0"), [], "the oldest streams are gone");
    assert.equal((await offsets(broker, "flood-99999")).length, 1, "the newest is kept");
    assert.equal((await offsets(broker, "flood-99000")).length, 1, "the 1000th newest is kept");
    assert.deepEqual(await offsets(broker, "flood-98999"), []);
  });

  it("counts a publication to a stream as its use: the one published longest ago is evicted", async () => {
    const { broker } = build({ maxStreams: 2 });
    broker.handleBroadcast(pub("a", 1));
    broker.handleBroadcast(pub("b", 1));
    broker.handleBroadcast(pub("a", 2));
    broker.handleBroadcast(pub("c", 1));
    assert.deepEqual(await offsets(broker, "a"), [1, 2]);
    assert.deepEqual(await offsets(broker, "b"), []);
    assert.equal(broker.stats().streams, 2);
  });

  it("numbers new streams from 1 until a stream is dropped, then above every offset it issued", async () => {
    const { broker, pubsub } = build({ maxStreams: 2 });
    for (let i = 0; i < 3; i++) broker.handleBroadcast(pub("a", i));
    broker.handleBroadcast(pub("b", 0));
    assert.deepEqual(
      pubsub.messages.map((m) => [m.stream, m.offset]),
      [
        ["a", 1],
        ["a", 2],
        ["a", 3],
        ["b", 1],
      ],
    );
    broker.handleBroadcast(pub("c", 0)); // evicts a (offsets up to 3 issued)
    broker.handleBroadcast(pub("a", 0)); // a again: evicts b; must not reuse 1..3
    assert.deepEqual(
      pubsub.messages.slice(4).map((m) => [m.stream, m.offset]),
      [
        ["c", 4],
        ["a", 5],
      ],
    );
    const r = await broker.historyFrom("a", broker.epoch, 2);
    assert.ok(isHistoryError(r), `an offset of the dropped "a" is refused, got ${JSON.stringify(r)}`);
  });

  it("keeps an idle stream (and its offsets) for 10 history TTLs, then deletes it", async () => {
    const { broker, pubsub, clock } = build();
    const ttlMs = SETTINGS.historyTtlSec * 1000;
    broker.handleBroadcast(pub("idle", 1));
    broker.handleBroadcast(pub("busy", 1));
    clock.advance(ttlMs * 5);
    broker.handleBroadcast(pub("busy", 2));
    assert.equal(pubsub.messages.at(-1)?.offset, 2, "a stream with expired history carries on its offsets");
    clock.advance(ttlMs * 5);
    assert.equal(broker.stats().streams, 2, "exactly 10 TTLs idle: still kept");
    const empty = await broker.historyFrom("idle", broker.epoch, 1);
    assert.ok(isHistoryError(empty) && /empty/.test(empty.error), JSON.stringify(empty));
    clock.advance(1000);
    assert.equal(broker.stats().streams, 1, "past 10 TTLs idle: deleted");
    const gone = await broker.historyFrom("idle", broker.epoch, 1);
    assert.ok(isHistoryError(gone) && /not found/.test(gone.error), JSON.stringify(gone));
    broker.handleBroadcast(pub("idle", 2));
    assert.equal(pubsub.messages.at(-1)?.offset, 3, "recreated above every offset issued (busy's 2)");
  });

  it("trims a long history to the limit and counts what it keeps", async () => {
    const { broker, clock } = build({ historyLimit: 200 });
    for (let i = 1; i <= 1000; i++) broker.handleBroadcast(pub("long", i));
    const kept = await broker.historyFrom("long", broker.epoch, 900);
    assert.ok(!isHistoryError(kept));
    assert.deepEqual(
      kept.map((m) => [m.offset, m.dataJson]),
      Array.from({ length: 100 }, (_, i) => [901 + i, String(901 + i)]),
    );
    assert.deepEqual((await offsets(broker, "long")).slice(0, 2), [801, 802]);
    assert.equal(broker.stats().messages, 200);
    clock.advance(SETTINGS.historyTtlSec * 1000 + 1000);
    assert.deepEqual(await offsets(broker, "long"), []);
    assert.equal(broker.stats().messages, 0, "expired entries are no longer counted once trimmed");
  });

  it("keeps at most max_sessions sessions, dropping the one expiring soonest", async () => {
    const { broker } = build({ maxSessions: 1000 });
    for (let i = 0; i < 100_000; i++) await broker.commitSession(`s-${i}`, String(i));
    assert.equal(broker.stats().sessions, 1000);
    assert.equal(await broker.restoreSession("s-0"), undefined);
    assert.equal(await broker.restoreSession("s-99999"), "99999");

    const small = build({ maxSessions: 2 });
    await small.broker.commitSession("a", "a");
    small.clock.advance(1000);
    await small.broker.commitSession("b", "b");
    small.clock.advance(1000);
    small.broker.touchSessions(["a"]); // a now expires after b
    await small.broker.commitSession("c", "c");
    assert.deepEqual(
      [await small.broker.restoreSession("a"), await small.broker.restoreSession("b")],
      ["a", undefined],
    );
    assert.equal(await small.broker.restoreSession("c"), "c");
  });

  it("keeps no session at all when sessions_ttl is 0", async () => {
    const { broker } = build({ sessionsTtlSec: 0 });
    await broker.commitSession("s1", "x");
    assert.equal(await broker.restoreSession("s1"), undefined);
    assert.equal(broker.stats().sessions, 0);
  });

  it("tells the presenter after its state changed, and goes on when the presenter throws", async () => {
    const seen: [string, number][] = [];
    const { broker, clock } = build({
      presenter: {
        presenceChanged(_stream: string, event: PresenceEvent) {
          seen.push([event.type, broker.stats().presenceRecords]);
          throw new Error("presenter failure");
        },
      } satisfies Presenter,
    });
    assert.deepEqual(await broker.presenceAdd("r1", "s1", "u1", 1), { type: "join", id: "u1", info: 1 });
    await broker.presenceAdd("r2", "s1", "u1", 1);
    await broker.presenceAdd("r2", "s2", "u2", 1);
    assert.deepEqual(seen, [
      ["join", 1],
      ["join", 2],
      ["join", 3],
    ]);
    clock.advance(SETTINGS.presenceTtlSec * 1000 + 1);
    assert.deepEqual(
      seen.slice(3),
      [
        ["leave", 0],
        ["leave", 0],
        ["leave", 0],
      ],
      "every leave told, each after all expired records were gone",
    );
    assert.deepEqual(broker.stats(), {
      streams: 0,
      messages: 0,
      sessions: 0,
      presenceRecords: 0,
      presenceStreams: 0,
    });
  });

  it("keeps nothing of a stream's presence once its last record is removed", async () => {
    const { broker } = build();
    for (let i = 0; i < 1000; i++) await broker.presenceAdd(`room-${i}`, `s-${i % 10}`, `u-${i}`, i);
    assert.deepEqual([broker.stats().presenceStreams, broker.stats().presenceRecords], [1000, 1000]);
    for (let i = 0; i < 1000; i++) await broker.presenceRemove(`room-${i}`, `s-${i % 10}`);
    assert.deepEqual([broker.stats().presenceStreams, broker.stats().presenceRecords], [0, 0]);
  });

  it("drops a session at its deadline (anycable-go: deadline <= now)", async () => {
    const { broker, clock } = build();
    await broker.commitSession("s1", "x");
    clock.advance(SETTINGS.sessionsTtlSec * 1000 - 1);
    assert.equal(await broker.restoreSession("s1"), "x");
    clock.advance(1);
    assert.equal(await broker.restoreSession("s1"), undefined);
    assert.equal(broker.stats().sessions, 0);
  });

  it("keeps a presence record until just past presence_ttl (anycable-go: deadline < now)", async () => {
    const { broker, presenter, clock } = build();
    await broker.presenceAdd("room", "s1", "u1", null);
    clock.advance(SETTINGS.presenceTtlSec * 1000);
    assert.equal(broker.stats().presenceRecords, 1);
    clock.advance(1);
    assert.equal(broker.stats().presenceRecords, 0);
    assert.deepEqual(presenter.events.at(-1), { stream: "room", event: { type: "leave", id: "u1" } });
  });
});

describe("DeadlineHeap", () => {
  interface Item extends Timed {
    id: number;
  }

  it("pops in deadline order through random pushes, moves and removes", () => {
    const rand = prng(20240607);
    const heap = new DeadlineHeap<Item>();
    const live = new Map<number, Item>();
    let next = 0;
    const popped: number[] = [];
    for (let step = 0; step < 20_000; step++) {
      const r = rand();
      const ids = [...live.keys()];
      const any = ids.length ? live.get(ids[Math.floor(rand() * ids.length)]!)! : undefined;
      if (r < 0.4 || !any) {
        const item: Item = { id: next++, deadline: Math.floor(rand() * 1000), slot: -1 };
        heap.push(item);
        live.set(item.id, item);
      } else if (r < 0.65) {
        heap.move(any, Math.floor(rand() * 1000));
      } else if (r < 0.8) {
        heap.remove(any);
        live.delete(any.id);
        assert.equal(any.slot, -1);
      } else {
        const top = heap.pop()!;
        const min = Math.min(...[...live.values()].map((i) => i.deadline));
        assert.equal(top.deadline, min, `step ${step}: the soonest deadline`);
        live.delete(top.id);
        popped.push(top.deadline);
      }
      assert.equal(heap.size, live.size);
    }
    let last = -1;
    while (heap.size > 0) {
      const top = heap.pop()!;
      assert.ok(top.deadline >= last, "drained in order");
      last = top.deadline;
    }
    assert.ok(popped.length > 1000, "the run popped often");
    assert.equal(heap.peek(), undefined);
    assert.equal(heap.pop(), undefined);
  });
});
