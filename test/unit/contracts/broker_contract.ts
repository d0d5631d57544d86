// The behaviour every Broker backend (none, later memory / redis / nats) must show, written against
// the interface only. History and session tests run for real on a backend whose capabilities say
// it has them, and are not registered on one that has not.
import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import type { RemoteCommand, StreamMessage, StreamPublication } from "../../../src/broadcast/publication.ts";
import { type Broker, type HistoryError, isHistoryError } from "../../../src/broker/broker.ts";
import type { PubSub } from "../../../src/pubsub/pubsub.ts";
import { waitFor } from "../../support/wait.ts";
import { itWhen } from "./register.ts";

export interface BrokerHarness {
  /** Built on the pub/sub the suite passed to the maker; the suite starts and stops it. */
  readonly broker: Broker;
  close(): Promise<void>;
}

export type MakeBrokerHarness = (pubsub: PubSub) => Promise<BrokerHarness>;

export interface BrokerCapabilities {
  /** What `supportsHistory` must be: offsets, epochs, historyFrom / historySince. */
  history: boolean;
  /** Whether committed sessions can be restored. */
  sessions: boolean;
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

export function brokerContract(name: string, makeHarness: MakeBrokerHarness, caps: BrokerCapabilities): void {
  describe(`Broker contract: ${name}`, () => {
    let h: BrokerHarness | undefined;
    let pubsub: RecordingPubSub;
    const fatals: Error[] = [];

    async function started(): Promise<Broker> {
      pubsub = new RecordingPubSub();
      fatals.length = 0;
      h = await makeHarness(pubsub);
      await h.broker.start((e) => fatals.push(e));
      return h.broker;
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
    // the capability check above fails a backend whose declaration is wrong.
    const withHistory = itWhen(caps.history);
    const withoutHistory = itWhen(!caps.history);
    const withSessions = itWhen(caps.sessions);
    const withoutSessions = itWhen(!caps.sessions);

    it(`says it ${caps.history ? "supports" : "does not support"} history, and announces itself`, async () => {
      const broker = await started();
      assert.equal(broker.supportsHistory, caps.history);
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

      withHistory("returns the messages after an offset from historyFrom", async () => {
        const broker = await started();
        const sent = [pub("hf", 1), pub("hf", 2, { broadcastType: "t" }), pub("hf", 3)];
        for (const p of sent) broker.handleBroadcast(p);
        const got = await pubsub.count(3, "3 publications");
        const epoch = got[0].epoch as string;
        const after1 = messagesOf(await broker.historyFrom("hf", epoch, 1), "historyFrom offset 1");
        assert.deepEqual(
          after1.map((m) => [m.offset, m.epoch, m.stream, m.dataJson]),
          [
            [2, epoch, "hf", "2"],
            [3, epoch, "hf", "3"],
          ],
        );
        assert.equal(after1[0].broadcastType, "t");
        const all = messagesOf(await broker.historyFrom("hf", epoch, 0), "historyFrom offset 0");
        assert.deepEqual(
          all.map((m) => m.offset),
          [1, 2, 3],
        );
        const none = messagesOf(await broker.historyFrom("hf", epoch, 3), "historyFrom the last offset");
        assert.deepEqual(none, []);
      });

      withHistory("answers an unknown epoch with an error value", async () => {
        const broker = await started();
        broker.handleBroadcast(pub("he", 1));
        const [m] = await pubsub.count(1, "the publication");
        const r = await broker.historyFrom("he", `${m.epoch}-not-this-one`, 0);
        assert.ok(isHistoryError(r), `expected an error, got ${JSON.stringify(r)}`);
      });

      withHistory("returns the messages published since a time from historySince", async () => {
        const broker = await started();
        const since = Math.floor(Date.now() / 1000);
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
    });
  });
}
