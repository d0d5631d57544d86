// The Pusher adapter against the real server process, per runtime, driven by the real clients:
// pusher-js (Node build) with a small auth endpoint, the `pusher` server SDK for the HTTP API and
// signatures, laravel-echo on pusher-js, a raw `ws` client for the wire-level answers, and a
// webhook receiver that validates signatures with the SDK.
import { afterAll, beforeAll, describe, it } from "bun:test";
import assert from "node:assert/strict";
import Echo from "laravel-echo";
import type PusherJS from "pusher-js";
import { signRequest } from "../../src/protocols/pusher/signatures.ts";
import {
  APP,
  authEndpoint,
  connected,
  pusherClient,
  pusherSdk,
  recorder,
  webhookReceiver,
} from "../support/pusher_clients.ts";
import { e2eRuntimes, type ServerProcess, startServer } from "../support/server.ts";
import { waitFor } from "../support/wait.ts";
import { connect, type RawClient } from "../support/ws_client.ts";

const runtimes = e2eRuntimes(["bun", "deno"]);

type Frame = Record<string, unknown>;
const parsed = (v: unknown) => (typeof v === "string" ? (JSON.parse(v) as Frame) : (v as Frame));

for (const runtime of runtimes) {
  describe(`[${runtime}] Pusher: pusher-js, the pusher SDK, laravel-echo, webhooks`, () => {
    let server: ServerProcess;
    const sdk = pusherSdk(0);
    let api: ReturnType<typeof pusherSdk>;
    let auth: Awaited<ReturnType<typeof authEndpoint>>;
    let hooks: Awaited<ReturnType<typeof webhookReceiver>>;
    const clients: PusherJS[] = [];
    const raws: RawClient[] = [];
    let pusherUrl = "";

    const client = async (user = "1", name?: string) => {
      const c = pusherClient(server.port, { authUrl: auth.url, user, name });
      clients.push(c);
      await connected(c);
      return c;
    };
    /** A raw WebSocket on /app/<key>, past connection_established; returns it with its socket id. */
    const raw = async (headers?: Record<string, string>) => {
      const c = await connect(pusherUrl, [], headers);
      raws.push(c);
      const hello = await c.next(
        (m) => m.event === "pusher:connection_established",
        "connection_established",
      );
      return { c, socketId: String(parsed(hello.data).socket_id), hello };
    };
    const subscribed = async (ch: ReturnType<PusherJS["subscribe"]>) => {
      const r = recorder(ch);
      const ok = await waitFor(
        () =>
          r.events.find(
            (e) => e.event === "pusher:subscription_succeeded" || e.event === "pusher:subscription_error",
          ),
        `subscription to ${ch.name}`,
      );
      assert.equal(ok.event, "pusher:subscription_succeeded", JSON.stringify(ok));
      return r;
    };

    beforeAll(async () => {
      api = pusherSdk(0); // replaced once the port is known
      auth = await authEndpoint(sdk);
      hooks = await webhookReceiver(sdk);
      server = await startServer(runtime, {
        args: [
          "--norpc",
          `--pusher_app_id=${APP.appId}`,
          `--pusher_app_key=${APP.key}`,
          `--secret=${APP.secret}`,
          "--broker=memory",
          "--presence_ttl=1",
          "--broadcast_adapter=http",
          `--pusher_webhook_url=${hooks.url}`,
        ],
      });
      api = pusherSdk(server.port);
      pusherUrl = `ws://127.0.0.1:${server.port}/app/${APP.key}?protocol=7&client=js&version=8.6.0`;
    });
    afterAll(async () => {
      for (const c of clients) c.disconnect();
      for (const c of raws) c.close();
      await server?.stop();
      await auth?.close();
      await hooks?.close();
    });

    it("announces the WebSocket endpoint and the HTTP API (the secret falls back to --secret)", () => {
      const out = server.output();
      assert.match(
        out,
        new RegExp(
          `Handle Pusher WebSocket connections at http://127\\.0\\.0\\.1:${server.port}/app/app-key`,
        ),
      );
      assert.match(
        out,
        new RegExp(`Handle Pusher API requests at http://127\\.0\\.0\\.1:${server.port}/apps/4711/`),
      );
      assert.match(out, /Send Pusher webhooks to http:\/\/127\.0\.0\.1:\d+\/pusher\/webhooks/);
    });

    it("connection_established carries a socket id and activity_timeout 30; pusher:ping gets pusher:pong", async () => {
      const { c, socketId, hello } = await raw();
      assert.match(socketId, /^\d+\.\d+$/);
      assert.deepEqual(parsed(hello.data), { socket_id: socketId, activity_timeout: 30 });
      c.send({ event: "pusher:ping", data: {} });
      assert.deepEqual(await c.next((m) => m.event === "pusher:pong", "pong"), {
        event: "pusher:pong",
        data: {},
      });
      // an X-Request-ID in Pusher's format is the socket id (as anycable-go takes it)
      const own = await raw({ "x-request-id": "2025.123" });
      assert.equal(own.socketId, "2025.123");
      const other = await raw({ "x-request-id": "not-a-socket-id" });
      assert.match(other.socketId, /^\d+\.\d+$/);
      // no other path serves Pusher clients
      await assert.rejects(
        connect(`ws://127.0.0.1:${server.port}/app/wrong-key`, []),
        /unexpected response 404/,
      );
    });

    it("public channel: events triggered through the SDK reach pusher-js, on several channels at once", async () => {
      const c = await client();
      const a = await subscribed(c.subscribe("news"));
      const b = await subscribed(c.subscribe("sports"));
      const res = await api.trigger(["news", "sports"], "headline", { title: "Hello" });
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), {});
      assert.deepEqual((await a.next("headline")).data, { title: "Hello" });
      assert.deepEqual((await b.next("headline")).data, { title: "Hello" });
    });

    it("socket_id exclusion: the triggering client does not get its own event", async () => {
      const alice = await client();
      const bob = await client();
      const ra = await subscribed(alice.subscribe("room-x"));
      const rb = await subscribed(bob.subscribe("room-x"));
      await api.trigger("room-x", "moved", { n: 1 }, { socket_id: alice.connection.socket_id });
      await api.trigger("room-x", "marker", { n: 2 });
      assert.deepEqual((await rb.next("moved")).data, { n: 1 });
      await ra.next("marker");
      assert.ok(!ra.names().includes("moved"), JSON.stringify(ra.events));
    });

    it("private channel: subscribed through the auth endpoint; a signature for another socket is refused with 4009", async () => {
      const c = await client();
      const r = await subscribed(c.subscribe("private-orders"));
      await api.trigger("private-orders", "shipped", { id: 7 });
      assert.deepEqual((await r.next("shipped")).data, { id: 7 });

      const errors: unknown[] = [];
      c.connection.bind("error", (e: unknown) => errors.push(e));
      c.subscribe("private-forbidden");
      const err = await waitFor(() => errors[0], "pusher:error for a bad signature");
      assert.deepEqual((err as { data: unknown }).data, { message: "rejected", code: 4009 });

      // raw: no auth at all, and a tampered one
      const { c: w, socketId } = await raw();
      w.send({ event: "pusher:subscribe", data: { channel: "private-orders" } });
      assert.deepEqual((await w.next((m) => m.event === "pusher:error", "error")).data, {
        message: "rejected",
        code: 4009,
      });
      const good = sdk.authorizeChannel(socketId, "private-orders").auth;
      w.send({
        event: "pusher:subscribe",
        // the last hex digit changed (one that already was 0 would have stayed valid: 1 run in 16)
        data: { channel: "private-orders", auth: `${good.slice(0, -1)}${good.endsWith("0") ? "1" : "0"}` },
      });
      assert.equal(parsed((await w.next((m) => m.event === "pusher:error", "error")).data).code, 4009);
      w.send({ event: "pusher:subscribe", data: { channel: "private-orders", auth: good } });
      const ok = await w.next((m) => m.event === "pusher_internal:subscription_succeeded", "succeeded");
      assert.deepEqual(ok, {
        event: "pusher_internal:subscription_succeeded",
        data: "{}",
        channel: "private-orders",
      });
      // subscribing twice is an error, the subscription stays
      w.send({ event: "pusher:subscribe", data: { channel: "private-orders", auth: good } });
      assert.deepEqual((await w.next((m) => m.event === "pusher:error", "error")).data, {
        message: "Existing subscription to channel private-orders",
        code: null,
      });
    });

    it("presence: members, member_added / member_removed across clients (never one's own), GET users", async () => {
      const alice = await client("u-alice", "Alice");
      const pa = alice.subscribe("presence-lobby");
      const ra = await subscribed(pa);
      const members = ra.events[0]?.data as { count: number; me: { id: string; info: unknown } };
      assert.equal(members.count, 1);
      assert.deepEqual(members.me, { id: "u-alice", info: { name: "Alice" } });

      const bob = await client("u-bob", "Bob");
      const rb = await subscribed(bob.subscribe("presence-lobby"));
      const bobMembers = rb.events[0]?.data as { count: number; members: Record<string, unknown> };
      assert.equal(bobMembers.count, 2);
      assert.deepEqual(bobMembers.members, { "u-alice": { name: "Alice" }, "u-bob": { name: "Bob" } });
      assert.deepEqual((await ra.next("pusher:member_added")).data, { id: "u-bob", info: { name: "Bob" } });

      const users = await api.get({ path: "/channels/presence-lobby/users" });
      assert.equal(users.status, 200);
      const ids = ((await users.json()) as { users: { id: string }[] }).users.map((u) => u.id).sort();
      assert.deepEqual(ids, ["u-alice", "u-bob"]);
      const info = await api.get({
        path: "/channels/presence-lobby",
        params: { info: "user_count,subscription_count" },
      });
      assert.deepEqual(await info.json(), { occupied: true, user_count: 2, subscription_count: 2 });

      // an unsubscribe leaves at once; a disconnect after --presence_ttl (1 s)
      bob.unsubscribe("presence-lobby");
      assert.deepEqual((await ra.next("pusher:member_removed")).data, { id: "u-bob", info: { name: "Bob" } });
      const carol = await client("u-carol", "Carol");
      await subscribed(carol.subscribe("presence-lobby"));
      await waitFor(
        () => ra.events.filter((e) => e.event === "pusher:member_added").length === 2,
        "member_added carol",
      );
      carol.disconnect();
      await waitFor(
        () => ra.events.filter((e) => e.event === "pusher:member_removed").length === 2,
        `member_removed after carol's disconnect; got ${JSON.stringify(ra.events)}`,
      );
      assert.ok(
        !rb.events.some(
          (e) => e.event === "pusher:member_added" && (e.data as { id: string }).id === "u-bob",
        ),
      );

      const notPresence = await api.get({ path: "/channels/news/users" }).catch((e) => e);
      assert.equal(notPresence.status, 400);
    });

    it("client events go to the other members of a private channel; refused on a public one", async () => {
      const alice = await client();
      const bob = await client();
      const ca = alice.subscribe("private-chat");
      const ra = await subscribed(ca);
      const rb = await subscribed(bob.subscribe("private-chat"));
      assert.ok(ca.trigger("client-typing", { who: "alice" }));
      assert.deepEqual((await rb.next("client-typing")).data, { who: "alice" });
      await api.trigger("private-chat", "marker", {});
      await ra.next("marker");
      assert.ok(!ra.names().includes("client-typing"));

      const { c: w } = await raw();
      const listener = await client();
      const rl = await subscribed(listener.subscribe("lobby-public"));
      w.send({ event: "pusher:subscribe", data: { channel: "lobby-public" } });
      await w.next((m) => m.event === "pusher_internal:subscription_succeeded", "succeeded");
      w.send({ event: "client-shout", channel: "lobby-public", data: { loud: true } });
      assert.deepEqual((await w.next((m) => m.event === "pusher:error", "error")).data, {
        message: "Client event rejected - only supported on private and presence channels",
        code: null,
      });
      await api.trigger("lobby-public", "marker", {});
      await rl.next("marker");
      assert.ok(!rl.names().includes("client-shout"));
    });

    it("client events on presence channels carry the sender's user_id", async () => {
      const { c: w, socketId } = await raw();
      const member = { user_id: "42", user_info: { name: "Ann" } };
      const a = sdk.authorizeChannel(socketId, "presence-typing", member);
      w.send({ event: "pusher:subscribe", data: { channel: "presence-typing", ...a } });
      const ok = await w.next((m) => m.event === "pusher_internal:subscription_succeeded", "succeeded");
      assert.deepEqual(parsed(ok.data), {
        presence: { count: 1, ids: ["42"], hash: { "42": { name: "Ann" } } },
      });
      const other = await client("7");
      const r = await subscribed(other.subscribe("presence-typing"));
      w.send({ event: "client-typing", channel: "presence-typing", data: { on: true } });
      const got = await waitFor(
        () =>
          (other.channel("presence-typing") as unknown as { members: unknown }) &&
          r.events.find((e) => e.event === "client-typing"),
        "client-typing",
      );
      assert.deepEqual(got.data, { on: true });
      // the raw frame has the user_id
      const { c: w2, socketId: s2 } = await raw();
      w2.send({
        event: "pusher:subscribe",
        data: {
          channel: "presence-typing",
          ...sdk.authorizeChannel(s2, "presence-typing", { user_id: "43" }),
        },
      });
      await w2.next((m) => m.event === "pusher_internal:subscription_succeeded", "succeeded");
      w.send({ event: "client-typing", channel: "presence-typing", data: { on: false } });
      assert.deepEqual(await w2.next((m) => m.event === "client-typing", "client event"), {
        event: "client-typing",
        data: { on: false },
        channel: "presence-typing",
        user_id: "42",
      });
    });

    it("batch events, channel lists and channel info", async () => {
      const c = await client();
      const r1 = await subscribed(c.subscribe("batch-a"));
      const r2 = await subscribed(c.subscribe("private-batch-b"));
      const res = await api.triggerBatch([
        { channel: "batch-a", name: "one", data: { n: 1 } },
        { channel: "private-batch-b", name: "two", data: "plain text" },
      ]);
      assert.equal(res.status, 200);
      assert.deepEqual((await r1.next("one")).data, { n: 1 });
      assert.equal((await r2.next("two")).data, "plain text");

      const list = await api.get({ path: "/channels", params: { filter_by_prefix: "batch-" } });
      assert.deepEqual(await list.json(), { channels: { "batch-a": {} } });
      const counted = await api.get({
        path: "/channels",
        params: { filter_by_prefix: "batch-", info: "subscription_count" },
      });
      assert.deepEqual(await counted.json(), { channels: { "batch-a": { subscription_count: 1 } } });
      const one = await api.get({
        path: "/channels/private-batch-b",
        params: { info: "subscription_count" },
      });
      assert.deepEqual(await one.json(), { occupied: true, subscription_count: 1 });
      const empty = await api.get({ path: "/channels/nobody-here" });
      assert.deepEqual(await empty.json(), { occupied: false });
      const bad = await api.get({ path: "/channels", params: { info: "user_count" } }).catch((e) => e);
      assert.equal(bad.status, 400);
    });

    it("HTTP API refusals: bad signature / stale timestamp 401, oversized data 413, bad JSON 422", async () => {
      const wrong = pusherSdk(server.port, "not-the-secret");
      const err = await wrong.trigger("news", "x", {}).catch((e) => e);
      assert.equal(err.status, 401);
      const body = JSON.stringify({ name: "x", channel: "news", data: "{}" });
      const path = `/apps/${APP.appId}/events`;
      const post = (q: URLSearchParams, b = body) =>
        fetch(`${server.url}${path}?${q}`, {
          method: "POST",
          body: b,
          headers: { "content-type": "application/json" },
        });
      const now = Math.floor(Date.now() / 1000);
      assert.equal(
        (await post(signRequest(APP.key, APP.secret, "POST", path, {}, body, now - 700))).status,
        401,
      );
      assert.equal((await post(signRequest(APP.key, APP.secret, "POST", path, {}, body, now))).status, 200);
      assert.equal(
        (await post(signRequest("other-key", APP.secret, "POST", path, {}, body, now))).status,
        401,
      );
      const tampered = signRequest(APP.key, APP.secret, "POST", path, {}, body, now);
      assert.equal((await post(tampered, body.replace("news", "sports"))).status, 401);
      const big = JSON.stringify({ name: "x", channel: "news", data: "x".repeat(10 * 1024 + 1) });
      assert.equal(
        (await post(signRequest(APP.key, APP.secret, "POST", path, {}, big, now), big)).status,
        413,
      );
      const notJson = "{nope";
      assert.equal(
        (await post(signRequest(APP.key, APP.secret, "POST", path, {}, notJson, now), notJson)).status,
        422,
      );
      const put = await fetch(`${server.url}${path}`, { method: "PUT" });
      assert.equal(put.status, 422);
      const unknown = `/apps/${APP.appId}/nothing`;
      assert.equal(
        (
          await fetch(
            `${server.url}${unknown}?${signRequest(APP.key, APP.secret, "GET", unknown, {}, "", now)}`,
          )
        ).status,
        404,
      );
    });

    it("bad client input gets pusher:error and the connection goes on", async () => {
      const { c: w } = await raw();
      const errorsBefore = () => w.messages.filter((m) => (m as Frame).event === "pusher:error").length;
      for (const bad of [
        "{not json",
        "[]",
        '{"event":"pusher:unknown"}',
        '{"event":"pusher:subscribe","data":{}}',
      ]) {
        const n = errorsBefore();
        w.sendRaw(bad);
        await waitFor(() => errorsBefore() > n, `pusher:error for ${bad}`);
      }
      const last = w.messages.filter((m) => (m as Frame).event === "pusher:error").at(-1) as Frame;
      assert.equal(parsed(last.data).code, null);
      w.send({
        event: "pusher:subscribe",
        data: { channel: "private-x", auth: sdk.authorizeChannel("1.1", "private-x").auth },
      });
      await w.next((m) => m.event === "pusher:error" && parsed(m.data).code === 4009, "refusal");
      w.send({ event: "pusher:subscribe", data: { channel: "bad channel name" } });
      await w.next(
        (m) =>
          m.event === "pusher:error" && String(parsed(m.data).message).startsWith("Invalid channel name"),
        "invalid name",
      );
      // a client event over 10 KB on a private channel
      const { c: p, socketId } = await raw();
      p.send({
        event: "pusher:subscribe",
        data: { channel: "private-big", auth: sdk.authorizeChannel(socketId, "private-big").auth },
      });
      await p.next((m) => m.event === "pusher_internal:subscription_succeeded", "succeeded");
      p.send({ event: "client-big", channel: "private-big", data: "y".repeat(11_000) });
      assert.deepEqual((await p.next((m) => m.event === "pusher:error", "too big")).data, {
        message: "Client event rejected - data over 10 KB",
        code: null,
      });
      w.send({ event: "pusher:ping" });
      await w.next((m) => m.event === "pusher:pong", "pong after the errors");
      assert.equal(w.closeCode, undefined);
    });

    it("user sign-in: #server-to-user-<id> gets sendToUser events; terminate_connections ends them", async () => {
      const c = await client("user-77");
      const got: unknown[] = [];
      c.user.bind("notice", (d: unknown) => got.push(d));
      c.signin();
      await waitFor(
        () =>
          (c.user as unknown as { serverToUserChannel?: { subscribed: boolean } }).serverToUserChannel
            ?.subscribed,
        "server-to-user channel subscribed",
      );
      assert.equal((await api.sendToUser("user-77", "notice", { hi: 1 })).status, 200);
      assert.deepEqual(await waitFor(() => got[0], "sendToUser event"), { hi: 1 });

      // another socket may not subscribe to that user's channel
      const { c: w } = await raw();
      w.send({ event: "pusher:subscribe", data: { channel: "#server-to-user-user-77" } });
      assert.equal(parsed((await w.next((m) => m.event === "pusher:error", "refusal")).data).code, 4009);
      // a sign-in with a bad signature: 4009 and the socket is closed
      w.send({ event: "pusher:signin", data: { auth: `${APP.key}:00`, user_data: '{"id":"x"}' } });
      assert.equal(
        parsed((await w.next((m) => m.event === "pusher:error", "signin refusal")).data).code,
        4009,
      );
      assert.equal(await w.waitClosed(), 4009);

      const errors: unknown[] = [];
      c.connection.bind("error", (e: unknown) => errors.push(e));
      assert.equal((await api.terminateUserConnections("user-77")).status, 200);
      const e = await waitFor(() => errors[0], "terminated");
      assert.equal((e as { data: { code: number } }).data.code, 4009);
      await waitFor(() => c.connection.state !== "connected", "pusher-js disconnected");
    });

    it("encrypted channels: the server relays the SDK's ciphertext, pusher-js decrypts it", async () => {
      const c = await client();
      const r = await subscribed(c.subscribe("private-encrypted-vault"));
      await api.trigger("private-encrypted-vault", "secret", { code: 1234 });
      assert.deepEqual((await r.next("secret")).data, { code: 1234 });
      // a raw subscriber sees only ciphertext
      const { c: w, socketId } = await raw();
      const a = sdk.authorizeChannel(socketId, "private-encrypted-vault");
      w.send({ event: "pusher:subscribe", data: { channel: "private-encrypted-vault", auth: a.auth } });
      await w.next((m) => m.event === "pusher_internal:subscription_succeeded", "succeeded");
      await api.trigger("private-encrypted-vault", "secret", { code: 5678 });
      const frame = await w.next((m) => m.event === "secret", "ciphertext");
      const data = parsed(frame.data);
      assert.deepEqual(Object.keys(data).sort(), ["ciphertext", "nonce"]);
      assert.ok(!JSON.stringify(frame).includes("5678"));
      // client events are refused there (the server cannot read them)
      w.send({ event: "client-x", channel: "private-encrypted-vault", data: {} });
      assert.equal(parsed((await w.next((m) => m.event === "pusher:error", "refused")).data).code, null);
    });

    it("Pusher channels and Action Cable streams of the same name see the same publications", async () => {
      const c = await client();
      const r = await subscribed(c.subscribe("shared-stream"));
      const { createHmac } = await import("node:crypto");
      const key = createHmac("sha256", APP.secret).update("broadcast-cable").digest("hex");
      const res = await fetch(`${server.url}/_broadcast`, {
        method: "POST",
        headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
        body: JSON.stringify({
          stream: "shared-stream",
          data: JSON.stringify({ event: "from-rails", data: "hi" }),
        }),
      });
      assert.equal(res.status, 201);
      assert.equal((await r.next("from-rails")).data, "hi");
    });

    it("laravel-echo (broadcaster pusher): channel, private, presence (here/joining/leaving) and whispers", async () => {
      const echo = (user: string) => {
        const e = new Echo({
          broadcaster: "pusher",
          key: APP.key,
          client: pusherClient(server.port, { authUrl: auth.url, user, name: user }),
        });
        clients.push(e.connector.pusher as PusherJS);
        return e;
      };
      const a = echo("ea");
      const b = echo("eb");
      const shipped: unknown[] = [];
      a.channel("orders").listen(".OrderShipped", (e: unknown) => shipped.push(e));
      const typing: unknown[] = [];
      a.private("orders.1").listenForWhisper("typing", (e: unknown) => typing.push(e));
      const here: unknown[][] = [];
      const joining: unknown[] = [];
      const leaving: unknown[] = [];
      a.join("room.1")
        .here((users: unknown[]) => here.push(users))
        .joining((u: unknown) => joining.push(u))
        .leaving((u: unknown) => leaving.push(u));
      await waitFor(() => here.length === 1, "here()");
      assert.deepEqual(here[0], [{ name: "ea" }]);

      const bPrivate = b.private("orders.1");
      const bHere: unknown[][] = [];
      b.join("room.1").here((users: unknown[]) => bHere.push(users));
      await waitFor(() => bHere.length === 1, "b here()");
      assert.deepEqual(joining, [{ name: "eb" }]);
      await waitFor(
        () => (b.connector.pusher as PusherJS).channel("private-orders.1")?.subscribed,
        "b subscribed to private-orders.1",
      );
      bPrivate.whisper("typing", { user: "eb" });
      assert.deepEqual(await waitFor(() => typing[0], "whisper"), { user: "eb" });

      await waitFor(
        () => (a.connector.pusher as PusherJS).channel("orders")?.subscribed,
        "orders subscribed",
      );
      await api.trigger("orders", "OrderShipped", { id: 5 });
      assert.deepEqual(await waitFor(() => shipped[0], "OrderShipped"), { id: 5 });

      b.leave("room.1");
      assert.deepEqual(await waitFor(() => leaving[0], "leaving()"), { name: "eb" });
      a.disconnect();
      b.disconnect();
    });

    it("webhooks: occupied, member_added, client_event, member_removed, vacated, signed, retried after a 500", async () => {
      hooks.failFor("presence-hooks");
      const { c: w, socketId } = await raw();
      const member = { user_id: "hook-user" };
      w.send({
        event: "pusher:subscribe",
        data: { channel: "presence-hooks", ...sdk.authorizeChannel(socketId, "presence-hooks", member) },
      });
      await w.next((m) => m.event === "pusher_internal:subscription_succeeded", "succeeded");
      const occupied = await hooks.waitFor(
        (e) => e.name === "channel_occupied" && e.channel === "presence-hooks",
        "channel_occupied",
      );
      assert.deepEqual(occupied, { name: "channel_occupied", channel: "presence-hooks" });
      await hooks.waitFor(
        (e) => e.name === "member_added" && e.channel === "presence-hooks" && e.user_id === "hook-user",
        "member_added",
      );
      // the first attempt got a 500 and the same events came again
      const failed = hooks.calls.filter((c) => c.status === 500);
      assert.equal(failed.length, 1, JSON.stringify(hooks.calls));
      const retried = hooks.calls.find((c) => c.status === 200 && c.body.time_ms === failed[0]?.body.time_ms);
      assert.deepEqual(retried?.body, failed[0]?.body, "the retry carries the same body");

      w.send({ event: "client-ping", channel: "presence-hooks", data: { x: 1 } });
      const clientEvent = await hooks.waitFor(
        (e) => e.name === "client_event" && e.channel === "presence-hooks",
        "client_event",
      );
      assert.deepEqual(clientEvent, {
        name: "client_event",
        channel: "presence-hooks",
        event: "client-ping",
        data: '{"x":1}',
        socket_id: socketId,
        user_id: "hook-user",
      });
      w.send({ event: "pusher:unsubscribe", data: { channel: "presence-hooks" } });
      await hooks.waitFor(
        (e) => e.name === "member_removed" && e.channel === "presence-hooks",
        "member_removed",
      );
      await hooks.waitFor(
        (e) => e.name === "channel_vacated" && e.channel === "presence-hooks",
        "channel_vacated",
      );
      for (const call of hooks.calls) {
        assert.ok(call.valid, "every webhook is signed as the SDK checks it");
        assert.equal(call.key, APP.key);
        assert.equal(typeof call.body.time_ms, "number");
      }
    });
  });
}

