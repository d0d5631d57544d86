// The node's side of reliable streams, resumable sessions, pongs and presence, driven in-process
// with recording sockets against the real memory broker (and the pass-through one).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Broker } from "../../src/broker/broker.ts";
import { MemoryBroker } from "../../src/broker/memory.ts";
import { Hub } from "../../src/hub/hub.ts";
import { PublicIdentityController } from "../../src/identity/public.ts";
import { Metrics } from "../../src/metrics/registry.ts";
import type { ChannelContext, ConnectionContext, Controller } from "../../src/node/controller.ts";
import { Node } from "../../src/node/node.ts";
import { NullController } from "../../src/node/null_controller.ts";
import { ChannelRouter } from "../../src/node/router.ts";
import type { ConnectionRequest } from "../../src/node/socket.ts";
import type { LocalPubSub } from "../../src/pubsub/local.ts";
import { StreamsController } from "../../src/streams/controller.ts";
import { FakeSocket, nodeBroker, silentLogger } from "../support/fake_node.ts";

const EXT = "actioncable-v1-ext-json";
const ID = JSON.stringify({ channel: "$pubsub", stream_name: "chat" });

/** Counts what reaches the controller chain: a restore must not call it. */
class CountingController implements Controller {
  readonly calls: string[] = [];
  constructor(private readonly inner: Controller) {}
  authenticate(ctx: ConnectionContext) {
    this.calls.push("authenticate");
    return this.inner.authenticate(ctx);
  }
  subscribe(ctx: ChannelContext) {
    this.calls.push("subscribe");
    return this.inner.subscribe(ctx);
  }
  unsubscribe(ctx: ChannelContext) {
    this.calls.push("unsubscribe");
    return this.inner.unsubscribe(ctx);
  }
  perform(ctx: ChannelContext, data: string) {
    this.calls.push("perform");
    return this.inner.perform(ctx, data);
  }
  disconnect(ctx: ConnectionContext, subs: string[]) {
    this.calls.push("disconnect");
    return this.inner.disconnect(ctx, subs);
  }
}

interface Setup {
  memory?: boolean;
  pongTimeoutMs?: number;
  pingIntervalMs?: number;
}

function setup(o: Setup = {}) {
  let nowMs = 1_000_000;
  const metrics = new Metrics();
  const router = new ChannelRouter(new NullController());
  // public streams also allow whispers and presence
  router.route("$pubsub", new StreamsController({ publicStreams: true }));
  const controller = new CountingController(new PublicIdentityController(router));
  const memory = (p: LocalPubSub): Broker =>
    new MemoryBroker({
      pubsub: p,
      presenter: { presenceChanged: (s, e) => node.presenceChanged(s, e) },
      historyLimit: 100,
      historyTtlSec: 300,
      sessionsTtlSec: 300,
      presenceTtlSec: 15,
      maxStreams: 1000,
      maxSessions: 1000,
      now: () => nowMs,
    });
  const broker = o.memory ? nodeBroker(() => node, memory) : nodeBroker(() => node);
  const node: Node = new Node({
    controller,
    hub: new Hub(),
    broker,
    sessionCache: o.memory === true,
    sessionsTouchMs: 150_000,
    presenceTouchMs: 7_500,
    metrics,
    logger: silentLogger,
    pongTimeoutMs: o.pongTimeoutMs ?? 0,
    pingIntervalMs: o.pingIntervalMs ?? 0,
    pingPrecision: "s",
    nativePings: false,
    maxPendingBytes: 0,
    writeTimeoutMs: 0,
    disconnectMode: "auto",
    maxSubscriptions: 0,
    random: () => 0.5,
  });
  async function connect(sid: string, protocol = EXT, extra: Partial<ConnectionRequest> = {}) {
    const socket = new FakeSocket();
    const session = node.open({ sid, url: "ws://x/cable", headers: {}, protocol, ...extra }, socket);
    await session.chain;
    return {
      socket,
      session,
      async send(cmd: Record<string, unknown>) {
        const frame = JSON.stringify(cmd);
        node.message(session, frame, frame.length);
        await session.chain;
      },
      /** Frames after the first `from` ones, parsed. */
      after(from: number) {
        return socket.json().slice(from);
      },
    };
  }
  return {
    node,
    broker,
    metrics,
    controller,
    connect,
    advance(ms: number) {
      nowMs += ms;
      broker.expire(nowMs);
    },
  };
}

