// Two anycable-go behaviours README's "Behaviours kept from anycable-go" documents: after an
// undecodable frame the connection stays open but is no longer read, and a subscribe failing at
// the backend gets no reply, only a WARN line.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Logger } from "../../src/log/logger.ts";
import { Metrics } from "../../src/metrics/registry.ts";
import type { CommandResult, Controller } from "../../src/node/controller.ts";
import { makeNode, open } from "../support/fake_node.ts";

const ID = JSON.stringify({ channel: "RoomChannel", id: 1 });

function setup(subscribe: Controller["subscribe"]) {
  const controller: Controller = {
    authenticate: async ({ sid }) => ({
      status: "success",
      identifiers: sid,
      transmissions: [JSON.stringify({ type: "welcome", sid })],
    }),
    subscribe,
    unsubscribe: async () => null,
    perform: async () => null,
    disconnect: async () => {},
  };
  const lines: string[] = [];
  const metrics = new Metrics();
  const logger = new Logger("debug", "text", {}, { write: (l) => lines.push(l) });
  const { node } = makeNode(controller, "auto", metrics, logger);
  return { node, metrics, lines };
}

describe("behaviours kept from anycable-go", () => {
  it("answers nothing to a subscribe the backend fails, and logs it at WARN", async () => {
    const { node, metrics, lines } = setup(async () => {
      throw new Error("14 UNAVAILABLE: backend down");
    });
    const c = await open(node, "s1");
    await c.send({ command: "subscribe", identifier: ID });
    assert.deepEqual(c.socket.json(), [{ type: "welcome", sid: "s1" }], "no confirm, no reject");
    assert.equal(c.socket.closed, undefined);
    assert.equal(metrics.counterValue("failed_client_msg_total"), 1);
    const line = lines.find((l) => l.includes("failed to handle incoming message"));
    assert.ok(line, lines.join("\n"));
    assert.match(line, / WRN /);
    assert.match(line, /subscribe failed for .*backend down/);
  });

  it("sends nothing either when the application answers ERROR, even with transmissions", async () => {
    const { node, lines } = setup(
      async (): Promise<CommandResult> => ({
        status: "error",
        errorMsg: "boom",
        transmissions: [JSON.stringify({ type: "reject_subscription", identifier: ID })],
      }),
    );
    const c = await open(node, "s2");
    await c.send({ command: "subscribe", identifier: ID });
    assert.equal(c.socket.frames.length, 1);
    assert.ok(
      lines.some((l) => / WRN failed to handle incoming message .*boom/.test(l)),
      lines.join("\n"),
    );
  });

  it("keeps a connection open but stops reading it after an undecodable frame (DEBUG line)", async () => {
    let subscribes = 0;
    const { node, metrics, lines } = setup(async () => {
      subscribes++;
      return { status: "success", transmissions: [] };
    });
    const c = await open(node, "s3");
    node.message(c.session, "{not json", 9);
    await c.send({ command: "subscribe", identifier: ID });
    assert.equal(subscribes, 0, "input after the bad frame is not processed");
    assert.equal(metrics.counterValue("failed_client_msg_total"), 1);
    assert.equal(c.socket.closed, undefined);
    assert.ok(lines.some((l) => / DBG failed to decode client message, ignoring further input/.test(l)));
  });
});
