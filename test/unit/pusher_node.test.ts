// The Executor seam with the real Pusher executor inside an in-process node and memory broker:
// Pusher sessions bypass the application's controller, get socket ids in Pusher's format, are
// spared their own member_added, close with Pusher's codes, and Action Cable sessions beside
// them are unchanged.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { MemoryBroker } from "../../src/broker/memory.ts";
import { Hub } from "../../src/hub/hub.ts";
import { Metrics } from "../../src/metrics/registry.ts";
import type { Controller } from "../../src/node/controller.ts";
import { Node } from "../../src/node/node.ts";
import { Channels } from "../../src/protocols/pusher/channels.ts";
import { PusherExecutor } from "../../src/protocols/pusher/executor.ts";
import { PUSHER_PROTOCOL, SOCKET_ID_PATTERN } from "../../src/protocols/pusher/protocol.ts";
import { channelAuth } from "../../src/protocols/pusher/signatures.ts";
import { FakeSocket, nodeBroker, silentLogger } from "../support/fake_node.ts";

const KEY = "k";
const SECRET = "s";

/** An application controller that must never be called for Pusher sessions. */
const calls: string[] = [];
const app: Controller = {
  async authenticate() {
    calls.push("authenticate");
    return { status: "success", identifiers: "{}", transmissions: ['{"type":"welcome"}'] };
  },
  async subscribe() {
    calls.push("subscribe");
    return { status: "success", transmissions: [] };
  },
  async unsubscribe() {
    calls.push("unsubscribe");
    return { status: "success", transmissions: [] };
  },
  async perform() {
    calls.push("perform");
    return { status: "success", transmissions: [] };
  },
  async disconnect() {
    calls.push("disconnect");
  },
};

function setup() {
  calls.length = 0;
  let node: Node;
  const broker = nodeBroker(
    () => node,
    (pubsub) =>
      new MemoryBroker({
        pubsub,
        historyLimit: 10,
        historyTtlSec: 60,
        sessionsTtlSec: 60,
        presenceTtlSec: 15,
        maxStreams: 10,
        maxSessions: 10,
        presenter: { presenceChanged: (s, e, sid) => node.presenceChanged(s, e, sid) },
      }),
  );
  const channels = new Channels(broker, undefined, silentLogger);
  const executor = new PusherExecutor({
    appKey: KEY,
    secret: SECRET,
    broker,
    channels,
    logger: silentLogger,
    reidentify: (s, ids) => node.setIdentifiers(s, ids),
  });
  node = new Node({
    controller: app,
    hub: new Hub(),
    broker,
    metrics: new Metrics(),
    logger: silentLogger,
    pongTimeoutMs: 0,
    pingIntervalMs: 3000,
    pingPrecision: "s",
    nativePings: false,
    maxPendingBytes: 0,
    writeTimeoutMs: 0,
    disconnectMode: "auto",
    maxSubscriptions: 0,
    executors: new Map([[PUSHER_PROTOCOL, executor]]),
  });
  const open = async (sid: string, protocol = PUSHER_PROTOCOL) => {
    const socket = new FakeSocket();
    const session = node.open(
      { sid, url: "ws://x/app/k", headers: {}, protocol, pingIntervalSec: 0 },
      socket,
    );
    await session.chain;
    const send = async (msg: unknown) => {
      const frame = JSON.stringify(msg);
      node.message(session, frame, frame.length);
      await session.chain;
      // presence events travel through the broker's promise chain
      await new Promise((r) => setTimeout(r, 0));
    };
    return { session, socket, send, events: () => socket.json().map((f) => f.event ?? f.type) };
  };
  return { node, open, channels };
}

const presenceSub = (sid: string, channel: string, userId: string) => {
  const channelData = JSON.stringify({ user_id: userId });
  return {
    event: "pusher:subscribe",
    data: { channel, channel_data: channelData, auth: channelAuth(KEY, SECRET, sid, channel, channelData) },
  };
};

describe("the Executor seam with Pusher sessions", () => {
  it("welcomes without the application's controller, and keeps Action Cable sessions on it", async () => {
    const { open } = setup();
    const p = await open("1.1");
    assert.deepEqual(p.socket.json()[0], {
      event: "pusher:connection_established",
      data: '{"socket_id":"1.1","activity_timeout":30}',
    });
    await p.send({ event: "pusher:subscribe", data: { channel: "news" } });
    await p.send({ event: "pusher:unsubscribe", data: { channel: "news" } });
    assert.deepEqual(calls, []);
    const ac = await open("ac-1", "actioncable-v1-json");
    assert.deepEqual(calls, ["authenticate"]);
    assert.deepEqual(ac.socket.json()[0], { type: "welcome" });
  });

  it("a taken socket id is replaced by a fresh one in Pusher's format", async () => {
    const { open } = setup();
    await open("5.5");
    const second = await open("5.5");
    assert.notEqual(second.session.sid, "5.5");
    assert.match(second.session.sid, SOCKET_ID_PATTERN);
  });

  it("member_added goes to the other members, never back to the joiner; member_removed on unsubscribe", async () => {
    const { open } = setup();
    const a = await open("1.1");
    await a.send(presenceSub("1.1", "presence-r", "alice"));
    const b = await open("2.2");
    await b.send(presenceSub("2.2", "presence-r", "bob"));
    assert.ok(a.events().includes("pusher_internal:member_added"), JSON.stringify(a.socket.json()));
    assert.ok(!b.events().includes("pusher_internal:member_added"), JSON.stringify(b.socket.json()));
    assert.ok(!a.events().slice(0, 2).includes("pusher_internal:member_added"));
    await b.send({ event: "pusher:unsubscribe", data: { channel: "presence-r" } });
    assert.deepEqual(a.socket.json().at(-1), {
      event: "pusher_internal:member_removed",
      data: '{"user_id":"bob"}',
      channel: "presence-r",
    });
  });

  it("server-side disconnects close with 4009 / 4200; counts follow subscriptions and closes", async () => {
    const { node, open, channels } = setup();
    const a = await open("1.1");
    await a.send({ event: "pusher:subscribe", data: { channel: "c" } });
    assert.equal(channels.localCount("c"), 1);
    node.disconnect(a.session, "remote", false, 1000, "Closed remotely");
    assert.equal(a.socket.closed?.code, 4009);
    assert.deepEqual(a.socket.json().at(-1), {
      event: "pusher:error",
      data: { message: "remote", code: 4009 },
    });
    assert.equal(channels.localCount("c"), 0);
    const b = await open("2.2");
    await node.shutdown();
    assert.equal(b.socket.closed?.code, 4200);
  });

  it("a signed-in user is found by its identifiers for remote disconnects", async () => {
    const { node, open } = setup();
    const a = await open("1.1");
    const userData = '{"id":"u9"}';
    const { userAuth } = await import("../../src/protocols/pusher/signatures.ts");
    await a.send({
      event: "pusher:signin",
      data: { auth: userAuth(KEY, SECRET, "1.1", userData), user_data: userData },
    });
    assert.deepEqual(a.socket.json().at(-1), {
      event: "pusher:signin_success",
      data: { user_data: userData },
    });
    node.remoteDisconnect('{"pusher_user":"u9"}', false);
    assert.equal(a.socket.closed?.code, 4009);
  });
});