const publish = (broker: Broker, data: unknown) =>
  broker.handleBroadcast({ stream: "chat", dataJson: JSON.stringify(data) });

describe("history without a broker", () => {
  it("rejects a history command and the history part of a subscribe, after confirming it", async () => {
    const { connect, metrics } = setup();
    const c = await connect("s1");
    await c.send({ command: "subscribe", identifier: ID, history: { since: 1 } });
    assert.deepEqual(c.after(1), [
      { type: "confirm_subscription", identifier: ID },
      { type: "reject_history", identifier: ID },
    ]);
    await c.send({
      command: "history",
      identifier: ID,
      history: { streams: { chat: { epoch: "e", offset: 1 } } },
    });
    assert.deepEqual(c.after(3), [{ type: "reject_history", identifier: ID }]);
    assert.equal(
      metrics.counterValue("failed_client_msg_total"),
      1,
      "the rejected history command is counted",
    );
  });

  it("answers nothing to history before subscribing (a failed command)", async () => {
    const { connect, metrics } = setup();
    const c = await connect("s1");
    await c.send({ command: "history", identifier: ID, history: { since: 1 } });
    assert.equal(c.socket.frames.length, 1, "only the welcome");
    assert.equal(metrics.counterValue("failed_client_msg_total"), 1);
  });

  it("broadcasts carry no stream position", async () => {
    const { connect, broker } = setup();
    const c = await connect("s1");
    await c.send({ command: "subscribe", identifier: ID });
    publish(broker, { n: 1 });
    assert.deepEqual(c.after(2), [{ identifier: ID, message: { n: 1 } }]);
  });
});

describe("history with the memory broker", () => {
  it("gives every broadcast its position, for plain and extended JSON sessions alike", async () => {
    const { connect, broker } = setup({ memory: true });
    const ext = await connect("s1");
    const plain = await connect("s2", "actioncable-v1-json");
    await ext.send({ command: "subscribe", identifier: ID });
    await plain.send({ command: "subscribe", identifier: ID });
    publish(broker, { n: 1 });
    publish(broker, { n: 2 });
    for (const c of [ext, plain]) {
      const got = c.after(2);
      assert.equal(got.length, 2);
      assert.deepEqual(
        got.map((m) => [m.message, m.stream_id, m.offset]),
        [
          [{ n: 1 }, "chat", 1],
          [{ n: 2 }, "chat", 2],
        ],
      );
      assert.equal(typeof got[0]!.epoch, "string");
    }
  });

  it("sends the messages after an offset, then confirm_history; a wrong epoch is rejected", async () => {
    const { connect, broker } = setup({ memory: true });
    const c = await connect("s1");
    await c.send({ command: "subscribe", identifier: ID });
    for (let n = 1; n <= 4; n++) publish(broker, { n });
    const epoch = c.after(2)[0]!.epoch as string;
    const late = await connect("s2");
    await late.send({ command: "subscribe", identifier: ID });
    await late.send({
      command: "history",
      identifier: ID,
      history: { streams: { chat: { epoch, offset: 2 } } },
    });
    assert.deepEqual(late.after(2), [
      { identifier: ID, message: { n: 3 }, stream_id: "chat", epoch, offset: 3 },
      { identifier: ID, message: { n: 4 }, stream_id: "chat", epoch, offset: 4 },
      { type: "confirm_history", identifier: ID },
    ]);
    await late.send({
      command: "history",
      identifier: ID,
      history: { streams: { chat: { epoch: "other", offset: 2 } } },
    });
    assert.deepEqual(late.after(5), [{ type: "reject_history", identifier: ID }]);
  });

  it("runs history asked for in subscribe right after confirm_subscription", async () => {
    const { connect, broker } = setup({ memory: true });
    publish(broker, "before");
    const c = await connect("s1");
    await c.send({
      command: "subscribe",
      identifier: ID,
      history: { since: Math.floor(1_000_000 / 1000) - 10 },
    });
    const types = c.after(1).map((m) => m.type ?? m.message);
    assert.deepEqual(types, ["confirm_subscription", "before", "confirm_history"]);
  });
});

