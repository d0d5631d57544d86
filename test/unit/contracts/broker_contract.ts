// The behaviour every Broker backend (none, memory, later redis / nats) must show, written against
// the interface only. History, session and presence tests run for real on a backend whose
// capabilities say it has them, and are not registered on one that has not; tests that need time
// to pass run only when the harness can move the broker's clock.
import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import type { RemoteCommand, StreamMessage, StreamPublication } from "../../../src/broadcast/publication.ts";
import {
  type Broker,
  type HistoryError,
  isBrokerError,
  isHistoryError,
  PRESENCE_ID_MAX_BYTES,
  PRESENCE_INFO_MAX_BYTES,
  type PresenceEvent,
  type PresenceInfo,
  type Presenter,
} from "../../../src/broker/broker.ts";
import type { PubSub } from "../../../src/pubsub/pubsub.ts";
import { waitFor } from "../../support/wait.ts";
import { itWhen } from "./register.ts";

/** The broker's time, under the harness's control. */
export interface BrokerClock {
  /** The broker's current time (ms). */
  now(): number;
  /** Moves the broker's time on by `ms`, then runs its expiry as the cable's ticker would. */
  advance(ms: number): Promise<void> | void;
}

/** What the harness configured the broker with (the suite derives its expectations from it). */
export interface BrokerSettings {
  historyLimit: number;
  historyTtlSec: number;
  sessionsTtlSec: number;
  presenceTtlSec: number;
}

export interface BrokerHarness {
  /** Built on the pub/sub and presenter the suite passed to the maker; the suite starts and stops it. */
  readonly broker: Broker;
  /** Required when the broker has history, sessions or presence. */
  readonly settings?: BrokerSettings;
  /** Required when the capabilities say `clock`. */
  readonly clock?: BrokerClock;
  close(): Promise<void>;
}

export type MakeBrokerHarness = (pubsub: PubSub, presenter: Presenter) => Promise<BrokerHarness>;

export interface BrokerCapabilities {
  /** What `supportsHistory` must be: offsets, epochs, historyFrom / historySince. */
  history: boolean;
  /** Whether committed sessions can be restored. */
  sessions: boolean;
  /** What `supportsPresence` must be. */
  presence: boolean;
  /** The harness gives a clock: the TTL tests run. */
  clock: boolean;
}

/** A PubSub that keeps what the broker handed it, in order. */
export class RecordingPubSub implements PubSub {
  readonly name = "pubsub (recording)";
  readonly multiNode = false;
  readonly messages: StreamMessage[] = [];
  readonly commands: RemoteCommand[] = [];
  async start(): Promise<void> {}
  async shutdown(): Promise<void> {}
  subscribe(): void {}
  unsubscribe(): void {}
  broadcast(message: StreamMessage): void {
    this.messages.push(message);
  }
  broadcastCommand(command: RemoteCommand): void {
    this.commands.push(command);
  }
  async count(n: number, what: string): Promise<StreamMessage[]> {
    await waitFor(() => this.messages.length >= n, `${what} (${this.messages.length}/${n})`, 5000);
    return this.messages;
  }
}

/** A Presenter that keeps the events it was told about, in order. */
export class RecordingPresenter implements Presenter {
  readonly events: { stream: string; event: PresenceEvent }[] = [];
  /** The session each event was told with (the joiner's, so its protocol can spare it its own join). */
  readonly sids: (string | undefined)[] = [];
  presenceChanged(stream: string, event: PresenceEvent, sid?: string): void {
    this.events.push({ stream, event });
    this.sids.push(sid);
  }
}

const pub = (stream: string, data: unknown, extra: Partial<StreamPublication> = {}): StreamPublication => ({
  stream,
  dataJson: JSON.stringify(data),
  ...extra,
});

/** The publication part of what reached pub/sub (a history broker adds offset and epoch). */
function publicationOf(m: StreamMessage): StreamPublication {
  const { offset: _o, epoch: _e, ...rest } = m;
  return rest;
}

