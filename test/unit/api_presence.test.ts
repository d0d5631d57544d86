// GET <api_path>/presence/<stream>/users against the memory broker and the pass-through one.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createPresenceHandler } from "../../src/api/presence.ts";
import { MemoryBroker } from "../../src/broker/memory.ts";
import { NoBroker } from "../../src/broker/none.ts";
import { LocalPubSub } from "../../src/pubsub/local.ts";
import { silentLogger } from "../support/fake_node.ts";

const pubsub = () => new LocalPubSub({ broadcast() {}, executeCommand() {} });
const memory = () =>
  new MemoryBroker({
    pubsub: pubsub(),
    historyLimit: 10,
    historyTtlSec: 60,
    sessionsTtlSec: 60,
    presenceTtlSec: 15,
    maxStreams: 10,
    maxSessions: 10,
  });

const get = (handler: (r: Request) => Promise<Response>, path: string, init: RequestInit = {}) =>
  handler(new Request(`http://localhost${path}`, init));

describe("REST API presence endpoint", () => {
  it("lists a stream's records, with the API key, the stream URL-encoded", async () => {
    const broker = memory();
    await broker.presenceAdd("room/1", "s1", "u1", { name: "Ann" });
    await broker.presenceAdd("room/1", "s2", "u1", { name: "Ann" });
    await broker.presenceAdd("room/1", "s3", "u2", undefined);
    const handler = createPresenceHandler(broker, "key", silentLogger);
    const auth = { headers: { authorization: "Bearer key" } };
    const res = await get(handler, "/api/presence/room%2F1/users", auth);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "application/json");
    const body = (await res.json()) as { type: string; total: number; records: { id: string }[] };
    assert.equal(body.type, "info");
    assert.equal(body.total, 2);
    assert.deepEqual(body.records.map((r) => r.id).sort(), ["u1", "u2"]);
    const empty = await get(handler, "/api/presence/nobody/users", auth);
    assert.deepEqual(await empty.json(), { type: "info", total: 0 });
  });

  it("answers 401 without the key, 422 to other methods, 404 to other paths, 501 without presence", async () => {
    const handler = createPresenceHandler(memory(), "key", silentLogger);
    const auth = { headers: { authorization: "Bearer key" } };
    assert.equal((await get(handler, "/api/presence/a/users")).status, 401);
    assert.equal(
      (await get(handler, "/api/presence/a/users", { headers: { authorization: "Bearer nope" } })).status,
      401,
    );
    assert.equal((await get(handler, "/api/presence/a/users", { ...auth, method: "POST" })).status, 422);
    assert.equal((await get(handler, "/api/presence/a/b/users", auth)).status, 404);
    assert.equal(
      (await get(handler, "/api/presence/%E0%A4%A/users", auth)).status,
      404,
      "a malformed escape",
    );
    const none = createPresenceHandler(new NoBroker(pubsub()), "", silentLogger);
    assert.equal((await get(none, "/api/presence/a/users")).status, 501);
  });
});