describe("session restore", () => {
  it("restores subscriptions and state from the sid without calling the controller", async () => {
    const { node, connect, broker, controller } = setup({ memory: true });
    const first = await connect("old-sid");
    await first.send({ command: "subscribe", identifier: ID });
    node.closed(first.session);
    publish(broker, "missed");
    controller.calls.length = 0;
    const again = await connect("new-sid", EXT, { restoreSid: "old-sid" });
    assert.deepEqual(again.socket.json(), [
      { type: "welcome", sid: "new-sid", restored: true, restored_ids: [ID] },
    ]);
    assert.deepEqual(controller.calls, [], "no authenticate, no subscribe");
    publish(broker, "live");
    assert.deepEqual(
      again.after(1).map((m) => m.message),
      ["live"],
      "subscribed again without a subscribe",
    );
    // the restored session is committed under its new id and restores in turn
    node.closed(again.session);
    const third = await connect("third-sid", EXT, { restoreSid: "new-sid" });
    assert.equal(third.socket.json()[0]!.restored, true);
  });

  it("with the memory broker writes a live session's snapshot at its close, and restores a live one from itself", async () => {
    const { node, connect, broker } = setup({ memory: true });
    const first = await connect("live-sid");
    await first.send({ command: "subscribe", identifier: ID });
    // nothing serialized per live connection: the snapshot lives in the process anyway
    assert.equal(await broker.restoreSession("live-sid"), undefined);
    // a reconnect racing the old socket's close restores from the live session
    const racing = await connect("racing-sid", EXT, { restoreSid: "live-sid" });
    assert.deepEqual(racing.socket.json(), [
      { type: "welcome", sid: "racing-sid", restored: true, restored_ids: [ID] },
    ]);
    node.closed(first.session);
    const stored = await broker.restoreSession("live-sid");
    assert.ok(stored?.includes("stream_name"), "written when the session closed");
    node.closed(racing.session);
    assert.ok(await broker.restoreSession("racing-sid"), "a restored session is written at its close too");
  });

  it("connects normally with an unknown, garbage or non-extended restore", async () => {
    const { node, connect, controller } = setup({ memory: true });
    const first = await connect("old-sid");
    await first.send({ command: "subscribe", identifier: ID });
    node.closed(first.session);
    for (const [sid, restoreSid, protocol] of [
      ["a", "no-such-sid", EXT],
      ["b", "\u0000{garbage", EXT],
      ["c", "old-sid", "actioncable-v1-json"],
    ] as const) {
      controller.calls.length = 0;
      const c = await connect(sid, protocol, { restoreSid });
      assert.deepEqual(c.socket.json(), [{ type: "welcome", sid }], `${sid}: a plain welcome`);
      assert.deepEqual(controller.calls, ["authenticate"]);
    }
  });

  it("does not restore once the snapshot expired, and keeps a live one alive", async () => {
    const { node, connect, advance } = setup({ memory: true });
    const gone = await connect("gone");
    await gone.send({ command: "subscribe", identifier: ID });
    node.closed(gone.session);
    const live = await connect("live");
    await live.send({ command: "subscribe", identifier: ID });
    // 10 minutes of ticks: the closed one expires after 300 s, the live one is touched
    for (let t = 0; t < 600; t++) {
      advance(1000);
      node.tick(1_000_000 + t * 1000);
    }
    node.closed(live.session);
    const a = await connect("a", EXT, { restoreSid: "gone" });
    assert.equal(a.socket.json()[0]!.restored, undefined);
    const b = await connect("b", EXT, { restoreSid: "live" });
    assert.equal(b.socket.json()[0]!.restored, true);
  });

  it("gives a fresh sid to a client whose X-Request-ID names a cached session", async () => {
    const { node, connect } = setup({ memory: true });
    const first = await connect("victim");
    node.closed(first.session);
    const c = await connect("victim", EXT, { clientSid: true });
    const sid = c.socket.json()[0]!.sid as string;
    assert.notEqual(sid, "victim");
    assert.equal(c.session.sid, sid);
    assert.ok(node.sessions.has(sid));
  });
});

