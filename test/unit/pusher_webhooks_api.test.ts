// Pusher webhooks (batching, signing, retries, the bounded queue) with an injected fetch, and the
// Pusher HTTP API handler against the memory broker and a recording publication handler.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ParsedPublication } from "../../src/broadcast/publication.ts";
import { MemoryBroker } from "../../src/broker/memory.ts";
import { createPusherApi } from "../../src/protocols/pusher/api.ts";
import { Channels } from "../../src/protocols/pusher/channels.ts";
import { WEBHOOK_EVENTS } from "../../src/protocols/pusher/options.ts";
import { signRequest, webhookSignature } from "../../src/protocols/pusher/signatures.ts";
import { Webhooks } from "../../src/protocols/pusher/webhooks.ts";
import { LocalPubSub } from "../../src/pubsub/local.ts";
import { silentLogger } from "../support/fake_node.ts";
import { waitFor } from "../support/wait.ts";

interface Sent {
  url: string;
  headers: Record<string, string>;
  body: string;
}

function fakeFetch(statuses: number[]) {
  const sent: Sent[] = [];
  const f = (async (url: string | URL | Request, init?: RequestInit) => {
    sent.push({
      url: String(url),
      headers: init?.headers as Record<string, string>,
      body: String(init?.body),
    });
    const status = statuses.shift() ?? 200;
    if (status === 0) throw new Error("connection refused");
    return new Response(null, { status });
  }) as typeof fetch;
  return { f, sent };
}

const hooks = (f: typeof fetch, over: Partial<ConstructorParameters<typeof Webhooks>[0]> = {}) =>
  new Webhooks({
    url: "http://hooks/x",
    appKey: "key",
    secret: "sec",
    events: WEBHOOK_EVENTS,
    logger: silentLogger,
    batchMs: 5,
    backoffMs: () => 5,
    now: () => 1234,
    fetch: f,
    ...over,
  });

describe("pusher webhooks", () => {
  it("batches events into one signed POST in order", async () => {
    const { f, sent } = fakeFetch([]);
    const w = hooks(f);
    w.emit({ name: "channel_occupied", channel: "a" });
    w.emit({ name: "member_added", channel: "presence-a", user_id: "1" });
    await waitFor(() => sent.length === 1, "one request");
    const req = sent[0]!;
    assert.equal(req.url, "http://hooks/x");
    assert.equal(req.headers["x-pusher-key"], "key");
    assert.equal(req.headers["content-type"], "application/json");
    assert.equal(req.headers["x-pusher-signature"], webhookSignature("sec", req.body));
    assert.deepEqual(JSON.parse(req.body), {
      time_ms: 1234,
      events: [
        { name: "channel_occupied", channel: "a" },
        { name: "member_added", channel: "presence-a", user_id: "1" },
      ],
    });
    await w.shutdown(AbortSignal.timeout(1000));
  });

  it("retries a failed batch (5xx, network errors) with the same body, then goes on", async () => {
    const { f, sent } = fakeFetch([500, 0, 200, 200]);
    const w = hooks(f);
    w.emit({ name: "channel_occupied", channel: "a" });
    await waitFor(() => sent.length === 3, "three attempts");
    assert.equal(sent[0]!.body, sent[2]!.body);
    w.emit({ name: "channel_vacated", channel: "a" });
    await waitFor(() => sent.length === 4, "next batch");
    assert.equal(JSON.parse(sent[3]!.body).events[0].name, "channel_vacated");
    await w.shutdown(AbortSignal.timeout(1000));
  });

  it("drops a batch after its attempts, sends only wanted events, and bounds the queue", async () => {
    const { f, sent } = fakeFetch([500, 500, 200]);
    const w = hooks(f, { attempts: 2, events: ["channel_vacated"], maxQueued: 2, batchMs: 20 });
    w.emit({ name: "channel_occupied", channel: "ignored" });
    for (const c of ["a", "b", "c"]) w.emit({ name: "channel_vacated", channel: c });
    await waitFor(() => sent.length === 2, "two attempts");
    assert.deepEqual(
      JSON.parse(sent[0]!.body).events.map((e: { channel: string }) => e.channel),
      ["b", "c"],
    );
    w.emit({ name: "channel_vacated", channel: "d" });
    await waitFor(() => sent.length === 3, "the next batch after the dropped one");
    assert.equal(JSON.parse(sent[2]!.body).events[0].channel, "d");
    await w.shutdown(AbortSignal.timeout(1000));
    w.emit({ name: "channel_vacated", channel: "after" });
    assert.ok(!w.wants("channel_vacated"));
  });

  it("shutdown sends what is queued once and ends a backoff wait at the deadline", async () => {
    const { f, sent } = fakeFetch([]);
    const w = hooks(f, { batchMs: 60_000 });
    w.emit({ name: "channel_occupied", channel: "late" });
    await w.shutdown(AbortSignal.timeout(1000));
    assert.equal(sent.length, 1);
    const failing = fakeFetch(Array(100).fill(500));
    const slow = hooks(failing.f, { backoffMs: () => 60_000 });
    slow.emit({ name: "channel_occupied", channel: "x" });
    await waitFor(() => failing.sent.length === 1, "first attempt");
    const started = Date.now();
    await slow.shutdown(AbortSignal.timeout(100));
    assert.ok(Date.now() - started < 5_000);
  });
});

