import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Hub, type NativeFanout } from "../../src/hub/hub.ts";
import { PublicIdentityController } from "../../src/identity/public.ts";
import { Logger } from "../../src/log/logger.ts";
import { Metrics } from "../../src/metrics/registry.ts";
import type {
  ChannelContext,
  CommandResult,
  ConnectionContext,
  Controller,
  SessionEnv,
} from "../../src/node/controller.ts";
import {
  MAX_QUEUED_COMMANDS,
  Node,
  type NodeOptions,
  READ_PAUSE_AT,
  READ_RESUME_AT,
} from "../../src/node/node.ts";
import { NullController } from "../../src/node/null_controller.ts";
import { ChannelRouter } from "../../src/node/router.ts";
import { NO_STATE } from "../../src/node/session.ts";
import type { ClientSocket } from "../../src/node/socket.ts";
import { StreamsController } from "../../src/streams/controller.ts";
import { nodeBroker } from "../support/fake_node.ts";
import { waitFor } from "../support/wait.ts";

class FakeSocket implements ClientSocket {
  frames: string[] = [];
  closed?: { code: number; reason: string };
  buffered = 0;
  bufferedCalls = 0;
  topics = new Set<string>();
  /** The runtime refuses frames (its own backlog limit). */
  refuse = false;
  /** Reading paused by the node (runtimes that can: Bun, the node:http Deno server). */
  paused = false;
  pauses = 0;
  joinTopic(topic: string): void {
    this.topics.add(topic);
  }
  leaveTopic(topic: string): void {
    this.topics.delete(topic);
  }
  pauseReading(): void {
    this.paused = true;
    this.pauses++;
  }
  resumeReading(): void {
    this.paused = false;
  }
  send(frame: string): number {
    if (this.refuse) return 0;
    this.frames.push(frame);
    return this.buffered > 0 ? -1 : frame.length;
  }
  bufferedAmount(): number {
    this.bufferedCalls++;
    return this.buffered;
  }
  close(code: number, reason: string): void {
    this.closed = { code, reason };
  }
  json(): Record<string, unknown>[] {
    return this.frames.map((f) => JSON.parse(f));
  }
}

const silent = new Logger("error", "text", {}, { write() {} });
const ID = JSON.stringify({ channel: "$pubsub", stream_name: "chat" });

function makeNode(over: Partial<NodeOptions> = {}) {
  const metrics = new Metrics();
  const hub = new Hub();
  const router = new ChannelRouter(new NullController());
  router.route("$pubsub", new StreamsController({ publicStreams: true }));
  const node: Node = new Node({
    controller: new PublicIdentityController(router),
    hub,
    broker: nodeBroker(() => node),
    metrics,
    logger: silent,
    pongTimeoutMs: 0,
    pingIntervalMs: 3000,
    pingPrecision: "s",
    nativePings: false,
    maxPendingBytes: 1000,
    writeTimeoutMs: 2000,
    disconnectMode: "auto",
    maxSubscriptions: 0,
    random: () => 0.5,
    ...over,
  });
  return { node, hub, metrics };
}

async function connected(node: Node, sid = "sid1") {
  const socket = new FakeSocket();
  const session = node.open(
    { sid, url: "ws://x/cable", headers: {}, protocol: "actioncable-v1-json" },
    socket,
  );
  await session.chain;
  return { socket, session };
}

