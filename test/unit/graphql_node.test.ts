// The GraphQL executors inside an in-process node, with an application controller that plays the
// GraphQL channel's contract under non-default names (--graphql_channel=ApiChannel,
// --graphql_action=run): what the application is asked, what the client is sent, and the
// protocol's close codes.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Hub } from "../../src/hub/hub.ts";
import { Metrics } from "../../src/metrics/registry.ts";
import type { ChannelContext, ConnectionContext, Controller } from "../../src/node/controller.ts";
import { Node } from "../../src/node/node.ts";
import { CONNECTION_HEADER, GraphqlExecutor, INIT_TIMEOUT_MS } from "../../src/protocols/graphql/executor.ts";
import {
  type GraphqlProtocol,
  LEGACY_WS_PROTOCOL,
  TRANSPORT_WS_PROTOCOL,
} from "../../src/protocols/graphql/protocol.ts";
import { FakeSocket, nodeBroker, silentLogger } from "../support/fake_node.ts";

const CHANNEL = "ApiChannel";
const ACTION = "run";

interface Call {
  kind: string;
  identifier?: string;
  data?: Record<string, unknown>;
  connection?: string;
  token?: string;
}

/** The application: `subscription` queries stream `posts`, others answer once with more: false. */
function application(calls: Call[], opts: { refuse?: boolean; rejectSubscribe?: boolean } = {}): Controller {
  return {
    async authenticate(ctx: ConnectionContext) {
      calls.push({
        kind: "connect",
        connection: ctx.env.headers[CONNECTION_HEADER],
        token: ctx.env.headers["x-jid"],
      });
      if (opts.refuse) {
        return {
          status: "failure",
          identifiers: "",
          transmissions: ['{"type":"disconnect","reason":"unauthorized","reconnect":false}'],
        };
      }
      return { status: "success", identifiers: '{"user":"u1"}', transmissions: ['{"type":"welcome"}'] };
    },
    async subscribe(ctx: ChannelContext) {
      calls.push({ kind: "subscribe", identifier: ctx.identifier });
      if (opts.rejectSubscribe) {
        return {
          status: "failure",
          transmissions: [JSON.stringify({ identifier: ctx.identifier, type: "reject_subscription" })],
        };
      }
      return {
        status: "success",
        transmissions: [JSON.stringify({ identifier: ctx.identifier, type: "confirm_subscription" })],
      };
    },
    async unsubscribe(ctx: ChannelContext) {
      calls.push({ kind: "unsubscribe", identifier: ctx.identifier });
      return { status: "success", transmissions: [], stopAllStreams: true };
    },
    async perform(ctx: ChannelContext, data: string) {
      const d = JSON.parse(data) as Record<string, unknown>;
      calls.push({ kind: "perform", identifier: ctx.identifier, data: d });
      const sub = String(d.query).startsWith("subscription");
      const message = sub
        ? { result: { data: null }, more: true }
        : { result: { data: { answer: 42 } }, more: false };
      return {
        status: "success",
        transmissions: [JSON.stringify({ identifier: ctx.identifier, message })],
        streams: sub ? ["posts"] : [],
      };
    },
    async disconnect() {
      calls.push({ kind: "disconnect" });
    },
  };
}

function setup(protocol: GraphqlProtocol, opts: { refuse?: boolean; rejectSubscribe?: boolean } = {}) {
  const calls: Call[] = [];
  let clock = 1_000_000;
  const executor = new GraphqlExecutor(application(calls, opts), {
    protocol,
    channel: CHANNEL,
    action: ACTION,
    jwtParam: "jid",
    logger: silentLogger,
    now: () => clock,
  });
  const node: Node = new Node({
    controller: executor.controller,
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
    executors: new Map([[protocol, executor]]),
  });
  const open = async () => {
    const socket = new FakeSocket();
    const session = node.open(
      { sid: `s${calls.length}-${Math.random()}`, url: "ws://x/graphql", headers: {}, protocol },
      socket,
    );
    await session.chain;
    const send = async (msg: unknown) => {
      const frame = typeof msg === "string" ? msg : JSON.stringify(msg);
      node.message(session, frame, frame.length);
      await session.chain;
    };
    return { session, socket, send };
  };
  return { node, executor, calls, open, advance: (ms: number) => (clock += ms) };
}