describe("pusher HTTP API handler", () => {
  const broker = () =>
    new MemoryBroker({
      pubsub: new LocalPubSub({ broadcast() {}, executeCommand() {} }),
      historyLimit: 10,
      historyTtlSec: 60,
      sessionsTtlSec: 60,
      presenceTtlSec: 15,
      maxStreams: 10,
      maxSessions: 10,
    });
  const setup = () => {
    const b = broker();
    const got: ParsedPublication[] = [];
    let invalid = 0;
    const handler = {
      handle: (p: ParsedPublication) => got.push(p),
      handleInvalid: () => invalid++,
    };
    const channels = new Channels(b, undefined, silentLogger);
    const api = createPusherApi(
      handler,
      b,
      channels,
      { appId: "1", appKey: "k", secret: "s", now: () => 1000 },
      silentLogger,
    );
    const call = (method: string, path: string, body = "", params: Record<string, string> = {}) => {
      const q = signRequest("k", "s", method, path, params, body, 1000);
      return api(new Request(`http://x${path}?${q}`, { method, body: method === "POST" ? body : undefined }));
    };
    return { b, got, call, invalid: () => invalid };
  };

  it("POST /events: one publication per channel, {event, data} as the message, socket_id excluded", async () => {
    const { got, call } = setup();
    const body = JSON.stringify({ name: "e", data: '{"a":1}', channels: ["x", "y"], socket_id: "1.2" });
    const res = await call("POST", "/apps/1/events", body);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), {});
    assert.deepEqual(got, [
      {
        kind: "broadcast",
        publications: [
          { stream: "x", dataJson: '{"event":"e","data":"{\\"a\\":1}"}', excludeSocket: "1.2" },
          { stream: "y", dataJson: '{"event":"e","data":"{\\"a\\":1}"}', excludeSocket: "1.2" },
        ],
      },
    ]);
  });

  it("POST /batch_events, and info in the answer", async () => {
    const { got, call, b } = setup();
    await b.presenceAdd("presence-p", "s1", "u1", undefined);
    const body = JSON.stringify({
      batch: [
        { name: "a", channel: "c1", data: "1" },
        { name: "b", channel: "presence-p", data: "2", info: "user_count" },
      ],
    });
    const res = await call("POST", "/apps/1/batch_events", body);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { batch: [{}, { user_count: 1 }] });
    assert.equal(got.length, 1);
    assert.equal((got[0] as { publications: unknown[] }).publications.length, 2);
  });

  it("refuses bad events with Pusher's and anycable-go's statuses", async () => {
    const { call, got, invalid } = setup();
    const cases: Array<[unknown, number]> = [
      [{ data: "x", channel: "a" }, 400],
      [{ name: "e", channel: "a" }, 400],
      [{ name: "e", data: { obj: 1 }, channel: "a" }, 400],
      [{ name: "e", data: "x" }, 400],
      [{ name: "e", data: "x", channels: [] }, 400],
      [{ name: "e", data: "x", channels: Array.from({ length: 101 }, (_, i) => `c${i}`) }, 400],
      [{ name: "e", data: "x", channel: "bad name" }, 400],
      [{ name: "e", data: "x", channels: ["private-encrypted-a", "b"] }, 400],
      [{ name: "e", data: "x", channel: "a", socket_id: "abc" }, 400],
      [{ name: "x".repeat(201), data: "x", channel: "a" }, 400],
      [{ name: "e", data: "x".repeat(10 * 1024 + 1), channel: "a" }, 413],
      [[1, 2], 400],
    ];
    for (const [body, status] of cases) {
      const res = await call("POST", "/apps/1/events", JSON.stringify(body));
      assert.equal(res.status, status, JSON.stringify(body).slice(0, 100));
    }
    assert.equal((await call("POST", "/apps/1/events", "{nope")).status, 422);
    assert.equal(invalid(), 1);
    const tooMany = { batch: Array.from({ length: 11 }, () => ({ name: "e", data: "x", channel: "a" })) };
    assert.equal((await call("POST", "/apps/1/batch_events", JSON.stringify(tooMany))).status, 400);
    assert.equal((await call("POST", "/apps/1/batch_events", "{}")).status, 400);
    assert.equal(got.length, 0);
  });

  it("GET users / channel; terminate_connections is a remote disconnect of the user's identifiers", async () => {
    const { call, b, got } = setup();
    await b.presenceAdd("presence-room", "s1", "u1", { n: 1 });
    await b.presenceAdd("presence-room", "s2", "u2", undefined);
    const users = await call("GET", "/apps/1/channels/presence-room/users");
    assert.deepEqual(await users.json(), { users: [{ id: "u1" }, { id: "u2" }] });
    assert.equal((await call("GET", "/apps/1/channels/public/users")).status, 400);
    const info = await call("GET", "/apps/1/channels/presence-room", "", { info: "user_count" });
    assert.deepEqual(await info.json(), { occupied: false, user_count: 2 });
    assert.equal((await call("GET", "/apps/1/channels/public", "", { info: "user_count" })).status, 400);
    assert.equal((await call("GET", "/apps/1/channels/a/b/c")).status, 404);
    const res = await call("POST", "/apps/1/users/u%2F1/terminate_connections", "{}");
    assert.equal(res.status, 200);
    assert.deepEqual(got, [
      {
        kind: "command",
        command: { command: "disconnect", identifier: '{"pusher_user":"u/1"}', reconnect: false },
      },
    ]);
  });

  it("401 for unsigned requests, 422 for other methods", async () => {
    const { b } = setup();
    const api = createPusherApi(
      { handle() {}, handleInvalid() {} },
      b,
      new Channels(b, undefined, silentLogger),
      { appId: "1", appKey: "k", secret: "s" },
      silentLogger,
    );
    assert.equal((await api(new Request("http://x/apps/1/channels"))).status, 401);
    assert.equal((await api(new Request("http://x/apps/1/events", { method: "DELETE" }))).status, 422);
  });
});