function messagesOf(r: StreamMessage[] | HistoryError, what: string): StreamMessage[] {
  assert.ok(!isHistoryError(r), `${what}: expected messages, got the error ${JSON.stringify(r)}`);
  return r as StreamMessage[];
}

function assertRefused(r: unknown, what: string): void {
  assert.ok(isBrokerError(r), `${what}: expected an error value, got ${JSON.stringify(r)}`);
  assert.ok(r.error.length > 0, `${what}: a reason`);
}

const range = (from: number, to: number): number[] =>
  Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** Records sorted by id: a broker may list them in any order. */
function sortedInfo(r: PresenceInfo | unknown): unknown {
  assert.ok(!isBrokerError(r), `presenceInfo: ${JSON.stringify(r)}`);
  const info = r as PresenceInfo;
  if (!info.records) return info;
  return { ...info, records: [...info.records].sort((a, b) => a.id.localeCompare(b.id)) };
}

export function brokerContract(name: string, makeHarness: MakeBrokerHarness, caps: BrokerCapabilities): void {
  describe(`Broker contract: ${name}`, () => {
    let h: BrokerHarness | undefined;
    let pubsub: RecordingPubSub;
    let presenter: RecordingPresenter;
    const fatals: Error[] = [];

    async function started(): Promise<Broker> {
      pubsub = new RecordingPubSub();
      presenter = new RecordingPresenter();
      fatals.length = 0;
      h = await makeHarness(pubsub, presenter);
      await h.broker.start((e) => fatals.push(e));
      return h.broker;
    }

    function settings(): BrokerSettings {
      assert.ok(h?.settings, "the harness of a broker with state gives its settings");
      return h.settings;
    }

    function clock(): BrokerClock {
      assert.ok(h?.clock, "capabilities say clock: the harness gives one");
      return h.clock;
    }

    const nowSec = (): number => Math.floor((h?.clock?.now() ?? Date.now()) / 1000);

    /** Publishes and waits until pub/sub has it: the epoch of a history broker. */
    async function epochAfter(broker: Broker, stream: string): Promise<string> {
      const before = pubsub.messages.length;
      broker.handleBroadcast(pub(stream, "epoch probe"));
      const got = await pubsub.count(before + 1, "the probe publication");
      return got[before].epoch as string;
    }

    afterEach(async () => {
      if (!h) return;
      await h.broker.shutdown(AbortSignal.timeout(2000));
      await h.close();
      h = undefined;
      assert.deepEqual(
        fatals.map((e) => e.message),
        [],
        "no fatal error",
      );
    });

    // Tests of a capability the backend lacks are not registered (CI counts a skip as a failure);
    // the capability check below fails a backend whose declaration is wrong.
    const withHistory = itWhen(caps.history);
    const withoutHistory = itWhen(!caps.history);
    const withSessions = itWhen(caps.sessions);
    const withoutSessions = itWhen(!caps.sessions);
    const withPresence = itWhen(caps.presence);
    const withoutPresence = itWhen(!caps.presence);
    const historyOverTime = itWhen(caps.history && caps.clock);
    const sessionsOverTime = itWhen(caps.sessions && caps.clock);
    const presenceOverTime = itWhen(caps.presence && caps.clock);

    it(`says what it supports (history: ${caps.history}, presence: ${caps.presence}), and announces itself`, async () => {
      const broker = await started();
      assert.equal(broker.supportsHistory, caps.history);
      assert.equal(broker.supportsPresence, caps.presence);
      assert.equal(h?.clock !== undefined, caps.clock, "the harness gives a clock exactly when caps say so");
      assert.ok(broker.announce().length > 0, "a start-up line");
      assert.ok(broker.name.length > 0, "a service name for the logs");
    });

    it("passes publications to pub/sub, in order, with their fields", async () => {
      const broker = await started();
      const sent = [
        pub("a", { n: 1 }),
        pub("b", "two", { excludeSocket: "sid-9", broadcastType: "whisper" }),
        pub("a", [3]),
      ];
      for (const p of sent) broker.handleBroadcast(p);
      const got = await pubsub.count(3, "3 publications on pub/sub");
      assert.deepEqual(got.map(publicationOf), sent);
    });

    it("passes remote commands to pub/sub, in order", async () => {
      const broker = await started();
      const sent: RemoteCommand[] = [
        { command: "disconnect", identifier: '{"u":1}', reconnect: false },
        { command: "disconnect", identifier: '{"u":2}', reconnect: true },
      ];
      for (const c of sent) broker.handleCommand(c);
      await waitFor(() => pubsub.commands.length >= 2, "2 commands on pub/sub", 5000);
      assert.deepEqual(pubsub.commands, sent);
    });

    it("shuts down twice without error", async () => {
      const broker = await started();
      await broker.shutdown(AbortSignal.timeout(2000));
      await broker.shutdown(AbortSignal.timeout(2000));
    });

    describe("without history", () => {
      withoutHistory("adds no offset or epoch to what it passes on", async () => {
        const broker = await started();
        const p = pub("plain", { x: 1 });
        broker.handleBroadcast(p);
        const [m] = await pubsub.count(1, "the publication");
        assert.deepEqual(m, p);
      });

      withoutHistory("answers history requests with an error value, never a throw", async () => {
        const broker = await started();
        broker.handleBroadcast(pub("h", 1));
        await pubsub.count(1, "the publication");
        const from = await broker.historyFrom("h", "any-epoch", 0);
        const since = await broker.historySince("h", Math.floor(Date.now() / 1000) - 60);
        assert.ok(isHistoryError(from), `historyFrom: ${JSON.stringify(from)}`);
        assert.ok(isHistoryError(since), `historySince: ${JSON.stringify(since)}`);
        assert.ok(from.error.length > 0 && since.error.length > 0, "a reason for reject_history");
      });
    });

    describe("with history", () => {
      withHistory("numbers each stream's messages from 1 under one stable epoch", async () => {
        const broker = await started();
        for (const s of ["a", "b", "a", "a", "b"]) broker.handleBroadcast(pub(s, s));
        const got = await pubsub.count(5, "5 publications");
        const by = (s: string) => got.filter((m) => m.stream === s);
        assert.deepEqual(
          by("a").map((m) => m.offset),
          [1, 2, 3],
        );
        assert.deepEqual(
          by("b").map((m) => m.offset),
          [1, 2],
        );
        for (const s of ["a", "b"]) {
          const epochs = new Set(by(s).map((m) => m.epoch));
          assert.equal(epochs.size, 1, `one epoch for stream ${s}`);
          const [epoch] = epochs;
          assert.equal(typeof epoch, "string");
          assert.ok((epoch as string).length > 0, "a non-empty epoch");
        }
      });

      // anycable-go's history entries keep the data only: a replay has no broadcast type and no
      // excluded socket, whatever the live message had.
      withHistory("returns the messages after an offset as stream, data, offset and epoch", async () => {
        const broker = await started();
        const sent = [
          pub("hf", 1),
          pub("hf", 2, { broadcastType: "t", excludeSocket: "sid-1" }),
          pub("hf", 3),
        ];
        for (const p of sent) broker.handleBroadcast(p);
        const got = await pubsub.count(3, "3 publications");
        const epoch = got[0].epoch as string;
        assert.deepEqual(messagesOf(await broker.historyFrom("hf", epoch, 1), "historyFrom offset 1"), [
          { stream: "hf", dataJson: "2", offset: 2, epoch },
          { stream: "hf", dataJson: "3", offset: 3, epoch },
        ]);
        assert.deepEqual(messagesOf(await broker.historyFrom("hf", epoch, 2), "historyFrom offset 2"), [
          { stream: "hf", dataJson: "3", offset: 3, epoch },
        ]);
        const none = messagesOf(await broker.historyFrom("hf", epoch, 3), "historyFrom the last offset");
        assert.deepEqual(none, []);
      });

      withHistory("answers an unknown epoch with an error value", async () => {
        const broker = await started();
        broker.handleBroadcast(pub("he", 1));
        broker.handleBroadcast(pub("he", 2));
        const [m] = await pubsub.count(2, "the publications");
        assertRefused(await broker.historyFrom("he", `${m.epoch}-not-this-one`, 1), "another epoch");
        assertRefused(await broker.historyFrom("he", "", 1), "an empty epoch");
      });

      withHistory(
        "answers historyFrom on a stream without history with an error, historySince with []",
        async () => {
          const broker = await started();
          const epoch = await epochAfter(broker, "known");
          assertRefused(
            await broker.historyFrom("never-published", epoch, 1),
            "historyFrom an unknown stream",
          );
          assert.deepEqual(
            messagesOf(await broker.historySince("never-published", nowSec() - 60), "historySince unknown"),
            [],
          );
        },
      );

      withHistory("keeps the last history_limit messages of each stream", async () => {
        const broker = await started();
        const limit = settings().historyLimit;
        const since = nowSec();
        for (let i = 1; i <= limit + 2; i++) broker.handleBroadcast(pub("lim", i));
        broker.handleBroadcast(pub("lim-other", "x"));
        await pubsub.count(limit + 3, "the publications");
        const kept = messagesOf(await broker.historySince("lim", since), "historySince");
        assert.deepEqual(
          kept.map((m) => [m.offset, m.dataJson]),
          range(3, limit + 2).map((i) => [i, String(i)]),
        );
        const other = messagesOf(await broker.historySince("lim-other", since), "the other stream");
        assert.deepEqual(
          other.map((m) => m.offset),
          [1],
        );
      });

      // anycable-go's rule: the offset a client gives must itself still be kept (lowest <= offset),
      // so the one just below the lowest is refused too; above the latest is refused; the latest
      // itself gives [].
      withHistory(
        "refuses offsets below the lowest kept (lowest - 1 included) and above the latest",
        async () => {
          const broker = await started();
          const limit = settings().historyLimit;
          for (let i = 1; i <= limit + 2; i++) broker.handleBroadcast(pub("edge", i));
          broker.handleBroadcast(pub("whole", "a"));
          broker.handleBroadcast(pub("whole", "b"));
          const got = await pubsub.count(limit + 4, "the publications");
          const epoch = got[0].epoch as string;
          const latest = limit + 2;
          for (const offset of [0, 1, 2]) {
            assertRefused(
              await broker.historyFrom("edge", epoch, offset),
              `offset ${offset} (lowest kept: 3)`,
            );
          }
          assert.deepEqual(
            messagesOf(await broker.historyFrom("edge", epoch, 3), "the lowest kept").map((m) => m.offset),
            range(4, latest),
          );
          assert.deepEqual(messagesOf(await broker.historyFrom("edge", epoch, latest), "the latest"), []);
          assertRefused(await broker.historyFrom("edge", epoch, latest + 1), "above the latest");
          assertRefused(await broker.historyFrom("whole", epoch, 0), "offset 0 (lowest kept: 1)");
          assert.deepEqual(
            messagesOf(await broker.historyFrom("whole", epoch, 1), "offset 1 of two").map((m) => m.dataJson),
            ['"b"'],
          );
        },
      );

      withHistory("answers malformed offsets and times with an error value, never a throw", async () => {
        const broker = await started();
        const epoch = await epochAfter(broker, "bad");
        for (const offset of [
          -1,
          1.5,
          Number.NaN,
          Number.POSITIVE_INFINITY,
          2 ** 53,
          Number.MAX_SAFE_INTEGER + 2,
        ]) {
          assertRefused(await broker.historyFrom("bad", epoch, offset), `offset ${offset}`);
        }
        assertRefused(await broker.historySince("bad", Number.NaN), "since NaN");
      });

      withHistory("passes transient publications on as they are and never stores them", async () => {
        const broker = await started();
        const since = nowSec();
        const transient = pub(
          "tr",
          { type: "join", id: "u1" },
          { broadcastType: "presence", transient: true },
        );
        broker.handleBroadcast(transient);
        broker.handleBroadcast(pub("tr", "kept"));
        broker.handleBroadcast({ ...transient, stream: "tr-only" });
        const got = await pubsub.count(3, "3 publications");
        assert.deepEqual(got[0], transient, "no offset, no epoch");
        assert.deepEqual(got[2], { ...transient, stream: "tr-only" });
        const epoch = got[1].epoch as string;
        assert.equal(got[1].offset, 1, "a transient publication takes no offset");
        assert.deepEqual(messagesOf(await broker.historySince("tr", since), "historySince"), [
          { stream: "tr", dataJson: '"kept"', offset: 1, epoch },
        ]);
        assert.deepEqual(
          messagesOf(await broker.historySince("tr-only", since), "a transient-only stream"),
          [],
        );
        assertRefused(await broker.historyFrom("tr-only", epoch, 1), "historyFrom a transient-only stream");
      });

      withHistory("returns the messages published since a time from historySince", async () => {
        const broker = await started();
        const since = nowSec();
        broker.handleBroadcast(pub("hs", 1));
        broker.handleBroadcast(pub("hs", 2));
        broker.handleBroadcast(pub("other", 3));
        await pubsub.count(3, "3 publications");
        const got = messagesOf(await broker.historySince("hs", since), "historySince");
        assert.deepEqual(
          got.map((m) => [m.stream, m.offset, m.dataJson]),
          [
            ["hs", 1, "1"],
            ["hs", 2, "2"],
          ],
        );
        const later = messagesOf(await broker.historySince("hs", since + 3600), "historySince an hour ahead");
        assert.deepEqual(later, []);
      });

      historyOverTime("historySince includes the second given and leaves out earlier ones", async () => {
        const broker = await started();
        const t0 = nowSec();
        broker.handleBroadcast(pub("tick", "first"));
        await clock().advance(5000);
        const t1 = nowSec();
        broker.handleBroadcast(pub("tick", "second"));
        await pubsub.count(2, "2 publications");
        const data = async (since: number) =>
          messagesOf(await broker.historySince("tick", since), `since ${since}`).map((m) => m.dataJson);
        assert.deepEqual(await data(t0), ['"first"', '"second"']);
        assert.deepEqual(await data(t1), ['"second"']);
        assert.deepEqual(await data(t1 + 1), []);
      });

      historyOverTime(
        "drops messages older than history_ttl and refuses offsets of dropped ones",
        async () => {
          const broker = await started();
          const ttlMs = settings().historyTtlSec * 1000;
          assert.ok(ttlMs >= 4000, "a history ttl of a few seconds at least, for second-precision stores");
          const t0 = nowSec();
          broker.handleBroadcast(pub("exp", 1));
          broker.handleBroadcast(pub("exp", 2));
          await clock().advance(ttlMs / 2);
          broker.handleBroadcast(pub("exp", 3));
          const got = await pubsub.count(3, "3 publications");
          const epoch = got[0].epoch as string;
          await clock().advance(ttlMs * 0.75);
          assert.deepEqual(
            messagesOf(await broker.historySince("exp", t0), "after the first two expired").map(
              (m) => m.offset,
            ),
            [3],
          );
          assertRefused(await broker.historyFrom("exp", epoch, 1), "an expired offset");
          assertRefused(
            await broker.historyFrom("exp", epoch, 2),
            "the expired offset just below the lowest",
          );
          assert.deepEqual(messagesOf(await broker.historyFrom("exp", epoch, 3), "the latest"), []);
          await clock().advance(ttlMs / 2);
          assert.deepEqual(messagesOf(await broker.historySince("exp", t0), "after all expired"), []);
          assertRefused(await broker.historyFrom("exp", epoch, 3), "a stream whose history all expired");
        },
      );
    });

    describe("sessions", () => {
      withoutSessions("restores nothing when it keeps no sessions", async () => {
        const broker = await started();
        await broker.commitSession("sid-1", '{"state":1}');
        assert.equal(await broker.restoreSession("sid-1"), undefined);
        assert.equal(await broker.restoreSession("sid-unknown"), undefined);
      });

      withSessions("restores the last snapshot committed for a session, and nothing for others", async () => {
        const broker = await started();
        await broker.commitSession("sid-1", '{"state":1}');
        await broker.commitSession("sid-2", '{"state":"two"}');
        await broker.commitSession("sid-1", '{"state":3}');
        assert.equal(await broker.restoreSession("sid-1"), '{"state":3}');
        assert.equal(await broker.restoreSession("sid-2"), '{"state":"two"}');
        assert.equal(await broker.restoreSession("sid-unknown"), undefined);
      });

      withSessions("creates nothing when touching sessions it does not have", async () => {
        const broker = await started();
        broker.touchSessions(["ghost-1", "ghost-2"]);
        assert.equal(await broker.restoreSession("ghost-1"), undefined);
      });

      sessionsOverTime("forgets a session sessions_ttl after its last commit or touch", async () => {
        const broker = await started();
        const ttlMs = settings().sessionsTtlSec * 1000;
        assert.ok(ttlMs >= 4000, "a sessions ttl of a few seconds at least");
        await broker.commitSession("touched", "t");
        await broker.commitSession("idle", "i");
        await broker.commitSession("recommitted", "r1");
        await clock().advance(ttlMs / 2);
        broker.touchSessions(["touched"]);
        await broker.commitSession("recommitted", "r2");
        await clock().advance(ttlMs * 0.75);
        assert.equal(await broker.restoreSession("touched"), "t", "a touch restarted its ttl");
        assert.equal(await broker.restoreSession("recommitted"), "r2", "a commit restarted its ttl");
        assert.equal(await broker.restoreSession("idle"), undefined, "expired");
        await clock().advance(ttlMs / 2);
        assert.equal(await broker.restoreSession("touched"), undefined);
        assert.equal(await broker.restoreSession("recommitted"), undefined);
      });
    });

    describe("presence", () => {
      withoutPresence("answers presence calls with an error value, never a throw", async () => {
        const broker = await started();
        assertRefused(await broker.presenceAdd("room", "s1", "u1", { n: 1 }), "presenceAdd");
        assertRefused(await broker.presenceRemove("room", "s1"), "presenceRemove");
        assertRefused(await broker.presenceInfo("room", { returnRecords: true }), "presenceInfo");
        broker.touchPresence(["s1"]);
        assert.deepEqual(presenter.events, []);
      });

      withPresence("announces a new presence id with a join, to the caller and the presenter", async () => {
        const broker = await started();
        const join = { type: "join", id: "u1", info: { name: "Ann" } };
        assert.deepEqual(await broker.presenceAdd("room", "s1", "u1", { name: "Ann" }), join);
        assert.deepEqual(presenter.events, [{ stream: "room", event: join }]);
        // the joiner's session with it: Pusher sends no member_added to the member itself
        assert.deepEqual(presenter.sids, ["s1"]);
        assert.deepEqual(await broker.presenceAdd("room", "s2", "u2", undefined), { type: "join", id: "u2" });
        assert.deepEqual(sortedInfo(await broker.presenceInfo("room", { returnRecords: true })), {
          type: "info",
          total: 2,
          records: [{ id: "u1", info: { name: "Ann" } }, { id: "u2" }],
        });
      });

      withPresence("counts an id once for all its sessions, keeps its last info, joins it once", async () => {
        const broker = await started();
        await broker.presenceAdd("room", "s1", "u1", { v: 1 });
        assert.equal(await broker.presenceAdd("room", "s2", "u1", { v: 2 }), undefined);
        assert.equal(await broker.presenceAdd("room", "s1", "u1", { v: 3 }), undefined, "a repeated add");
        assert.deepEqual(sortedInfo(await broker.presenceInfo("room", { returnRecords: true })), {
          type: "info",
          total: 1,
          records: [{ id: "u1", info: { v: 3 } }],
        });
        assert.deepEqual(
          presenter.events.map((e) => e.event.type),
          ["join"],
        );
      });

      withPresence("leaves only when the last session of an id is removed", async () => {
        const broker = await started();
        await broker.presenceAdd("room", "s1", "u1", "a");
        await broker.presenceAdd("room", "s2", "u1", "a");
        await broker.presenceAdd("room", "s1", "u1", "a"); // the same session twice: still one of two
        assert.equal(await broker.presenceRemove("room", "s1"), undefined, "u1 still has s2");
        assert.deepEqual(await broker.presenceInfo("room", { returnRecords: false }), {
          type: "info",
          total: 1,
        });
        const leave = { type: "leave", id: "u1" };
        assert.deepEqual(await broker.presenceRemove("room", "s2"), leave);
        assert.deepEqual(presenter.events, [
          { stream: "room", event: { type: "join", id: "u1", info: "a" } },
          { stream: "room", event: leave },
        ]);
        // anycable-go omits an empty records list
        assert.deepEqual(await broker.presenceInfo("room", { returnRecords: true }), {
          type: "info",
          total: 0,
        });
      });

      withPresence("refuses a second presence id for a session in one stream, not in another", async () => {
        const broker = await started();
        await broker.presenceAdd("room", "s1", "u1", "first");
        const r = await broker.presenceAdd("room", "s1", "u2", "second");
        assertRefused(r, "another id for s1 in room");
        assert.match((r as { error: string }).error, /presence ID mismatch/);
        assert.deepEqual(sortedInfo(await broker.presenceInfo("room", { returnRecords: true })), {
          type: "info",
          total: 1,
          records: [{ id: "u1", info: "first" }],
        });
        assert.deepEqual(await broker.presenceAdd("hall", "s1", "u2", "x"), {
          type: "join",
          id: "u2",
          info: "x",
        });
        assert.deepEqual(
          presenter.events.map((e) => [e.stream, e.event.id]),
          [
            ["room", "u1"],
            ["hall", "u2"],
          ],
        );
      });

      withPresence("answers removes it cannot apply with an error value", async () => {
        const broker = await started();
        assertRefused(await broker.presenceRemove("nobody-here", "s1"), "an unknown stream");
        await broker.presenceAdd("room", "s1", "u1", null);
        assertRefused(await broker.presenceRemove("room", "s-other"), "a session without a record there");
        await broker.presenceAdd("hall", "s2", "u2", null);
        assertRefused(await broker.presenceRemove("room", "s2"), "a session present elsewhere only");
        assert.deepEqual(await broker.presenceRemove("room", "s1"), { type: "leave", id: "u1" });
        assertRefused(await broker.presenceRemove("room", "s1"), "a second remove");
        assert.deepEqual(
          presenter.events.map((e) => e.event.type),
          ["join", "join", "leave"],
        );
      });

      withPresence("gives the total, with the records only when asked", async () => {
        const broker = await started();
        await broker.presenceAdd("room", "s1", "u1", { a: 1 });
        await broker.presenceAdd("room", "s2", "u2", null);
        await broker.presenceAdd("room", "s3", "u3", "str");
        await broker.presenceAdd("room", "s4", "u3", "str");
        await broker.presenceAdd("elsewhere", "s5", "u9", 1);
        assert.deepEqual(await broker.presenceInfo("room", { returnRecords: false }), {
          type: "info",
          total: 3,
        });
        assert.deepEqual(sortedInfo(await broker.presenceInfo("room", { returnRecords: true })), {
          type: "info",
          total: 3,
          records: [{ id: "u1", info: { a: 1 } }, { id: "u2" }, { id: "u3", info: "str" }],
        });
        assert.deepEqual(await broker.presenceInfo("unknown", { returnRecords: true }), {
          type: "info",
          total: 0,
        });
        assert.deepEqual(await broker.presenceInfo("unknown", { returnRecords: false }), {
          type: "info",
          total: 0,
        });
      });

      withPresence(
        "refuses empty or oversized ids and oversized or unserialisable info, keeping none",
        async () => {
          const broker = await started();
          const cyclic: Record<string, unknown> = {};
          cyclic.self = cyclic;
          const refused: [string, unknown][] = [
            ["", "info"],
            ["x".repeat(PRESENCE_ID_MAX_BYTES + 1), "info"],
            ["é".repeat(PRESENCE_ID_MAX_BYTES / 2 + 1), "info"], // bytes, not characters
            ["u-big", { s: "x".repeat(PRESENCE_INFO_MAX_BYTES) }],
            ["u-cyclic", cyclic],
            ["u-bigint", { n: 1n }],
          ];
          for (const [i, [pid, info]] of refused.entries()) {
            assertRefused(
              await broker.presenceAdd("room", `s${i}`, pid, info),
              `case ${i} (id of ${pid.length})`,
            );
          }
          assert.deepEqual(await broker.presenceInfo("room", { returnRecords: true }), {
            type: "info",
            total: 0,
          });
          assert.deepEqual(presenter.events, []);
          const longest = "x".repeat(PRESENCE_ID_MAX_BYTES);
          const largest = "y".repeat(PRESENCE_INFO_MAX_BYTES - 2); // its JSON has the two quotes
          const join = await broker.presenceAdd("room", "s-limit", longest, largest);
          assert.deepEqual(
            join,
            { type: "join", id: longest, info: largest },
            "the limits themselves are fine",
          );
        },
      );

      presenceOverTime(
        "drops the records of a session presence_ttl after its last touch, with leaves",
        async () => {
          const broker = await started();
          const ttlMs = settings().presenceTtlSec * 1000;
          assert.ok(ttlMs >= 4000, "a presence ttl of a few seconds at least");
          await broker.presenceAdd("room", "live", "u1", "a");
          await broker.presenceAdd("room", "gone", "u1", "a");
          await broker.presenceAdd("room", "gone-2", "u2", "b");
          await broker.presenceAdd("hall", "gone-2", "u2", "b");
          await clock().advance(ttlMs / 2);
          broker.touchPresence(["live", "never-added"]);
          presenter.events.length = 0;
          await clock().advance(ttlMs * 0.75);
          assert.deepEqual(
            presenter.events.map((e) => [e.stream, e.event]).sort(),
            [
              ["hall", { type: "leave", id: "u2" }],
              ["room", { type: "leave", id: "u2" }],
            ],
            "u2's only session expired; u1 keeps its touched one",
          );
          assert.deepEqual(sortedInfo(await broker.presenceInfo("room", { returnRecords: true })), {
            type: "info",
            total: 1,
            records: [{ id: "u1", info: "a" }],
          });
          assert.deepEqual(await broker.presenceInfo("hall", { returnRecords: true }), {
            type: "info",
            total: 0,
          });
          assertRefused(await broker.presenceRemove("room", "gone"), "an expired session");
          await clock().advance(ttlMs / 2);
          assert.deepEqual(presenter.events.at(-1), { stream: "room", event: { type: "leave", id: "u1" } });
          assert.equal(presenter.events.length, 3);
          assert.deepEqual(await broker.presenceInfo("room", { returnRecords: false }), {
            type: "info",
            total: 0,
          });
        },
      );
    });
  });
}
