import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { API_DISABLED_LINE, apiStartupLines, createApiApp } from "../../src/api/index.ts";
import { createPublishHandler } from "../../src/api/publish.ts";
import { PublicIdentityController } from "../../src/identity/public.ts";
import { NullController } from "../../src/node/null_controller.ts";
import { ChannelRouter } from "../../src/node/router.ts";
import { StreamsController } from "../../src/streams/controller.ts";
import { localHandler, makeNode, open, silentLogger } from "../support/fake_node.ts";

const SECRET = "api-secret";
const ID = JSON.stringify({ channel: "$pubsub", stream_name: "chat/1" });
const API = { enabled: true, host: "", port: 8080, path: "/api", secret: SECRET, cors: false };

async function setup(api = API) {
  const router = new ChannelRouter(new NullController());
  router.route("$pubsub", new StreamsController({ publicStreams: true }));
  const { node, metrics } = makeNode(new PublicIdentityController(router));
  const clients = [];
  for (const sid of ["a", "b"]) {
    const c = await open(node, sid);
    await c.send({ command: "subscribe", identifier: ID });
    c.socket.frames.length = 0;
    clients.push(c);
  }
  const app = createApiApp(localHandler(node), node["broker"], api, silentLogger);
  const call = (init: RequestInit & { auth?: string }, path = "/api/publish") => {
    const headers = new Headers(init.headers);
    if (init.auth !== undefined) headers.set("authorization", init.auth);
    return app.fetch(new Request(`http://localhost${path}`, { ...init, headers }));
  };
  return { node, metrics, a: clients[0]!, b: clients[1]!, call };
}

const post = (body: unknown, auth = `Bearer ${SECRET}`) => ({
  method: "POST",
  auth,
  body: typeof body === "string" ? body : JSON.stringify(body),
  headers: { "content-type": "application/json" },
});

describe("POST /api/publish", () => {
  it("publishes one message with the bearer key (201)", async () => {
    const { call, a, b, metrics } = await setup();
    const res = await call(post({ stream: "chat/1", data: JSON.stringify({ message: "Hello" }) }));
    assert.equal(res.status, 201);
    for (const c of [a, b])
      assert.deepEqual(c.socket.json(), [{ identifier: ID, message: { message: "Hello" } }]);
    assert.equal(metrics.counterValue("publications_total"), 1);
  });

  it("publishes a batch in order and honours meta.exclude_socket", async () => {
    const { call, a, b } = await setup();
    const res = await call(
      post([
        { stream: "chat/1", data: '"first"', meta: { exclude_socket: "a" } },
        { stream: "chat/2", data: '"elsewhere"' },
        { stream: "chat/1", data: '"second"' },
      ]),
    );
    assert.equal(res.status, 201);
    assert.deepEqual(
      a.socket.json().map((m) => m.message),
      ["second"],
    );
    assert.deepEqual(
      b.socket.json().map((m) => m.message),
      ["first", "second"],
    );
  });

  it("answers 401 for a missing, wrong or non-Bearer key and applies nothing", async () => {
    const { call, a } = await setup();
    const body = { stream: "chat/1", data: '"x"' };
    for (const auth of [
      "",
      "Bearer wrong",
      `bearer ${SECRET}`,
      `Basic ${SECRET}`,
      SECRET,
      `Bearer  ${SECRET}`,
    ]) {
      assert.equal((await call(post(body, auth))).status, 401, auth);
    }
    assert.equal((await call({ method: "POST", body: JSON.stringify(body) })).status, 401, "no header");
    assert.deepEqual(a.socket.frames, []);
  });

  it("answers 422 for other methods and malformed bodies, counting the failures", async () => {
    const { call, a, metrics } = await setup();
    assert.equal((await call({ method: "GET", auth: `Bearer ${SECRET}` })).status, 422);
    assert.equal((await call({ method: "PUT", auth: `Bearer ${SECRET}`, body: "{}" })).status, 422);
    assert.equal((await call({ method: "OPTIONS" })).status, 422, "no CORS: no preflight either");
    for (const body of [
      "{nope",
      "[]",
      '{"data":"x"}',
      '[{"stream":"chat/1","data":"\\"ok\\""},{"data":1}]',
    ]) {
      const res = await call(post(body));
      assert.equal(res.status, 422, body);
      assert.ok((await res.text()).length > 0, "a one-line reason");
    }
    assert.equal(metrics.counterValue("failed_broadcast_msg_total"), 4);
    assert.deepEqual(a.socket.frames, [], "nothing of a bad batch is applied");
  });

  it("is served only at <api_path>/publish", async () => {
    const { call } = await setup({ ...API, path: "/custom" });
    assert.equal((await call(post({ stream: "chat/1", data: "1" }), "/custom/publish")).status, 201);
    assert.equal((await call(post({ stream: "chat/1", data: "1" }), "/api/publish")).status, 404);
  });

  it("needs no key when none is configured (public mode or a dedicated port)", async () => {
    const { call, a } = await setup({ ...API, secret: "" });
    assert.equal((await call(post({ stream: "chat/1", data: "7" }, ""))).status, 201);
    assert.deepEqual(a.socket.json(), [{ identifier: ID, message: 7 }]);
  });

  it("answers CORS preflights and adds CORS headers when api.cors_headers is on", async () => {
    const { call } = await setup({ ...API, cors: true });
    const pre = await call({ method: "OPTIONS", headers: { origin: "https://app.example" } });
    assert.equal(pre.status, 200);
    assert.equal(pre.headers.get("access-control-allow-origin"), "*");
    assert.equal(pre.headers.get("access-control-allow-methods"), "POST, OPTIONS");
    assert.match(pre.headers.get("access-control-allow-headers") ?? "", /Authorization/);
    const res = await call(post({ stream: "chat/1", data: "1" }, "Bearer wrong"));
    assert.equal(res.status, 401);
    assert.equal(res.headers.get("access-control-allow-origin"), "*");
  });

  it("answers 501 when the publication cannot be handled", async () => {
    const { node } = await setup();
    node.broadcast = () => {
      throw new Error("broker down");
    };
    const handler = createPublishHandler(localHandler(node), { secret: "", cors: false }, silentLogger);
    const res = await handler(
      new Request("http://localhost/api/publish", { method: "POST", body: '{"stream":"s","data":"1"}' }),
    );
    assert.equal(res.status, 501);
  });

  it("announces itself like anycable-go", () => {
    assert.deepEqual(apiStartupLines(API, "http://localhost:8080"), [
      "Handle API requests at http://localhost:8080/api (authorization required)",
    ]);
    assert.deepEqual(apiStartupLines({ ...API, secret: "", cors: true }, "http://h:1"), [
      "Handle API requests at http://h:1/api (no authorization, CORS enabled)",
      "API server is running without authentication",
    ]);
    assert.match(API_DISABLED_LINE, /not served.*unprotected/);
  });
});