describe("Node", () => {
  it("welcomes, confirms a public stream and delivers broadcasts in order", async () => {
    const { node, metrics } = makeNode();
    const { socket, session } = await connected(node);
    assert.deepEqual(socket.json()[0], { type: "welcome", sid: "sid1" });
    node.message(session, JSON.stringify({ command: "subscribe", identifier: ID }), 10);
    await session.chain;
    assert.deepEqual(socket.json()[1], { type: "confirm_subscription", identifier: ID });
    for (let i = 0; i < 5; i++) node.broadcast({ stream: "chat", dataJson: String(i) });
    assert.deepEqual(
      socket
        .json()
        .slice(2)
        .map((m) => m.message),
      [0, 1, 2, 3, 4],
    );
    assert.equal(metrics.counterValue("broadcast_msg_total"), 5);
    assert.equal(metrics.counterValue("client_msg_total"), 1);
  });

  it("ignores a duplicate subscribe and counts it as failed", async () => {
    const { node, metrics } = makeNode();
    const { socket, session } = await connected(node);
    node.message(session, JSON.stringify({ command: "subscribe", identifier: ID }), 10);
    node.message(session, JSON.stringify({ command: "subscribe", identifier: ID }), 10);
    await session.chain;
    assert.equal(socket.frames.length, 2);
    assert.equal(metrics.counterValue("failed_client_msg_total"), 1);
  });

  it("rejects unsigned streams when public streams are off", async () => {
    const metrics = new Metrics();
    const router = new ChannelRouter(new NullController());
    router.route("$pubsub", new StreamsController({ publicStreams: false }));
    const node = new Node({
      ...makeNode().node["opts"],
      controller: new PublicIdentityController(router),
      metrics,
      hub: new Hub(),
    });
    const { socket, session } = await connected(node);
    node.message(session, JSON.stringify({ command: "subscribe", identifier: ID }), 10);
    await session.chain;
    assert.deepEqual(socket.json()[1], { type: "reject_subscription", identifier: ID });
  });

  it("keeps the socket on unknown commands and answers ping with pong", async () => {
    const { node, metrics } = makeNode();
    const { socket, session } = await connected(node);
    node.message(session, '{"command":"dance"}', 19);
    node.message(session, '{"command":"ping"}', 18);
    await session.chain;
    assert.equal(socket.closed, undefined);
    assert.deepEqual(socket.json().at(-1), { type: "pong" });
    assert.equal(metrics.counterValue("failed_client_msg_total"), 1);
  });

  it("stops reading after an undecodable frame but keeps delivering", async () => {
    const { node, metrics } = makeNode();
    const { socket, session } = await connected(node);
    node.message(session, JSON.stringify({ command: "subscribe", identifier: ID }), 10);
    await session.chain;
    node.message(session, "{oops", 5);
    node.message(session, '{"command":"ping"}', 18);
    await session.chain;
    assert.equal(metrics.counterValue("failed_client_msg_total"), 1);
    assert.ok(!socket.frames.some((f) => f.includes("pong")));
    node.broadcast({ stream: "chat", dataJson: '"still here"' });
    assert.equal(socket.json().at(-1)?.message, "still here");
    assert.equal(socket.closed, undefined);
  });

  it("refuses connections under --norpc without noauth", async () => {
    const { node, metrics } = makeNode({ controller: new NullController() });
    const { socket } = await connected(node);
    assert.deepEqual(socket.json(), [{ type: "disconnect", reason: "unauthorized", reconnect: false }]);
    assert.deepEqual(socket.closed, { code: 1000, reason: "Auth Failed" });
    assert.equal(metrics.counterValue("failed_auths_total"), 1);
    assert.equal(node.size, 0);
  });

  it("closes with 1011 when authentication errors", async () => {
    const controller = new NullController();
    controller.authenticate = async () => {
      throw new Error("rpc down");
    };
    const { node } = makeNode({ controller });
    const { socket } = await connected(node);
    assert.deepEqual(socket.frames, []);
    assert.equal(socket.closed?.code, 1011);
  });

  it("excludes the publisher's socket and encodes once per identifier", async () => {
    const { node } = makeNode();
    const a = await connected(node, "a");
    const b = await connected(node, "b");
    for (const c of [a, b])
      node.message(c.session, JSON.stringify({ command: "subscribe", identifier: ID }), 1);
    await Promise.all([a.session.chain, b.session.chain]);
    node.broadcast({ stream: "chat", dataJson: "1", excludeSocket: "a" });
    assert.equal(a.socket.frames.length, 2);
    assert.equal(b.socket.frames.length, 3);
  });

  it("uses native fan-out when nobody is excluded", async () => {
    const published: Array<[string, string]> = [];
    const native: NativeFanout = { publish: (t, f) => published.push([t, String(f)]) };
    const { node, hub, metrics } = makeNode();
    hub.setNativeFanout(native);
    const a = await connected(node, "a");
    node.message(a.session, JSON.stringify({ command: "subscribe", identifier: ID }), 1);
    await a.session.chain;
    node.broadcast({ stream: "chat", dataJson: "7" });
    assert.equal(published.length, 1);
    assert.deepEqual(JSON.parse(published[0]![1]), { identifier: ID, message: 7 });
    const before = metrics.counterValue("server_msg_total");
    node.broadcast({ stream: "chat", dataJson: "8", excludeSocket: "zzz" });
    assert.equal(metrics.counterValue("server_msg_total"), before + 1);
  });

  it("disconnects remotely by identifiers", async () => {
    const { node } = makeNode();
    const a = await connected(node, "a");
    node.remoteDisconnect('{"sid":"a"}', true);
    assert.deepEqual(a.socket.json().at(-1), { type: "disconnect", reason: "remote", reconnect: true });
    assert.deepEqual(a.socket.closed, { code: 1000, reason: "Closed remotely" });
  });

  it("disconnects every session sharing identifiers, and forgets closed ones", async () => {
    // one user with two tabs and another user: identifiers come from the sid's first letter
    const controller: Controller = {
      authenticate: async ({ sid }) => ({ status: "success", identifiers: sid[0]!, transmissions: [] }),
      subscribe: async () => null,
      unsubscribe: async () => null,
      perform: async () => null,
      disconnect: async () => {},
    };
    const { node } = makeNode({ controller });
    const tab1 = await connected(node, "u1");
    const tab2 = await connected(node, "u2");
    const tab3 = await connected(node, "u3");
    const other = await connected(node, "v1");
    node.closed(tab3.session);
    node.remoteDisconnect("u", false);
    for (const tab of [tab1, tab2]) {
      assert.deepEqual(tab.socket.json().at(-1), { type: "disconnect", reason: "remote", reconnect: false });
    }
    assert.equal(tab3.socket.frames.length, 0);
    assert.equal(other.socket.closed, undefined);
    node.remoteDisconnect("v", true);
    assert.deepEqual(other.socket.closed, { code: 1000, reason: "Closed remotely" });
    assert.equal(node.size, 0);
  });

  it("keeps state per session and nothing per idle session", async () => {
    const seenEnvs: SessionEnv[] = [];
    const controller: Controller = {
      authenticate: async ({ sid }) => ({ status: "success", identifiers: sid, transmissions: [] }),
      subscribe: async ({ sid, env }): Promise<CommandResult> => {
        seenEnvs.push(env);
        return {
          status: "success",
          transmissions: [],
          streams: [`s-${sid}`, `s-${sid}`],
          istate: { room: sid },
          cstate: { user: sid },
        };
      },
      unsubscribe: async () => ({ status: "success", transmissions: [] }),
      perform: async () => null,
      disconnect: async () => {},
    };
    const { node } = makeNode({ controller });
    const a = await connected(node, "a");
    const b = await connected(node, "b");
    // before any state: both share the frozen empty state, and no call is pending
    assert.equal(a.session.env.cstate, NO_STATE);
    assert.equal(a.session.chain, b.session.chain);
    for (const { session } of [a, b]) {
      node.message(session, JSON.stringify({ command: "subscribe", identifier: ID }), 1);
    }
    await Promise.all([a.session.chain, b.session.chain]);
    assert.deepEqual({ ...a.session.env.istate }, { [ID]: { room: "a" } });
    assert.deepEqual({ ...b.session.env.istate }, { [ID]: { room: "b" } });
    assert.deepEqual(a.session.env.cstate, { user: "a" });
    assert.deepEqual(NO_STATE, {});
    // a stream named twice is one subscription
    assert.deepEqual(a.session.subscriptions.get(ID), ["s-a"]);
    // drained queues share one settled promise again
    assert.equal(a.session.pending, 0);
    assert.equal(a.session.chain, b.session.chain);
    node.message(a.session, JSON.stringify({ command: "unsubscribe", identifier: ID }), 1);
    await a.session.chain;
    assert.deepEqual({ ...a.session.env.istate }, {});
    assert.deepEqual({ ...b.session.env.istate }, { [ID]: { room: "b" } });
    assert.equal(seenEnvs.length, 2);
  });

  it("hands controllers one context per call: identifiers once known, a signal only before the close", async () => {
    const seen: Array<{ call: string; ctx: ConnectionContext; extra?: unknown }> = [];
    const controller: Controller = {
      authenticate: async (ctx) => {
        seen.push({ call: "authenticate", ctx });
        return { status: "success", identifiers: '{"u":1}', transmissions: [], disconnectInterest: 1 };
      },
      subscribe: async (ctx) => {
        seen.push({ call: "subscribe", ctx });
        return { status: "success", transmissions: [] };
      },
      unsubscribe: async (ctx) => {
        seen.push({ call: "unsubscribe", ctx });
        return { status: "success", transmissions: [] };
      },
      perform: async (ctx, data) => {
        seen.push({ call: "perform", ctx, extra: data });
        return { status: "success", transmissions: [] };
      },
      disconnect: async (ctx, subscriptions) => {
        seen.push({ call: "disconnect", ctx, extra: subscriptions });
      },
    };
    for (const cancellableCalls of [true, false]) {
      seen.length = 0;
      const { node } = makeNode({ controller, cancellableCalls });
      const { session } = await connected(node, "a");
      const other = JSON.stringify({ channel: "Other" });
      for (const cmd of [
        { command: "subscribe", identifier: ID },
        { command: "subscribe", identifier: other },
        { command: "message", identifier: ID, data: '{"action":"go"}' },
        { command: "unsubscribe", identifier: other },
      ]) {
        node.message(session, JSON.stringify(cmd), 1);
      }
      await session.chain;
      // closed() calls the controller's disconnect at once: nothing to wait for
      node.closed(session);
      assert.deepEqual(
        seen.map(({ call, ctx, extra }) => [
          call,
          ctx.sid,
          ctx.identifiers,
          (ctx as ChannelContext).identifier,
          extra,
        ]),
        [
          ["authenticate", "a", "", undefined, undefined],
          ["subscribe", "a", '{"u":1}', ID, undefined],
          ["subscribe", "a", '{"u":1}', other, undefined],
          ["perform", "a", '{"u":1}', ID, '{"action":"go"}'],
          ["unsubscribe", "a", '{"u":1}', other, undefined],
          ["disconnect", "a", '{"u":1}', undefined, [ID]],
        ],
      );
      for (const { ctx } of seen) assert.equal(ctx.env, session.env);
      const signals = seen.map(({ ctx }) => ctx.signal);
      assert.equal(signals.at(-1), undefined, "disconnect is made after the close");
      for (const signal of signals.slice(0, -1)) {
        if (cancellableCalls) assert.ok(signal instanceof AbortSignal);
        else assert.equal(signal, undefined);
      }
    }
  });

  it("pings on the shared ticker, first one within 0.5-1.5x of the interval", async () => {
    const { node } = makeNode();
    const t0 = Date.now();
    const a = await connected(node, "a");
    node.tick(t0 + 1000);
    assert.equal(a.socket.frames.length, 1);
    node.tick(t0 + 3100);
    assert.equal(a.socket.json().at(-1)?.type, "ping");
    const n = a.socket.frames.length;
    node.tick(t0 + 3200);
    assert.equal(a.socket.frames.length, n);
    node.tick(t0 + 6200);
    assert.equal(a.socket.frames.length, n + 1);
  });

  it("disconnects slow clients past the pending size and the write timeout", async () => {
    const { node, metrics } = makeNode();
    const a = await connected(node, "a");
    const b = await connected(node, "b");
    for (const { session } of [a, b]) {
      node.message(session, JSON.stringify({ command: "subscribe", identifier: ID }), 1);
    }
    await Promise.all([a.session.chain, b.session.chain]);
    // unsent data piles up behind the next publication
    a.socket.buffered = 5000;
    b.socket.buffered = 10;
    node.broadcast({ stream: "chat", dataJson: "1" });
    // judged over time, not on the send: the first check only takes the measure
    assert.equal(a.socket.closed, undefined);
    const t = Date.now();
    node.tick(t);
    assert.equal(a.socket.closed, undefined);
    node.tick(t + 250);
    assert.deepEqual(a.socket.json().at(-1), { type: "disconnect", reason: "too_slow", reconnect: true });
    assert.equal(metrics.counterValue("disconnected_slow_clients_total"), 1);

    node.tick(t + 1000);
    assert.equal(b.socket.closed, undefined);
    node.tick(t + 2100);
    assert.ok(b.socket.closed);
    assert.equal(metrics.counterValue("disconnected_slow_clients_total"), 2);
  });

  it("keeps a client whose backlog above the pending size shrinks: one turn's burst is not slowness", async () => {
    const { node, metrics } = makeNode();
    const a = await connected(node, "a");
    node.message(a.session, JSON.stringify({ command: "subscribe", identifier: ID }), 1);
    await a.session.chain;
    // a batch fanned out in one turn: far above the limit (1000) before the runtime writes anything
    a.socket.buffered = 50_000;
    for (let i = 0; i < 50; i++) node.broadcast({ stream: "chat", dataJson: String(i) });
    assert.equal(a.socket.closed, undefined);
    const t = Date.now();
    node.tick(t);
    a.socket.buffered = 20_000; // the client reads
    node.tick(t + 250);
    a.socket.buffered = 4_000;
    node.tick(t + 500);
    assert.equal(a.socket.closed, undefined);
    // it stops reading while still above the limit: too slow at the next check
    node.tick(t + 750);
    assert.deepEqual(a.socket.json().at(-1), { type: "disconnect", reason: "too_slow", reconnect: true });
    assert.equal(metrics.counterValue("disconnected_slow_clients_total"), 1);
  });

  it("drops a client at once when the runtime refuses a frame", async () => {
    const { node, metrics } = makeNode();
    const a = await connected(node, "a");
    node.message(a.session, JSON.stringify({ command: "subscribe", identifier: ID }), 1);
    await a.session.chain;
    a.socket.refuse = true;
    node.broadcast({ stream: "chat", dataJson: "1" });
    assert.ok(a.socket.closed);
    assert.equal(metrics.counterValue("disconnected_slow_clients_total"), 1);
  });

  it("checks sockets behind a native publication, and polls no idle socket", async () => {
    const published: string[] = [];
    const { node, hub, metrics } = makeNode();
    hub.setNativeFanout({ publish: (topic) => published.push(topic) });
    const a = await connected(node, "a");
    const idle = await connected(node, "idle");
    node.message(a.session, JSON.stringify({ command: "subscribe", identifier: ID }), 1);
    await a.session.chain;
    const t = Date.now();
    node.tick(t);
    assert.equal(a.socket.bufferedCalls + idle.socket.bufferedCalls, 0);

    // the runtime fans out natively (no send() result to look at); the client stops reading
    a.socket.buffered = 10;
    node.broadcast({ stream: "chat", dataJson: "2" });
    assert.equal(published.length, 1);
    node.tick(t + 100);
    node.tick(t + 1200);
    assert.equal(a.socket.closed, undefined);
    node.tick(t + 2200);
    assert.deepEqual(a.socket.json().at(-1), { type: "disconnect", reason: "too_slow", reconnect: true });
    assert.equal(metrics.counterValue("timeout_server_msg_total"), 1);
    assert.equal(idle.socket.bufferedCalls, 0);
  });

  it("forgets a backlog once the socket drains", async () => {
    const { node } = makeNode();
    const a = await connected(node, "a");
    node.message(a.session, JSON.stringify({ command: "subscribe", identifier: ID }), 1);
    await a.session.chain;
    a.socket.buffered = 10;
    node.broadcast({ stream: "chat", dataJson: "3" });
    const t = Date.now();
    node.tick(t);
    a.socket.buffered = 0;
    node.tick(t + 1000);
    const calls = a.socket.bufferedCalls;
    node.tick(t + 5000);
    assert.equal(a.socket.closed, undefined);
    assert.equal(a.socket.bufferedCalls, calls);
  });

  it("says server_restart to everyone on shutdown", async () => {
    const { node } = makeNode();
    const a = await connected(node, "a");
    await node.shutdown();
    assert.deepEqual(a.socket.json().at(-1), {
      type: "disconnect",
      reason: "server_restart",
      reconnect: true,
    });
    assert.deepEqual(a.socket.closed, { code: 1001, reason: "Server restart" });
  });

  it("drains slowly one batch at a time, and closes the rest at once when the deadline aborts", async () => {
    const { node } = makeNode();
    const clients: Awaited<ReturnType<typeof connected>>[] = [];
    for (let i = 0; i < 10; i++) clients.push(await connected(node, `c${i}`));
    const deadline = new AbortController();
    // 10 clients over 100 s: one every 500 ms (the cap), far longer than this test waits
    const done = node.shutdown({ drainMs: 100_000, signal: deadline.signal });
    const closed = () => clients.filter((c) => c.socket.closed !== undefined).length;
    assert.equal(closed(), 1, "the first batch goes at once, the others wait");
    deadline.abort();
    await done;
    assert.equal(closed(), 10, "the deadline closed everyone left");
    for (const c of clients)
      assert.equal((c.socket.json().at(-1) as { reason: string }).reason, "server_restart");
  });
});