describe("pong timeout", () => {
  it("disconnects an extended-protocol client that sends nothing after a ping, not one that answers", async () => {
    const { node, connect } = setup({ pongTimeoutMs: 1000, pingIntervalMs: 3000 });
    const start = Date.now();
    const silent = await connect("silent");
    const answering = await connect("answering");
    const plain = await connect("plain", "actioncable-v1-json");
    // random() = 0.5: the first ping is due one interval after connecting
    node.tick(start + 3100);
    assert.equal(silent.after(1)[0]!.type, "ping");
    await answering.send({ command: "pong" });
    node.tick(start + 4200);
    assert.deepEqual(silent.after(2), [{ type: "disconnect", reason: "no_pong", reconnect: true }]);
    assert.equal(silent.socket.closed?.code, 1000);
    assert.equal(answering.socket.closed, undefined);
    assert.equal(plain.socket.closed, undefined, "plain actioncable-v1-json is not held to pongs");
  });
});

describe("presence with the memory broker", () => {
  it("joins, counts a presence id once across sessions and leaves with its last session", async () => {
    const { connect } = setup({ memory: true });
    const a = await connect("a");
    const b = await connect("b");
    const b2 = await connect("b2");
    for (const c of [a, b, b2]) await c.send({ command: "subscribe", identifier: ID });
    await a.send({ command: "join", identifier: ID, presence: { id: "u1", info: { name: "Ann" } } });
    const join = {
      type: "presence",
      identifier: ID,
      message: { type: "join", info: { name: "Ann" }, id: "u1" },
    };
    assert.deepEqual(b.after(2), [join]);
    await b.send({ command: "join", identifier: ID, presence: { id: "u2" } });
    await b2.send({ command: "join", identifier: ID, presence: { id: "u2" } });
    assert.equal(a.after(3).length, 1, "one join for u2, not two");
    await a.send({ command: "presence", identifier: ID });
    const info = a.after(4)[0]!;
    assert.equal(info.type, "presence");
    const msg = info.message as { type: string; total: number; records: { id: string }[] };
    assert.equal(msg.type, "info");
    assert.equal(msg.total, 2);
    assert.deepEqual(msg.records.map((r) => r.id).sort(), ["u1", "u2"]);
    await a.send({ command: "presence", identifier: ID, data: { return_records: false } });
    assert.deepEqual(a.after(5)[0]!.message, { type: "info", total: 2 });
    await b.send({ command: "leave", identifier: ID });
    assert.equal(a.after(6).length, 0, "u2 still has a session");
    await b2.send({ command: "unsubscribe", identifier: ID });
    assert.deepEqual(a.after(6), [
      { type: "presence", identifier: ID, message: { type: "leave", id: "u2" } },
    ]);
  });

  it("lets a disconnected session's record expire after the presence TTL, while a live one stays", async () => {
    const { node, connect, advance } = setup({ memory: true });
    const watcher = await connect("w");
    const leaving = await connect("l");
    for (const c of [watcher, leaving]) await c.send({ command: "subscribe", identifier: ID });
    await watcher.send({ command: "join", identifier: ID, presence: { id: "w" } });
    await leaving.send({ command: "join", identifier: ID, presence: { id: "l" } });
    const seen = watcher.socket.frames.length;
    node.closed(leaving.session);
    let leftAt = -1;
    for (let t = 1; t <= 45; t++) {
      advance(1000);
      node.tick(1_000_000 + t * 1000);
      if (leftAt < 0 && watcher.socket.frames.length > seen) leftAt = t;
    }
    assert.ok(
      leftAt >= 15 && leftAt <= 17,
      `the leave came ${leftAt} s after the disconnect (presence TTL 15 s)`,
    );
    assert.deepEqual(watcher.after(seen), [
      { type: "presence", identifier: ID, message: { type: "leave", id: "l" } },
    ]);
  });

  it("refuses presence on a subscription without a presence stream and before subscribing", async () => {
    const { connect, metrics } = setup({ memory: true });
    const c = await connect("a");
    await c.send({ command: "join", identifier: ID, presence: { id: "x" } });
    await c.send({ command: "presence", identifier: ID });
    assert.equal(c.socket.frames.length, 1, "nothing but the welcome");
    assert.equal(metrics.counterValue("failed_client_msg_total"), 2);
  });
});

