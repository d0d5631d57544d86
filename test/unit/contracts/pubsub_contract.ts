// The behaviour every PubSub backend (local, later redis / nats / pg) must show, written against
// the interface only. A backend runs it with a harness maker and its capabilities.
import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import type { RemoteCommand, StreamMessage } from "../../../src/broadcast/publication.ts";
import type { PubSub, PubSubHandler } from "../../../src/pubsub/pubsub.ts";
import { waitFor } from "../../support/wait.ts";
import { itWhen } from "./register.ts";

export interface PubSubHarness {
  /**
   * Builds one node's pub/sub on the harness's engine, delivering into `handler`; the suite starts
   * and stops it. Multi-node backends give a new node per call, all sharing one engine; the suite
   * calls it once for a single-node backend.
   */
  node(handler: PubSubHandler): Promise<PubSub>;
  /**
   * Resolves once the subscribe / unsubscribe calls made so far on started nodes have taken effect
   * in the engine (e.g. SUBSCRIBE acknowledged), so a broadcast made next is routed by them.
   */
  synced(): Promise<void>;
  close(): Promise<void>;
}

export type MakePubSubHarness = () => Promise<PubSubHarness>;

export interface PubSubCapabilities {
  /** What the backend's `multiNode` must be; the multi-node tests run only when true. */
  multiNode: boolean;
}

export type PubSubEvent =
  | { kind: "broadcast"; message: StreamMessage }
  | { kind: "command"; command: RemoteCommand };

/** A PubSubHandler that keeps what it was given, in order. */
export class RecordingPubSubHandler implements PubSubHandler {
  readonly events: PubSubEvent[] = [];
  broadcast(message: StreamMessage): void {
    this.events.push({ kind: "broadcast", message });
  }
  executeCommand(command: RemoteCommand): void {
    this.events.push({ kind: "command", command });
  }
  get messages(): StreamMessage[] {
    return this.events.flatMap((e) => (e.kind === "broadcast" ? [e.message] : []));
  }
  get commands(): RemoteCommand[] {
    return this.events.flatMap((e) => (e.kind === "command" ? [e.command] : []));
  }
  /** Waits until a broadcast matching `pred` arrived. */
  async received(pred: (m: StreamMessage) => boolean, what: string): Promise<void> {
    await waitFor(() => this.messages.some(pred), what, 5000);
  }
}

const msg = (stream: string, data: unknown, extra: Partial<StreamMessage> = {}): StreamMessage => ({
  stream,
  dataJson: JSON.stringify(data),
  ...extra,
});

/** Streams as applications name them: signed names, Turbo's, separators some engines treat specially. */
const ODD_STREAMS = [
  "chat_42",
  "Z2lkOi8vYXBwL1VzZXIvMQ--a1b2c3",
  "turbo:streams:gid://app/Post/1",
  "a.b.c",
  "wild*card>",
  "with space and ümlaut ✓",
  "x".repeat(300),
];