const subscribeTo = (stream: string) =>
  JSON.stringify({
    command: "subscribe",
    identifier: JSON.stringify({ channel: "$pubsub", stream_name: stream }),
  });

/** Counts the confirmations a socket is sent, and calls `onConfirm` with the running count. */
function countConfirms(socket: FakeSocket, onConfirm?: (n: number) => void): () => number {
  let n = 0;
  const send = socket.send.bind(socket);
  socket.send = (frame: string) => {
    if (frame.includes('"confirm_subscription"')) {
      n++;
      onConfirm?.(n);
    }
    return send(frame);
  };
  return () => n;
}

describe("Node: one session's command burst", () => {
  it("gives the event loop turns during a burst, and a later session's command goes first", async () => {
    const { node, hub } = makeNode();
    const a = await connected(node, "a");
    const b = await connected(node, "b");
    const n = 20_000;
    const confirmedA = countConfirms(a.socket);
    let aWhenBConfirmed = -1;
    countConfirms(b.socket, () => {
      aWhenBConfirmed = confirmedA();
    });
    for (let i = 0; i < n; i++) node.message(a.session, subscribeTo(`s${i}`), 1);
    // A macrotask queued after the burst: without yielding, every command of it runs first.
    const aAtTimer = await new Promise<number>((resolve) =>
      setTimeout(() => {
        node.message(b.session, subscribeTo("b-stream"), 1);
        resolve(confirmedA());
      }, 0),
    );
    assert.ok(aAtTimer < n, `the timer ran only after all ${n} commands of the burst`);
    await waitFor(() => a.session.pending === 0 && aWhenBConfirmed >= 0, "the burst and b's subscribe");
    assert.ok(aWhenBConfirmed < n, "b's subscribe waited for the whole burst of a");
    // the burst itself is complete and in order
    assert.equal(confirmedA(), n);
    const last = a.socket.json().at(-1)!;
    assert.equal(last.identifier, JSON.stringify({ channel: "$pubsub", stream_name: `s${n - 1}` }));
    assert.equal(a.session.subscriptions.size, n);
    assert.equal(a.session.subscriptions.isFlat(), false);
    assert.equal(hub.streamsCount, n + 1);
    node.broadcast({ stream: `s${n - 1}`, dataJson: '"last"' });
    assert.deepEqual(a.socket.json().at(-1)?.message, "last");
    // closing unsubscribes everything from the hub
    node.closed(a.session);
    assert.equal(hub.streamsCount, 1);
  });

  it("stops reading from a client whose queued commands pile up, and reads again once they are worked off", async () => {
    const { node } = makeNode();
    const a = await connected(node, "a");
    for (let i = 0; i < READ_PAUSE_AT - 1; i++) node.message(a.session, subscribeTo(`p${i}`), 1);
    assert.equal(a.socket.paused, false, "below the mark");
    node.message(a.session, subscribeTo("one-more"), 1);
    assert.equal(a.socket.paused, true, `paused at ${READ_PAUSE_AT} queued commands`);
    await waitFor(() => !a.socket.paused, "reading again");
    assert.ok(a.session.pending <= READ_RESUME_AT, `resumed at ${a.session.pending} queued`);
    await waitFor(() => a.session.pending === 0, "the burst done");
    assert.equal(a.session.subscriptions.size, READ_PAUSE_AT, "nothing read was dropped");
    assert.equal(a.socket.pauses, 1);
    assert.equal(a.socket.closed, undefined);
  });

  it("closes a client with 1008 whose queue passes the cap where reading cannot pause", async () => {
    const { node } = makeNode();
    const a = await connected(node, "a");
    // an application's own Deno.serve: its WebSockets cannot pause
    Object.assign(a.socket, { pauseReading: undefined, resumeReading: undefined });
    for (let i = 0; i < MAX_QUEUED_COMMANDS; i++) node.message(a.session, subscribeTo(`c${i}`), 1);
    assert.deepEqual(a.socket.closed, { code: 1008, reason: "Too many queued commands" });
    assert.equal(node.sessions.has("a"), false);
  });
});

