import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { PublicIdentityController } from "../../src/identity/public.ts";
import type { ChannelContext, CommandResult, Controller } from "../../src/node/controller.ts";
import { NullController } from "../../src/node/null_controller.ts";
import { ChannelRouter } from "../../src/node/router.ts";
import { StreamsController } from "../../src/streams/controller.ts";
import { type Client, makeNode, open } from "../support/fake_node.ts";
import { signStream } from "../support/signing.ts";

const KEY = "streams-key";
const PUBLIC_ID = JSON.stringify({ channel: "$pubsub", stream_name: "room" });
const SIGNED_ID = JSON.stringify({ channel: "$pubsub", signed_stream_name: signStream("room", KEY) });
const RPC_ID = JSON.stringify({ channel: "ChatChannel", id: 1 });

/** An application channel that marks its stream for whispers, as anycable-rails does. */
class WhisperingApp extends NullController {
  override async subscribe({ identifier }: ChannelContext): Promise<CommandResult> {
    return {
      status: "success",
      transmissions: [JSON.stringify({ type: "confirm_subscription", identifier })],
      streams: ["chat/1"],
      istate: { $w: "chat/1" },
    };
  }
}

function setup(whisper: boolean, app: Controller = new NullController()) {
  const router = new ChannelRouter(app);
  router.route("$pubsub", new StreamsController({ secret: KEY, publicStreams: true, whisper }));
  return makeNode(new PublicIdentityController(router));
}

async function subscribed(node: ReturnType<typeof setup>["node"], identifier: string, n = 3) {
  const clients: Client[] = [];
  for (let i = 0; i < n; i++) {
    const c = await open(node, `c${i}`);
    await c.send({ command: "subscribe", identifier });
    assert.equal(c.socket.json().at(-1)?.type, "confirm_subscription");
    c.socket.frames.length = 0;
    clients.push(c);
  }
  return clients;
}

describe("whisper", () => {
  it("reaches every other subscriber of a public stream but not the sender", async () => {
    const { node, metrics } = setup(false);
    const [a, b, c] = await subscribed(node, PUBLIC_ID);
    await a!.send({ command: "whisper", identifier: PUBLIC_ID, data: { event: "typing", name: "a" } });
    const expected = { identifier: PUBLIC_ID, message: { event: "typing", name: "a" } };
    assert.deepEqual(b!.socket.json(), [expected]);
    assert.deepEqual(c!.socket.json(), [expected]);
    assert.deepEqual(a!.socket.frames, []);
    assert.equal(metrics.counterValue("broadcast_msg_total"), 1);
    assert.equal(metrics.counterValue("failed_client_msg_total"), 0);
  });

  it("passes any JSON data through as is", async () => {
    const { node } = setup(false);
    const [a, b] = await subscribed(node, PUBLIC_ID, 2);
    for (const data of ["text", 42, [1, { x: null }], true]) {
      await a!.send({ command: "whisper", identifier: PUBLIC_ID, data });
      assert.deepEqual(b!.socket.json().at(-1), { identifier: PUBLIC_ID, message: data });
    }
  });

  it("is dropped on signed streams unless --streams_whisper is on", async () => {
    const off = setup(false);
    const [a, b] = await subscribed(off.node, SIGNED_ID, 2);
    await a!.send({ command: "whisper", identifier: SIGNED_ID, data: { x: 1 } });
    assert.deepEqual(b!.socket.frames, []);
    assert.equal(off.metrics.counterValue("broadcast_msg_total"), 0);

    const on = setup(true);
    const [c, d] = await subscribed(on.node, SIGNED_ID, 2);
    await c!.send({ command: "whisper", identifier: SIGNED_ID, data: { x: 1 } });
    assert.deepEqual(d!.socket.json(), [{ identifier: SIGNED_ID, message: { x: 1 } }]);
    assert.deepEqual(c!.socket.frames, []);
  });

  it("works on application channels whose istate names a whisper stream", async () => {
    const { node } = setup(false, new WhisperingApp());
    const [a, b] = await subscribed(node, RPC_ID, 2);
    await a!.send({ command: "whisper", identifier: RPC_ID, data: { typing: true } });
    assert.deepEqual(b!.socket.json(), [{ identifier: RPC_ID, message: { typing: true } }]);
    assert.deepEqual(a!.socket.frames, []);
  });

  it("stops after unsubscribing and ignores unknown subscriptions", async () => {
    const { node } = setup(false);
    const [a, b] = await subscribed(node, PUBLIC_ID, 2);
    await a!.send({ command: "unsubscribe", identifier: PUBLIC_ID });
    await a!.send({ command: "whisper", identifier: PUBLIC_ID, data: "late" });
    await a!.send({ command: "whisper", identifier: "nope", data: "x" });
    assert.deepEqual(b!.socket.frames, []);
    assert.equal(a!.socket.closed, undefined);
  });
});