export function pubsubContract(name: string, makeHarness: MakePubSubHarness, caps: PubSubCapabilities): void {
  describe(`PubSub contract: ${name}`, () => {
    let h: PubSubHarness | undefined;
    const running: PubSub[] = [];
    const fatals: Error[] = [];

    async function harness(): Promise<PubSubHarness> {
      fatals.length = 0;
      h = await makeHarness();
      return h;
    }

    async function startNode(handler: PubSubHandler): Promise<PubSub> {
      const ps = await h!.node(handler);
      await ps.start((e) => fatals.push(e));
      running.push(ps);
      return ps;
    }

    afterEach(async () => {
      for (const ps of running.splice(0).reverse()) await ps.shutdown(AbortSignal.timeout(2000));
      await h?.close();
      h = undefined;
      assert.deepEqual(
        fatals.map((e) => e.message),
        [],
        "no fatal error while the engine was up",
      );
    });

    it(`says it is ${caps.multiNode ? "" : "not "}multi-node`, async () => {
      await harness();
      const ps = await startNode(new RecordingPubSubHandler());
      assert.equal(ps.multiNode, caps.multiNode);
      assert.ok(ps.name.length > 0, "a service name for the logs");
    });

    it("delivers broadcast() to the handler with every field, offsets and epochs included", async () => {
      const hs = await harness();
      const handler = new RecordingPubSubHandler();
      const ps = await startNode(handler);
      ps.subscribe("fields");
      await hs.synced();
      const sent = [
        msg("fields", { text: "plain" }),
        msg("fields", "a string", { excludeSocket: "sid-1", broadcastType: "whisper" }),
        msg("fields", [1, { n: null }], { offset: 17, epoch: "ep-x1" }),
        msg(
          "fields",
          { all: true },
          { excludeSocket: "sid-2", broadcastType: "t", offset: 18, epoch: "ep-x1" },
        ),
      ];
      for (const m of sent) ps.broadcast(m);
      await waitFor(() => handler.messages.length >= sent.length, "4 messages", 5000);
      assert.deepEqual(
        handler.events,
        sent.map((message) => ({ kind: "broadcast", message })),
      );
    });

    it("delivers broadcastCommand() to executeCommand", async () => {
      const hs = await harness();
      const handler = new RecordingPubSubHandler();
      const ps = await startNode(handler);
      await hs.synced();
      const commands: RemoteCommand[] = [
        { command: "disconnect", identifier: JSON.stringify({ user: "u1" }), reconnect: false },
        { command: "disconnect", identifier: JSON.stringify({ user: "u2" }), reconnect: true },
      ];
      for (const c of commands) ps.broadcastCommand(c);
      await waitFor(() => handler.commands.length >= 2, "2 commands", 5000);
      assert.deepEqual(
        handler.events,
        commands.map((command) => ({ kind: "command", command })),
      );
    });

    it("accepts subscribe / unsubscribe for any stream name and routes each", async () => {
      const hs = await harness();
      const handler = new RecordingPubSubHandler();
      const ps = await startNode(handler);
      ps.unsubscribe("never-subscribed"); // harmless
      for (const s of ODD_STREAMS) ps.subscribe(s);
      ps.subscribe(ODD_STREAMS[0]); // twice: still one subscription
      await hs.synced();
      ODD_STREAMS.forEach((s, i) => {
        ps.broadcast(msg(s, i));
      });
      await waitFor(() => handler.messages.length >= ODD_STREAMS.length, "one message per stream", 5000);
      assert.deepEqual(
        handler.messages,
        ODD_STREAMS.map((s, i) => msg(s, i)),
      );
      for (const s of ODD_STREAMS) ps.unsubscribe(s);
      await hs.synced();
    });

    it("delivers a stream resubscribed before the engine acknowledged its unsubscribe", async () => {
      // the last local subscriber leaves and a new one arrives at once (a client reconnecting)
      const hs = await harness();
      const handler = new RecordingPubSubHandler();
      const ps = await startNode(handler);
      ps.subscribe("again");
      await hs.synced();
      ps.unsubscribe("again");
      ps.subscribe("again");
      await hs.synced();
      ps.broadcast(msg("again", 1));
      await waitFor(() => handler.messages.length >= 1, "the message after resubscribing", 5000);
      assert.deepEqual(handler.messages, [msg("again", 1)]);
    });

    it("keeps the order of 100 messages on one stream", async () => {
      const hs = await harness();
      const handler = new RecordingPubSubHandler();
      const ps = await startNode(handler);
      ps.subscribe("ordered");
      await hs.synced();
      for (let i = 0; i < 100; i++) ps.broadcast(msg("ordered", { i }));
      await waitFor(() => handler.messages.length >= 100, "100 messages", 5000);
      assert.deepEqual(
        handler.messages.map((m) => JSON.parse(m.dataJson).i),
        Array.from({ length: 100 }, (_, i) => i),
      );
    });

    it("shuts down twice without error", async () => {
      await harness();
      const ps = await startNode(new RecordingPubSubHandler());
      await ps.shutdown(AbortSignal.timeout(2000));
      await ps.shutdown(AbortSignal.timeout(2000));
    });

    // Tests for the other kind of backend are not registered (CI counts a skip as a failure);
    // the capability check fails a backend whose declaration is wrong.
    const single = itWhen(!caps.multiNode);
    const multi = itWhen(caps.multiNode);

    describe("single node", () => {
      single("delivers every broadcast to this node, subscribed or not", async () => {
        const hs = await harness();
        const handler = new RecordingPubSubHandler();
        const ps = await startNode(handler);
        ps.broadcast(msg("never_subscribed", 1));
        ps.subscribe("was_subscribed");
        ps.unsubscribe("was_subscribed");
        await hs.synced();
        ps.broadcast(msg("was_subscribed", 2));
        await waitFor(() => handler.messages.length >= 2, "2 messages", 5000);
        assert.deepEqual(handler.messages, [msg("never_subscribed", 1), msg("was_subscribed", 2)]);
      });
    });

    // One engine delivers a publisher's messages to a node in the order sent, across streams (Redis,
    // NATS and Postgres do): a later message a node does receive proves an earlier one was skipped.
    describe("multi-node", () => {
      multi("delivers a stream only to the nodes subscribed to it, the publisher included", async () => {
        const hs = await harness();
        const ha = new RecordingPubSubHandler();
        const hb = new RecordingPubSubHandler();
        const a = await startNode(ha);
        const b = await startNode(hb);
        a.subscribe("only_a");
        b.subscribe("only_b");
        a.subscribe("both");
        b.subscribe("both");
        await hs.synced();
        a.broadcast(msg("only_a", 1));
        a.broadcast(msg("only_b", 2));
        a.broadcast(msg("unsubscribed", 3));
        a.broadcast(msg("both", 4));
        await ha.received((m) => m.stream === "both", "node A's copy of the shared stream");
        await hb.received((m) => m.stream === "both", "node B's copy of the shared stream");
        assert.deepEqual(ha.messages, [msg("only_a", 1), msg("both", 4)]);
        assert.deepEqual(hb.messages, [msg("only_b", 2), msg("both", 4)]);
      });

      multi("stops delivering a stream to a node that unsubscribed, not to the others", async () => {
        const hs = await harness();
        const ha = new RecordingPubSubHandler();
        const hb = new RecordingPubSubHandler();
        const a = await startNode(ha);
        const b = await startNode(hb);
        for (const ps of [a, b]) {
          ps.subscribe("s");
          ps.subscribe("marker");
        }
        await hs.synced();
        b.broadcast(msg("s", 1));
        await ha.received((m) => m.dataJson === "1", "the first message on A");
        await hb.received((m) => m.dataJson === "1", "the first message on B");
        b.unsubscribe("s");
        await hs.synced();
        b.broadcast(msg("s", 2));
        b.broadcast(msg("marker", 3));
        await ha.received((m) => m.stream === "marker", "the marker on A");
        await hb.received((m) => m.stream === "marker", "the marker on B");
        assert.deepEqual(ha.messages, [msg("s", 1), msg("s", 2), msg("marker", 3)]);
        assert.deepEqual(hb.messages, [msg("s", 1), msg("marker", 3)]);
      });

      multi("delivers commands to every node, whatever it subscribed to", async () => {
        const hs = await harness();
        const ha = new RecordingPubSubHandler();
        const hb = new RecordingPubSubHandler();
        const a = await startNode(ha);
        await startNode(hb);
        await hs.synced();
        const command: RemoteCommand = { command: "disconnect", identifier: '{"u":1}', reconnect: true };
        a.broadcastCommand(command);
        await waitFor(() => ha.commands.length > 0 && hb.commands.length > 0, "the command on both", 5000);
        assert.deepEqual(ha.commands, [command]);
        assert.deepEqual(hb.commands, [command]);
      });

      multi("delivers nothing more to a node once it is shut down", async () => {
        const hs = await harness();
        const ha = new RecordingPubSubHandler();
        const hb = new RecordingPubSubHandler();
        const a = await startNode(ha);
        const b = await startNode(hb);
        a.subscribe("s");
        b.subscribe("s");
        await hs.synced();
        await b.shutdown(AbortSignal.timeout(2000));
        a.broadcast(msg("s", 1));
        a.broadcastCommand({ command: "disconnect", identifier: "x", reconnect: false });
        await waitFor(() => ha.events.length >= 2, "the message and command on A", 5000);
        // B's copy would travel on its own connection: give it one more round trip's time.
        a.broadcast(msg("s", 2));
        await ha.received((m) => m.dataJson === "2", "the second message on A");
        assert.deepEqual(hb.events, []);
      });
    });
  });
}