for (const runtime of runtimes) {
  describe(`[${runtime}] Pusher: --pusher_api_port, no broker`, () => {
    let server: ServerProcess;
    let apiPort = 0;
    const sdk = pusherSdk(0);

    beforeAll(async () => {
      const { freePort } = await import("../support/ports.ts");
      apiPort = await freePort();
      server = await startServer(runtime, {
        args: [
          "--norpc",
          `--pusher_app_id=${APP.appId}`,
          `--pusher_app_key=${APP.key}`,
          `--pusher_secret=${APP.secret}`,
          `--pusher_api_port=${apiPort}`,
          "--broadcast_adapter=http",
        ],
      });
    });
    afterAll(async () => {
      await server?.stop();
    });

    it("serves the HTTP API on its own port only; presence channels need a broker", async () => {
      assert.match(
        server.output(),
        new RegExp(`Handle Pusher API requests at http://127\\.0\\.0\\.1:${apiPort}/apps/4711/`),
      );
      assert.match(server.output(), /Pusher presence channels need a broker/);
      const c = await connect(`ws://127.0.0.1:${server.port}/app/${APP.key}`, []);
      const hello = await c.next(
        (m) => m.event === "pusher:connection_established",
        "connection_established",
      );
      const socketId = String(parsed(hello.data).socket_id);
      c.send({ event: "pusher:subscribe", data: { channel: "news" } });
      await c.next((m) => m.event === "pusher_internal:subscription_succeeded", "succeeded");
      assert.equal((await pusherSdk(apiPort).trigger("news", "flash", "on the API port")).status, 200);
      assert.deepEqual(await c.next((m) => m.event === "flash", "flash"), {
        event: "flash",
        data: "on the API port",
        channel: "news",
      });
      const onMain = await pusherSdk(server.port)
        .trigger("news", "flash", "x")
        .catch((e) => e);
      assert.equal(onMain.status, 404);
      c.send({
        event: "pusher:subscribe",
        data: { channel: "presence-x", ...sdk.authorizeChannel(socketId, "presence-x", { user_id: "1" }) },
      });
      assert.deepEqual((await c.next((m) => m.event === "pusher:error", "no broker")).data, {
        message: "Presence channels need a broker (--broker=memory, or --presets=broker)",
        code: null,
      });
      c.close();
    });
  });
}