describe("Node: max subscriptions per connection", () => {
  it("rejects a subscribe over the limit, counts and logs it, and accepts again after an unsubscribe", async () => {
    const lines: string[] = [];
    const logger = new Logger("debug", "text", {}, { write: (l) => lines.push(l) });
    const { node, metrics, hub } = makeNode({ maxSubscriptions: 2, logger });
    const { socket, session } = await connected(node);
    const id = (s: string) => JSON.stringify({ channel: "$pubsub", stream_name: s });
    for (const s of ["one", "two", "three"]) node.message(session, subscribeTo(s), 1);
    await waitFor(() => session.pending === 0, "three subscribes");
    assert.deepEqual(socket.json().slice(1), [
      { identifier: id("one"), type: "confirm_subscription" },
      { identifier: id("two"), type: "confirm_subscription" },
      { identifier: id("three"), type: "reject_subscription" },
    ]);
    assert.equal(metrics.counterValue("subscriptions_limit_exceeded_total"), 1);
    assert.equal(metrics.counterValue("failed_client_msg_total"), 0);
    assert.equal(hub.subscribersCount("three"), 0);
    const logged = lines.find((l) => l.includes("too many subscriptions"));
    assert.ok(logged, lines.join("\n"));
    assert.match(logged, / DBG /);
    assert.ok(logged.includes("limit=2"), logged);
    assert.ok(logged.includes("sid=sid1"), logged);
    node.message(session, JSON.stringify({ command: "unsubscribe", identifier: id("one") }), 1);
    node.message(session, subscribeTo("three"), 1);
    await waitFor(() => session.pending === 0, "unsubscribe and subscribe");
    assert.deepEqual(socket.json().at(-1), { identifier: id("three"), type: "confirm_subscription" });
    assert.equal(metrics.counterValue("subscriptions_limit_exceeded_total"), 1);
  });

  it("0 means unlimited", async () => {
    const { node, metrics } = makeNode({ maxSubscriptions: 0 });
    const { socket, session } = await connected(node);
    for (let i = 0; i < 50; i++) node.message(session, subscribeTo(`s${i}`), 1);
    await waitFor(() => session.pending === 0, "50 subscribes");
    assert.equal(socket.json().filter((m) => m.type === "confirm_subscription").length, 50);
    assert.equal(metrics.counterValue("subscriptions_limit_exceeded_total"), 0);
  });
});
