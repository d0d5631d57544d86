// A session's close cancels its controller calls through the whole controller chain the server
// builds (identity -> channel router -> disconnect queue -> RPC controller), while the Disconnect
// call of a session that was connected is still made.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import {
  CommandResponseSchema,
  ConnectionResponseSchema,
  DisconnectResponseSchema,
  Status,
} from "../../gen/anycable/rpc_pb.ts";
import { IdentifiableController } from "../../src/identity/identifier.ts";
import { Metrics } from "../../src/metrics/registry.ts";
import type { Node } from "../../src/node/node.ts";
import { ChannelRouter } from "../../src/node/router.ts";
import type { CallOptions, RpcClient } from "../../src/rpc/client.ts";
import { RpcController } from "../../src/rpc/controller.ts";
import { DisconnectQueue } from "../../src/rpc/disconnect_queue.ts";
import { StreamsController } from "../../src/streams/controller.ts";
import { FakeSocket, makeNode, silentLogger } from "../support/fake_node.ts";
import { waitFor } from "../support/wait.ts";

/** Answers every call, holding those of the sids in `held` until released. */
class GatedClient implements RpcClient {
  readonly impl = "grpc";
  readonly seen: Array<{ method: string; sid: string; signal?: AbortSignal }> = [];
  readonly held = new Map<string, () => void>();
  holdSids = new Set<string>();
  private async answer<T>(method: string, opts: CallOptions, reply: () => T): Promise<T> {
    this.seen.push({ method, sid: opts.sid, signal: opts.signal });
    if (this.holdSids.has(opts.sid)) await new Promise<void>((r) => this.held.set(opts.sid, r));
    return reply();
  }
  connect(_req: unknown, opts: CallOptions) {
    return this.answer("connect", opts, () =>
      create(ConnectionResponseSchema, {
        status: Status.SUCCESS,
        identifiers: opts.sid,
        transmissions: [JSON.stringify({ type: "welcome", sid: opts.sid })],
      }),
    ) as never;
  }
  command(_req: unknown, opts: CallOptions) {
    return this.answer("command", opts, () =>
      create(CommandResponseSchema, { status: Status.SUCCESS, transmissions: [] }),
    ) as never;
  }
  disconnect(_req: unknown, opts: CallOptions) {
    return this.answer("disconnect", opts, () =>
      create(DisconnectResponseSchema, { status: Status.SUCCESS }),
    ) as never;
  }
  ready() {
    return undefined;
  }
  async close() {}
}

function chain(client: RpcClient, concurrency: number) {
  const metrics = new Metrics();
  const rpc = new RpcController({
    client,
    concurrency,
    requestTimeoutMs: 0,
    commandTimeoutMs: 3000,
    metrics,
    logger: silentLogger,
  });
  const queue = new DisconnectQueue(rpc, {
    rate: 0,
    backlog: 100,
    shutdownTimeoutMs: 1000,
    flushConcurrency: 1,
    metrics,
    logger: silentLogger,
  });
  const router = new ChannelRouter(queue);
  router.route("$pubsub", new StreamsController({ publicStreams: true }));
  // no local identification: every connection goes to Connect
  const controller = new IdentifiableController(router, { identify: async () => null });
  const { node } = makeNode(controller, "auto", metrics);
  return { node, metrics };
}

function openSession(node: Node, sid: string) {
  const socket = new FakeSocket();
  const session = node.open(
    { sid, url: "ws://h/cable", headers: {}, protocol: "actioncable-v1-json" },
    socket,
  );
  return { session, socket };
}

describe("session close cancels its controller calls", () => {
  it("drops queued Connect calls of closed sessions, cancels in-flight ones, still calls Disconnect", async () => {
    const client = new GatedClient();
    client.holdSids = new Set(["holder", "inflight"]);
    const { node, metrics } = chain(client, 2);
    const holder = openSession(node, "holder");
    const inflight = openSession(node, "inflight");
    await waitFor(() => client.held.size === 2, "two Connect calls holding both slots");
    const queued = ["q1", "q2", "q3"].map((sid) => openSession(node, sid));
    await waitFor(() => {
      metrics.collect();
      return metrics.gaugeValue("rpc_pending_num") === 3;
    }, "three Connect calls queued");

    // the queued sessions and one with its call in flight go away
    for (const q of queued) node.closed(q.session);
    node.closed(inflight.session);
    assert.equal(client.seen.find((c) => c.sid === "inflight")?.signal?.aborted, true);
    await waitFor(() => metrics.counterValue("rpc_canceled_total") === 3, "queued calls dropped");
    metrics.collect();
    assert.equal(metrics.gaugeValue("rpc_pending_num"), 0);

    // the in-flight call's transport has not reacted (a stub): once it answers, the result is
    // ignored, and the slot it held is released
    client.holdSids.clear();
    client.held.get("inflight")!();
    client.held.get("holder")!();
    await holder.session.chain;
    assert.deepEqual(holder.socket.json(), [{ type: "welcome", sid: "holder" }]);
    assert.equal(holder.session.state, "connected");
    assert.deepEqual(inflight.socket.frames, []);
    for (const q of queued) assert.deepEqual(q.socket.frames, []);
    assert.deepEqual(
      client.seen.map((c) => `${c.method}:${c.sid}`),
      ["connect:holder", "connect:inflight"],
    );

    // commands of a live session carry a signal; closing the session while one is in flight
    // aborts it, and Disconnect (through the queue, without a signal) is still made
    const id = JSON.stringify({ channel: "ChatChannel" });
    const frame = JSON.stringify({ command: "subscribe", identifier: id });
    client.holdSids = new Set(["holder"]);
    client.held.clear();
    node.message(holder.session, frame, frame.length);
    await waitFor(() => client.held.has("holder"), "subscribe in flight");
    const sub = client.seen.find((c) => c.method === "command" && c.sid === "holder")!;
    assert.equal(sub.signal?.aborted, false);
    node.closed(holder.session);
    assert.equal(sub.signal?.aborted, true);
    client.held.get("holder")!();
    await waitFor(() => client.seen.some((c) => c.method === "disconnect"), "Disconnect call");
    const disconnects = client.seen.filter((c) => c.method === "disconnect");
    assert.deepEqual(
      disconnects.map((c) => [c.sid, c.signal]),
      [["holder", undefined]],
    );
    assert.equal(metrics.counterValue("rpc_canceled_total"), 3);
  });

  it("a queued subscribe of a closed session is never made", async () => {
    const client = new GatedClient();
    const { node, metrics } = chain(client, 1);
    const a = openSession(node, "a");
    const b = openSession(node, "b");
    await Promise.all([a.session.chain, b.session.chain]);
    client.holdSids = new Set(["a"]);
    const id = JSON.stringify({ channel: "ChatChannel" });
    const frame = JSON.stringify({ command: "subscribe", identifier: id });
    node.message(a.session, frame, frame.length);
    await waitFor(() => client.held.size === 1, "a's subscribe in flight");
    node.message(b.session, frame, frame.length);
    await waitFor(() => {
      metrics.collect();
      return metrics.gaugeValue("rpc_pending_num") === 1;
    }, "b's subscribe queued");
    node.closed(b.session);
    await b.session.chain;
    client.held.get("a")!();
    await a.session.chain;
    assert.deepEqual(
      client.seen.filter((c) => c.method === "command").map((c) => c.sid),
      ["a"],
    );
    assert.equal(metrics.counterValue("rpc_canceled_total"), 1);
    // a cancelled command is not a failed client message
    assert.equal(metrics.counterValue("failed_client_msg_total"), 0);
  });
});