const closeCode = (s: FakeSocket): number | undefined => s.closed?.code;
const identifier = (id: string) => JSON.stringify({ channel: CHANNEL, channelId: id });

describe("GraphQL sessions in the node (graphql-transport-ws)", () => {
  it("authenticates only at connection_init, with its payload as x-apollo-connection and the JWT from it", async () => {
    const { calls, open } = setup(TRANSPORT_WS_PROTOCOL);
    const c = await open();
    assert.deepEqual(calls, []);
    assert.deepEqual(c.socket.frames, []);
    await c.send({ type: "connection_init", payload: { jid: "tok", locale: "en" } });
    assert.deepEqual(calls, [{ kind: "connect", connection: '{"jid":"tok","locale":"en"}', token: "tok" }]);
    assert.deepEqual(c.socket.json(), [{ type: "connection_ack" }]);
  });

  it("a subscription subscribes to the configured channel and performs the configured action", async () => {
    const { node, calls, open } = setup(TRANSPORT_WS_PROTOCOL);
    const c = await open();
    await c.send({ type: "connection_init" });
    await c.send({
      type: "subscribe",
      id: "op1",
      payload: { query: "subscription { posts { id } }", variables: { n: 1 }, operationName: "P" },
    });
    assert.deepEqual(calls.slice(1), [
      { kind: "subscribe", identifier: identifier("op1") },
      {
        kind: "perform",
        identifier: identifier("op1"),
        data: {
          query: "subscription { posts { id } }",
          variables: { n: 1 },
          operationName: "P",
          action: ACTION,
        },
      },
    ]);
    // the empty first answer is not shown; a broadcast on the operation's stream is a next frame
    assert.deepEqual(c.socket.json(), [{ type: "connection_ack" }]);
    node.broadcast({
      stream: "posts",
      dataJson: JSON.stringify({ result: { data: { posts: { id: 9 } } }, more: true }),
    });
    assert.deepEqual(c.socket.json().at(-1), {
      id: "op1",
      type: "next",
      payload: { data: { posts: { id: 9 } } },
    });
    // complete -> unsubscribe; nothing more arrives for it
    await c.send({ type: "complete", id: "op1" });
    assert.deepEqual(calls.at(-1), { kind: "unsubscribe", identifier: identifier("op1") });
    const before = c.socket.frames.length;
    node.broadcast({
      stream: "posts",
      dataJson: JSON.stringify({ result: { data: { posts: { id: 10 } } }, more: true }),
    });
    assert.equal(c.socket.frames.length, before);
  });

  it("a query answers next then complete, and leaves the channel before the complete", async () => {
    const { calls, open } = setup(TRANSPORT_WS_PROTOCOL);
    const c = await open();
    await c.send({ type: "connection_init" });
    await c.send({ type: "subscribe", id: "q", payload: { query: "{ answer }" } });
    assert.deepEqual(c.socket.json().slice(1), [
      { id: "q", type: "next", payload: { data: { answer: 42 } } },
      { id: "q", type: "complete" },
    ]);
    assert.deepEqual(
      calls.map((x) => x.kind),
      ["connect", "subscribe", "perform", "unsubscribe"],
    );
    assert.equal(c.session.subscriptions.has(identifier("q")), false);
  });

  it("a refused subscription is an error frame for that operation; the connection stays", async () => {
    const { open } = setup(TRANSPORT_WS_PROTOCOL, { rejectSubscribe: true });
    const c = await open();
    await c.send({ type: "connection_init" });
    await c.send({ type: "subscribe", id: "x", payload: { query: "subscription { s }" } });
    assert.deepEqual(c.socket.json().at(-1), {
      id: "x",
      type: "error",
      payload: [{ message: "Subscription rejected" }],
    });
    assert.equal(c.socket.closed, undefined);
  });

  const closes: Array<
    [string, (c: Awaited<ReturnType<ReturnType<typeof setup>["open"]>>) => Promise<void>, number]
  > = [
    [
      "an operation before connection_init",
      (c) => c.send({ type: "subscribe", id: "1", payload: { query: "{a}" } }),
      4401,
    ],
    [
      "a second connection_init",
      async (c) => {
        await c.send({ type: "connection_init" });
        await c.send({ type: "connection_init" });
      },
      4429,
    ],
    [
      "a duplicate operation id",
      async (c) => {
        await c.send({ type: "connection_init" });
        await c.send({ type: "subscribe", id: "d", payload: { query: "subscription { s }" } });
        await c.send({ type: "subscribe", id: "d", payload: { query: "subscription { s }" } });
      },
      4409,
    ],
    ["a frame that is not JSON", (c) => c.send("{oops"), 4400],
    [
      "an unknown message type",
      async (c) => {
        await c.send({ type: "connection_init" });
        await c.send({ type: "start", id: "1", payload: { query: "{a}" } });
      },
      4400,
    ],
  ];
  for (const [name, act, code] of closes) {
    it(`${name} closes with ${code}`, async () => {
      const { open } = setup(TRANSPORT_WS_PROTOCOL);
      const c = await open();
      await act(c);
      assert.equal(c.socket.closed?.code, code, JSON.stringify(c.socket.frames));
    });
  }

  it("a refused connection_init closes with 4403", async () => {
    const { open } = setup(TRANSPORT_WS_PROTOCOL, { refuse: true });
    const c = await open();
    await c.send({ type: "connection_init" });
    assert.equal(c.socket.closed?.code, 4403);
  });

  it("no connection_init within the timeout closes with 4408 on the ticker, an initialised one stays", async () => {
    const { executor, open, advance } = setup(TRANSPORT_WS_PROTOCOL);
    const idle = await open();
    const ready = await open();
    await ready.send({ type: "connection_init" });
    executor.tick(advance(INIT_TIMEOUT_MS - 1));
    assert.equal(closeCode(idle.socket), undefined, "not before the timeout");
    executor.tick(advance(2));
    assert.equal(idle.socket.closed?.code, 4408);
    assert.equal(ready.socket.closed, undefined);
  });
});

