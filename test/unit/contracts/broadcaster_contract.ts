// The behaviour every Broadcaster backend (http, redis, later redisx / nats / pg) must show, written
// against the interface only. A backend runs it by passing a harness maker: see BroadcasterHarness.
import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import type { Broadcaster, PublicationHandler } from "../../../src/broadcast/broadcaster.ts";
import type { ParsedPublication } from "../../../src/broadcast/publication.ts";
import { waitFor } from "../../support/wait.ts";

/** What a backend's runner provides: the broadcaster under test and a way to feed it from outside. */
export interface BroadcasterHarness {
  /** Built to deliver into the handler the suite passed to the maker; not started yet. */
  readonly broadcaster: Broadcaster;
  /** What this backend must claim: true when every node receives each publication itself. */
  readonly fanout: boolean;
  /** Sends one payload (anycable's broadcast JSON) the way the application would: POST, PUBLISH... */
  publish(payload: string): Promise<void>;
  /** After start: resolves once the broadcaster receives what is published from now on. */
  ready(): Promise<void>;
  /**
   * Resolves once every payload published so far has reached every broadcaster that is still
   * listening, so the suite can assert that something was NOT delivered without sleeping.
   */
  settle(): Promise<void>;
  /** Releases what the harness opened (clients, channels); the broadcaster is shut down by then. */
  close(): Promise<void>;
}

export type MakeBroadcasterHarness = (handler: PublicationHandler) => Promise<BroadcasterHarness>;

export type HandlerCall = { kind: "handle"; payload: ParsedPublication } | { kind: "invalid" };

/** A PublicationHandler that keeps every call, in order. */
export class RecordingHandler implements PublicationHandler {
  readonly calls: HandlerCall[] = [];
  handle(payload: ParsedPublication): void {
    this.calls.push({ kind: "handle", payload });
  }
  handleInvalid(): void {
    this.calls.push({ kind: "invalid" });
  }
  /** Waits until at least `n` calls arrived and returns them. */
  async atLeast(n: number, what: string): Promise<HandlerCall[]> {
    await waitFor(() => this.calls.length >= n, `${what} (${this.calls.length}/${n} handler calls)`, 5000);
    return this.calls;
  }
}

const publication = (stream: string, data: string, meta?: Record<string, string>): string =>
  JSON.stringify(meta ? { stream, data, meta } : { stream, data });

/** Registers the suite for one backend. */
export function broadcasterContract(name: string, makeHarness: MakeBroadcasterHarness): void {
  describe(`Broadcaster contract: ${name}`, () => {
    let h: BroadcasterHarness | undefined;
    let handler: RecordingHandler;
    const fatals: Error[] = [];

    /** A started, ready broadcaster delivering into a fresh recording handler. */
    async function started(): Promise<BroadcasterHarness> {
      handler = new RecordingHandler();
      fatals.length = 0;
      h = await makeHarness(handler);
      await h.broadcaster.start((err) => fatals.push(err));
      await h.ready();
      return h;
    }

    afterEach(async () => {
      if (!h) return;
      await h.broadcaster.shutdown(AbortSignal.timeout(2000));
      await h.close();
      h = undefined;
      assert.deepEqual(
        fatals.map((e) => e.message),
        [],
        "no fatal error while the engine was up",
      );
    });

    it("claims the fan-out mode of its backend", async () => {
      const { broadcaster, fanout } = await started();
      assert.equal(broadcaster.fanout, fanout);
      assert.equal(typeof broadcaster.name, "string");
      assert.ok(broadcaster.name.length > 0, "a service name for the logs");
    });

    it("hands a single publication, with its meta, to handle()", async () => {
      const b = await started();
      await b.publish(
        publication("chat_1", JSON.stringify({ text: "hi" }), {
          exclude_socket: "sid-7",
          broadcast_type: "whisper",
        }),
      );
      const calls = await handler.atLeast(1, "the publication");
      await b.settle();
      assert.deepEqual(calls, [
        {
          kind: "handle",
          payload: {
            kind: "broadcast",
            publications: [
              {
                stream: "chat_1",
                dataJson: '{"text":"hi"}',
                excludeSocket: "sid-7",
                broadcastType: "whisper",
              },
            ],
          },
        },
      ]);
    });

    it("hands a batch to handle() once, publications in order", async () => {
      const b = await started();
      const batch = [1, 2, 3, 4, 5].map((i) => ({ stream: `s${i % 2}`, data: JSON.stringify({ i }) }));
      await b.publish(JSON.stringify(batch));
      const calls = await handler.atLeast(1, "the batch");
      await b.settle();
      assert.deepEqual(calls, [
        {
          kind: "handle",
          payload: {
            kind: "broadcast",
            publications: batch.map((p) => ({ stream: p.stream, dataJson: p.data })),
          },
        },
      ]);
    });

    it("keeps the order of separate publications", async () => {
      const b = await started();
      for (let i = 0; i < 20; i++) await b.publish(publication("ordered", String(i)));
      const calls = await handler.atLeast(20, "20 publications");
      await b.settle();
      assert.equal(calls.length, 20);
      assert.deepEqual(
        calls.map((c) =>
          c.kind === "handle" && c.payload.kind === "broadcast" ? c.payload.publications : c,
        ),
        Array.from({ length: 20 }, (_, i) => [{ stream: "ordered", dataJson: String(i) }]),
      );
    });

    it("hands a remote disconnect command to handle()", async () => {
      const b = await started();
      const identifier = JSON.stringify({ user: "u1" });
      await b.publish(JSON.stringify({ command: "disconnect", payload: { identifier, reconnect: true } }));
      const calls = await handler.atLeast(1, "the command");
      await b.settle();
      assert.deepEqual(calls, [
        {
          kind: "handle",
          payload: { kind: "command", command: { command: "disconnect", identifier, reconnect: true } },
        },
      ]);
    });

    it("reports an unparsable payload with handleInvalid() and keeps receiving", async () => {
      const b = await started();
      await b.publish("{not json");
      await b.publish(JSON.stringify([{ stream: "ok", data: "1" }, { data: "no stream" }]));
      await b.publish(publication("after", "2"));
      const calls = await handler.atLeast(3, "two invalid payloads and a valid one");
      await b.settle();
      assert.deepEqual(calls, [
        { kind: "invalid" },
        { kind: "invalid" },
        {
          kind: "handle",
          payload: { kind: "broadcast", publications: [{ stream: "after", dataJson: "2" }] },
        },
      ]);
    });

    it("delivers nothing after shutdown, and a second shutdown is harmless", async () => {
      const b = await started();
      await b.publish(publication("before", "1"));
      await handler.atLeast(1, "the publication before shutdown");
      await b.broadcaster.shutdown(AbortSignal.timeout(2000));
      await b.publish(publication("after", "2"));
      await b.settle();
      assert.deepEqual(handler.calls, [
        {
          kind: "handle",
          payload: { kind: "broadcast", publications: [{ stream: "before", dataJson: "1" }] },
        },
      ]);
      await b.broadcaster.shutdown(AbortSignal.timeout(2000));
      assert.equal(handler.calls.length, 1);
    });
  });
}