describe("client-chosen identifiers as keys", () => {
  it('keeps the channel state of a subscription named "__proto__" (an RPC backend accepts any identifier)', async () => {
    const controller: Controller = {
      authenticate: async () => ({
        status: "success",
        identifiers: "{}",
        transmissions: ['{"type":"welcome"}'],
      }),
      subscribe: async (ctx) => ({
        status: "success",
        transmissions: [JSON.stringify({ type: "confirm_subscription", identifier: ctx.identifier })],
        istate: { k: "v" },
      }),
      unsubscribe: async () => ({ status: "success", transmissions: [] }),
      perform: async () => ({ status: "success", transmissions: [] }),
      disconnect: async () => {},
    };
    const node: Node = new Node({
      controller,
      hub: new Hub(),
      broker: nodeBroker(() => node),
      metrics: new Metrics(),
      logger: silentLogger,
      pongTimeoutMs: 0,
      pingIntervalMs: 0,
      pingPrecision: "s",
      nativePings: false,
      maxPendingBytes: 0,
      writeTimeoutMs: 0,
      disconnectMode: "auto",
      maxSubscriptions: 0,
    });
    const session = node.open(
      { sid: "p", url: "ws://x/cable", headers: {}, protocol: EXT },
      new FakeSocket(),
    );
    await session.chain;
    node.message(session, JSON.stringify({ command: "subscribe", identifier: "__proto__" }), 1);
    await session.chain;
    assert.deepEqual(Object.keys(session.env.istate), ["__proto__"]);
    assert.deepEqual(Object.getOwnPropertyDescriptor(session.env.istate, "__proto__")?.value, { k: "v" });
  });
});

describe("the extended protocol over msgpack", () => {
  it("carries stream positions, history and restore in binary frames", async () => {
    const { decode, encode } = await import("@msgpack/msgpack");
    const { node, connect, broker } = setup({ memory: true });
    const MSGPACK = "actioncable-v1-ext-msgpack";
    const frames = (socket: FakeSocket) =>
      (socket.frames as unknown as Uint8Array[]).map((f) => decode(f) as Record<string, unknown>);
    const send = async (c: Awaited<ReturnType<typeof connect>>, cmd: Record<string, unknown>) => {
      const bytes = encode(cmd);
      node.message(c.session, bytes, bytes.byteLength);
      await c.session.chain;
    };
    const c = await connect("m1", MSGPACK);
    await send(c, { command: "subscribe", identifier: ID });
    publish(broker, { n: 1 });
    const live = frames(c.socket).at(-1)!;
    assert.deepEqual([live.message, live.stream_id, live.offset], [{ n: 1 }, "chat", 1]);
    node.closed(c.session);
    publish(broker, { n: 2 });
    const again = await connect("m2", MSGPACK, { restoreSid: "m1" });
    assert.equal(frames(again.socket)[0]!.restored, true);
    await send(again, {
      command: "history",
      identifier: ID,
      history: { streams: { chat: { epoch: live.epoch, offset: 1 } } },
    });
    assert.deepEqual(
      frames(again.socket)
        .slice(1)
        .map((m) => m.type ?? m.message),
      [{ n: 2 }, "confirm_history"],
    );
  });
});
