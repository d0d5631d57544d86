// Session ids from X-Request-ID: the header names the session only while no live session has that
// id; a second connection sending it gets a fresh id, and the log ties the request id to it.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { PublicIdentityController } from "../../src/identity/public.ts";
import { Logger } from "../../src/log/logger.ts";
import { Metrics } from "../../src/metrics/registry.ts";
import { NullController } from "../../src/node/null_controller.ts";
import { ChannelRouter } from "../../src/node/router.ts";
import { StreamsController } from "../../src/streams/controller.ts";
import { makeNode, open } from "../support/fake_node.ts";

const ID = JSON.stringify({ channel: "$pubsub", stream_name: "chat" });

function publicNode() {
  const router = new ChannelRouter(new NullController());
  router.route("$pubsub", new StreamsController({ publicStreams: true }));
  const lines: string[] = [];
  const logger = new Logger("info", "text", {}, { write: (l) => lines.push(l) });
  const { node } = makeNode(new PublicIdentityController(router), "auto", new Metrics(), logger);
  return { node, lines };
}

describe("session ids from X-Request-ID", () => {
  it("gives a second connection with the same X-Request-ID a fresh sid; the first keeps it", async () => {
    const { node, lines } = publicNode();
    const first = await open(node, "req-1");
    const second = await open(node, "req-1");
    assert.equal(first.session.sid, "req-1");
    assert.deepEqual(first.socket.json()[0], { type: "welcome", sid: "req-1" });
    assert.notEqual(second.session.sid, "req-1");
    assert.match(second.session.sid, /^[\w-]{21}$/);
    assert.deepEqual(second.socket.json()[0], { type: "welcome", sid: second.session.sid });
    assert.equal(node.sessions.get("req-1"), first.session);
    assert.equal(node.sessions.get(second.session.sid), second.session);
    assert.equal(node.size, 2);
    // the request id stays traceable: one INF line names both
    const line = lines.find((l) => l.includes("request_id=req-1"));
    assert.ok(line, `a log line with the request id: ${lines.join("\n")}`);
    assert.match(line, / INF /);
    assert.ok(line.includes(`sid=${second.session.sid}`), line);
  });

  it("keeps exclude_socket and remote disconnects aimed at the session that owns the id", async () => {
    const { node } = publicNode();
    const owner = await open(node, "req-2");
    const intruder = await open(node, "req-2");
    for (const c of [owner, intruder]) await c.send({ command: "subscribe", identifier: ID });
    // the owner whispers / publishes excluding itself: the intruder is not silenced
    node.broadcast({ stream: "chat", dataJson: '"hi"', excludeSocket: "req-2" });
    assert.equal(owner.socket.json().at(-1)?.type, "confirm_subscription");
    assert.equal(intruder.socket.json().at(-1)?.message, "hi");
    // public identifiers are {"sid":...}: disconnecting "req-2" closes the owner only
    node.remoteDisconnect(JSON.stringify({ sid: "req-2" }), false);
    assert.deepEqual(owner.socket.closed, { code: 1000, reason: "Closed remotely" });
    assert.equal(intruder.socket.closed, undefined);
  });

  it("uses the X-Request-ID again once its session is gone, and unregisters each session by its own id", async () => {
    const { node, lines } = publicNode();
    const first = await open(node, "req-3");
    const second = await open(node, "req-3");
    node.closed(first.session);
    assert.equal(node.size, 1);
    const third = await open(node, "req-3");
    assert.equal(third.session.sid, "req-3");
    // closing the session that got a fresh id leaves the new owner of "req-3" registered
    node.closed(second.session);
    assert.equal(node.sessions.get("req-3"), third.session);
    assert.equal(node.size, 1);
    assert.equal(lines.filter((l) => l.includes("request_id=req-3")).length, 1);
  });
});
