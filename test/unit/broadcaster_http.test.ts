// The Broadcaster contract on the HTTP broadcaster, publishing through its route handler, plus what
// only HTTP has: statuses and the broadcast key.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Broadcaster } from "../../src/broadcast/broadcaster.ts";
import { HttpBroadcaster, secureEquals } from "../../src/broadcast/http.ts";
import { Logger } from "../../src/log/logger.ts";
import { broadcasterContract, RecordingHandler } from "./contracts/broadcaster_contract.ts";

const silent = new Logger("error", "text", {}, { write() {} });
const KEY = "s3cr3t";

function post(body: string, headers: Record<string, string> = {}, method = "POST"): Request {
  return new Request("http://localhost:8090/_broadcast", {
    method,
    headers: { "content-type": "application/json", ...headers },
    body: method === "GET" || method === "HEAD" ? undefined : body,
  });
}

broadcasterContract("http", async (handler) => {
  const broadcaster = new HttpBroadcaster(handler, KEY, silent);
  return {
    broadcaster,
    fanout: false,
    async publish(payload) {
      // The status is the route's business (tested below); the suite looks at what was delivered.
      await broadcaster.fetch(post(payload, { authorization: `Bearer ${KEY}` }));
    },
    // A request is handled before its response resolves: nothing is in flight in between.
    async ready() {},
    async settle() {},
    async close() {},
  };
});

describe("HTTP broadcaster statuses", () => {
  const body = JSON.stringify({ stream: "s", data: "1" });

  it("accepts a publication with the right key: 201", async () => {
    const handler = new RecordingHandler();
    const b = new HttpBroadcaster(handler, KEY, silent);
    const res = await b.fetch(post(body, { authorization: `Bearer ${KEY}` }));
    assert.equal(res.status, 201);
    assert.equal(handler.calls.length, 1);
  });

  it("rejects a missing or wrong key with 401 and delivers nothing", async () => {
    const handler = new RecordingHandler();
    const b = new HttpBroadcaster(handler, KEY, silent);
    assert.equal((await b.fetch(post(body))).status, 401);
    assert.equal((await b.fetch(post(body, { authorization: "Bearer nope" }))).status, 401);
    assert.equal((await b.fetch(post(body, { authorization: KEY }))).status, 401, "Bearer prefix required");
    assert.deepEqual(handler.calls, []);
  });

  it("compares the whole header: a prefix, an extension or another spelling of the key is refused", async () => {
    const handler = new RecordingHandler();
    const b = new HttpBroadcaster(handler, KEY, silent);
    for (const auth of [
      `Bearer ${KEY.slice(0, -1)}`,
      `Bearer ${KEY}x`,
      `Bearer ${KEY.toUpperCase()}`,
      `bearer ${KEY}`,
      `Bearer  ${KEY}`,
      `Basic ${KEY}`,
      "Bearer",
    ]) {
      assert.equal((await b.fetch(post(body, { authorization: auth }))).status, 401, auth);
    }
    assert.deepEqual(handler.calls, []);
    // the header name is case-insensitive, as HTTP has it
    assert.equal((await b.fetch(post(body, { Authorization: `Bearer ${KEY}` }))).status, 201);
  });

  it("accepts any request when no key is configured", async () => {
    const handler = new RecordingHandler();
    const b = new HttpBroadcaster(handler, "", silent);
    assert.equal((await b.fetch(post(body))).status, 201);
    assert.equal(handler.calls.length, 1);
  });

  it("answers 422 to a method other than POST, before checking the key", async () => {
    const handler = new RecordingHandler();
    const b = new HttpBroadcaster(handler, KEY, silent);
    assert.equal((await b.fetch(post("", {}, "GET"))).status, 422);
    assert.equal((await b.fetch(post(body, { authorization: `Bearer ${KEY}` }, "PUT"))).status, 422);
    assert.deepEqual(handler.calls, []);
  });

  it("answers 422 with the reason to a body that does not parse, counted as invalid", async () => {
    const handler = new RecordingHandler();
    const b = new HttpBroadcaster(handler, KEY, silent);
    const res = await b.fetch(post("[]", { authorization: `Bearer ${KEY}` }));
    assert.equal(res.status, 422);
    assert.equal(await res.text(), "batch is empty\n");
    const bad = await b.fetch(post('{"stream":"", "data":"x"}', { authorization: `Bearer ${KEY}` }));
    assert.equal(bad.status, 422);
    assert.match(await bad.text(), /"stream" must be a non-empty string/);
    assert.deepEqual(handler.calls, [{ kind: "invalid" }, { kind: "invalid" }]);
  });

  it("answers 503 once shut down, and accepts again after a new start", async () => {
    const handler = new RecordingHandler();
    const b = new HttpBroadcaster(handler, KEY, silent);
    const service: Broadcaster = b;
    await service.start(() => {});
    await service.shutdown(AbortSignal.timeout(1000));
    assert.equal((await b.fetch(post(body, { authorization: `Bearer ${KEY}` }))).status, 503);
    assert.deepEqual(handler.calls, []);
    await service.start(() => {});
    assert.equal((await b.fetch(post(body, { authorization: `Bearer ${KEY}` }))).status, 201);
    assert.equal(handler.calls.length, 1);
  });
});

describe("secureEquals (broadcast and API keys)", () => {
  it("is true only for identical strings, whatever their lengths", () => {
    assert.equal(secureEquals("Bearer k", "Bearer k"), true);
    assert.equal(secureEquals("", ""), true);
    assert.equal(secureEquals("Bearer k", "Bearer j"), false, "same length");
    assert.equal(secureEquals("Bearer k", "Bearer kk"), false, "prefix");
    assert.equal(secureEquals("Bearer kk", "Bearer k"), false, "extension");
    assert.equal(secureEquals("", "Bearer k"), false, "empty");
    assert.equal(secureEquals("Bearer k", "bearer k"), false, "case");
    assert.equal(secureEquals("ключ", "ключ"), true, "non-ASCII");
    assert.equal(secureEquals("ключ", "ключи"), false);
  });
});