describe("GraphQL sessions in the node (legacy graphql-ws)", () => {
  it("acknowledges with connection_ack then ka; start -> data; stop -> complete", async () => {
    const { node, open } = setup(LEGACY_WS_PROTOCOL);
    const c = await open();
    await c.send({ type: "connection_init", payload: {} });
    assert.deepEqual(c.socket.json(), [{ type: "connection_ack" }, { type: "ka" }]);
    await c.send({ type: "start", id: "1", payload: { query: "subscription { posts }" } });
    node.broadcast({
      stream: "posts",
      dataJson: JSON.stringify({ result: { data: { posts: 1 } }, more: true }),
    });
    assert.deepEqual(c.socket.json().at(-1), { id: "1", type: "data", payload: { data: { posts: 1 } } });
    await c.send({ type: "stop", id: "1" });
    assert.deepEqual(c.socket.json().at(-1), { id: "1", type: "complete" });
  });

  it("answers protocol errors and keeps the connection: not JSON, unknown type, start before init", async () => {
    const { open } = setup(LEGACY_WS_PROTOCOL);
    const c = await open();
    await c.send({ type: "start", id: "1", payload: { query: "{a}" } });
    assert.deepEqual(c.socket.json().at(-1), {
      id: "1",
      type: "error",
      payload: { message: "connection_init is required first" },
    });
    await c.send("garbage");
    assert.equal(c.socket.json().at(-1)?.type, "connection_error");
    await c.send({ type: "connection_init" });
    await c.send({ type: "subscribe", id: "1" });
    assert.deepEqual(c.socket.json().at(-1), {
      type: "error",
      payload: { message: "Invalid message type!" },
    });
    assert.equal(c.socket.closed, undefined);
  });

  it("a repeated operation id restarts the operation; connection_terminate closes normally", async () => {
    const { calls, open } = setup(LEGACY_WS_PROTOCOL);
    const c = await open();
    await c.send({ type: "connection_init" });
    await c.send({ type: "start", id: "r", payload: { query: "subscription { s }" } });
    await c.send({ type: "start", id: "r", payload: { query: "subscription { s }" } });
    assert.deepEqual(
      calls.map((x) => x.kind),
      ["connect", "subscribe", "perform", "unsubscribe", "subscribe", "perform"],
    );
    await c.send({ type: "connection_terminate" });
    assert.equal(c.socket.closed?.code, 1000);
  });

  it("a refused connection_init is a connection_error", async () => {
    const { open } = setup(LEGACY_WS_PROTOCOL, { refuse: true });
    const c = await open();
    await c.send({ type: "connection_init" });
    assert.deepEqual(c.socket.json().at(-1), {
      type: "connection_error",
      payload: { message: "unauthorized" },
    });
  });
});
