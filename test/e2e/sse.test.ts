// Server-Sent Events against the real server process, per runtime: the `eventsource` client
// (its own reconnect with Last-Event-ID after the test drops the connection) and plain fetch
// streaming for POST, raw mode and the statuses. Public, signed and Turbo streams, JWT via ?jid=
// and X-JID, a channel through HTTP RPC (@anycable/serverless-js), history through
// --broker=memory, CORS, slow clients, the client leaving (sse_clients_num), server shutdown.

import { afterAll, afterEach, beforeAll, describe, it } from "bun:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { connect as tcpConnect } from "node:net";
import { identificator } from "@anycable/serverless-js";
import { EventSource } from "eventsource";
import { type HttpBackend, startHttpBackend } from "../support/http_backend.ts";
import { freePort } from "../support/ports.ts";
import { metric, publish } from "../support/publish.ts";
import { e2eRuntimes, type ServerProcess, startServer } from "../support/server.ts";
import { nowSec, rawJwt, signStream } from "../support/signing.ts";
import { DroppableFetch, type SseEvent, SseReader } from "../support/sse_client.ts";
import { waitFor } from "../support/wait.ts";

const SECRET = "sse-e2e-secret";
const derive = (phrase: string) => createHmac("sha256", SECRET).update(phrase).digest("hex");
const BROADCAST_KEY = derive("broadcast-cable");
const runtimes = e2eRuntimes(["bun", "deno"]);

const sources: EventSource[] = [];
const readers: SseReader[] = [];
afterEach(async () => {
  for (const s of sources.splice(0)) s.close();
  await Promise.all(readers.splice(0).map((r) => r.cancel()));
});

/** An EventSource that records every event of the given types (plus "message"). */
function eventSource(url: string, types: string[] = [], fetcher?: DroppableFetch) {
  const es = new EventSource(url, fetcher ? { fetch: fetcher.fetch } : undefined);
  sources.push(es);
  const got: Array<{ type: string; data: string; lastEventId: string }> = [];
  for (const type of ["message", ...types]) {
    es.addEventListener(type, (e) => {
      const m = e as MessageEvent;
      got.push({ type, data: String(m.data), lastEventId: m.lastEventId });
    });
  }
  const errors: string[] = [];
  es.addEventListener("error", (e) => {
    errors.push(
      String((e as { message?: string; code?: number }).code ?? (e as { message?: string }).message),
    );
  });
  return { es, got, errors, messages: () => got.filter((g) => g.type === "message") };
}

async function stream(url: string, init?: RequestInit): Promise<SseReader> {
  const res = await fetch(url, init);
  assert.equal(res.status, 200, `${url}: ${res.status}`);
  const r = new SseReader(res);
  readers.push(r);
  return r;
}

const json = (e: SseEvent | undefined) => JSON.parse(e?.data ?? "null") as Record<string, unknown>;

for (const runtime of runtimes) {
  describe(`[${runtime}] SSE (--sse --broker=memory, HTTP RPC, --secret)`, () => {
    let server: ServerProcess;
    let backend: HttpBackend;
    let epoch: string;
    const jwt = identificator(SECRET, "1h");
    const events = () => `${server.url}/events`;
    const broadcast = (body: unknown) => publish(`${server.url}/_broadcast`, body, BROADCAST_KEY);
    const sseClients = () => metric(`${server.url}/metrics`, "sse_clients_num");

    beforeAll(async () => {
      backend = await startHttpBackend();
      backend.secret = derive("rpc-cable");
      backend.broadcastKey = BROADCAST_KEY;
      server = await startServer(runtime, {
        args: [
          "--sse",
          `--rpc_host=${backend.url}`,
          `--secret=${SECRET}`,
          "--public_streams",
          "--turbo_streams",
          "--broker=memory",
          "--broadcast_adapter=http",
          "--allowed_origins=app.example",
          "--metrics_http=/metrics",
          "--log_level=debug",
        ],
      });
      backend.broadcastUrl = `${server.url}/_broadcast`;
      const m = /Using in-memory broker \(epoch: ([^,]+),/.exec(server.output());
      assert.ok(m, server.output());
      epoch = m[1]!;
    });
    afterAll(async () => {
      await server?.stop();
      await backend?.stop();
    });

    it("announces the SSE endpoint, and serves the option (no 'not served yet' line)", () => {
      assert.match(server.output(), new RegExp(`INF Handle SSE requests at ${server.url}/events`));
      assert.doesNotMatch(server.output(), /option sse.* not served yet/);
    });

    it("EventSource on a public stream: welcome, confirmation, messages with <offset>/<epoch>/<stream> ids", async () => {
      const name = `news/${runtime}/a b`;
      const { got, messages } = eventSource(`${events()}?stream=${encodeURIComponent(name)}`, [
        "welcome",
        "confirm_subscription",
      ]);
      await waitFor(() => got.some((g) => g.type === "confirm_subscription"), "confirm_subscription");
      assert.equal(got[0]!.type, "welcome");
      assert.deepEqual(JSON.parse(got[1]!.data), {
        type: "confirm_subscription",
        identifier: JSON.stringify({ channel: "$pubsub", stream_name: name }),
      });
      assert.equal((await broadcast({ stream: name, data: JSON.stringify({ n: 1 }) })).status, 201);
      assert.equal((await broadcast({ stream: name, data: JSON.stringify("two\nlines") })).status, 201);
      await waitFor(() => messages().length === 2, "two messages");
      assert.deepEqual(messages(), [
        { type: "message", data: '{"n":1}', lastEventId: `1/${epoch}/${name}` },
        { type: "message", data: "two\nlines", lastEventId: `2/${epoch}/${name}` },
      ]);
    });

    it("signed stream with a JWT in ?jid= (no RPC call), Turbo stream with multi-line HTML", async () => {
      const connectsBefore = backend.callsOf("connect").length;
      const token = await jwt.generateToken({ user: "jid-user" });
      const signed = `secret/${runtime}`;
      const a = await stream(
        `${events()}?signed_stream=${encodeURIComponent(signStream(signed, SECRET))}&jid=${token}`,
      );
      const welcome = json(await a.next());
      assert.equal(welcome.type, "welcome");
      assert.match(String(welcome.sid), /^[\w-]{21}$/);
      assert.equal((await a.next())?.event, "confirm_subscription");
      const turboName = `gid://app/Board/${runtime}:messages`;
      const t = await stream(
        `${events()}?turbo_signed_stream_name=${encodeURIComponent(signStream(turboName, SECRET))}&jid=${token}`,
      );
      const confirm = await t.until((e) => e.event === "confirm_subscription", "turbo confirmation");
      assert.equal(
        json(confirm).identifier,
        JSON.stringify({
          channel: "Turbo::StreamsChannel",
          signed_stream_name: signStream(turboName, SECRET),
        }),
      );
      await broadcast({ stream: signed, data: JSON.stringify({ secret: true }) });
      const html =
        '<turbo-stream action="append" target="m">\n<template><p>hi</p></template>\n</turbo-stream>';
      await broadcast({ stream: turboName, data: JSON.stringify(html) });
      const m1 = await a.until((e) => e.event === "message", "signed message");
      assert.equal(m1.data, '{"secret":true}');
      const m2 = await t.until((e) => e.event === "message", "turbo message");
      assert.equal(m2.data, html);
      assert.equal(m2.raw.split("\n").filter((l) => l.startsWith("data: ")).length, 3);
      assert.equal(backend.callsOf("connect").length, connectsBefore, "JWT sessions make no Connect call");
      // a forged signature is a rejected subscription
      const forged = await fetch(
        `${events()}?signed_stream=${encodeURIComponent(signStream(signed, "x"))}&jid=${token}`,
      );
      assert.equal(forged.status, 400);
    });

    it("a JWT in the X-JID header; a bad or expired token is 401", async () => {
      const fetcher = new DroppableFetch();
      fetcher.headers["x-jid"] = await jwt.generateToken({ user: "header-user" });
      const { got } = eventSource(
        `${events()}?stream=hdr-${runtime}`,
        ["welcome", "confirm_subscription"],
        fetcher,
      );
      await waitFor(() => got.some((g) => g.type === "confirm_subscription"), "confirmation");
      assert.ok(JSON.parse(got[0]!.data).sid);
      const bad = await fetch(`${events()}?stream=x&jid=not-a-token`);
      assert.equal(bad.status, 401);
      assert.equal(await bad.text(), "");
      const expired = rawJwt(
        { alg: "HS256" },
        { ext: JSON.stringify({ user: "old" }), exp: nowSec() - 60 },
        SECRET,
      );
      assert.equal((await fetch(`${events()}?stream=x`, { headers: { "X-JID": expired } })).status, 401);
    });

    it("a channel through RPC: Connect with the request's URL, subscribe with params, Disconnect when the client goes", async () => {
      const identifier = JSON.stringify({ channel: "ChatChannel", room: `r-${runtime}` });
      const disconnectsBefore = backend.callsOf("disconnect").length;
      const { es, got, messages } = eventSource(
        `${events()}?identifier=${encodeURIComponent(identifier)}&user=rpc-${runtime}`,
        ["welcome", "confirm_subscription"],
      );
      await waitFor(() => got.some((g) => g.type === "confirm_subscription"), "confirmation");
      const connect = backend.callsOf("connect").at(-1)!;
      const env = connect.body.env as { url: string };
      assert.match(env.url, new RegExp(`/events\\?identifier=.*&user=rpc-${runtime}$`));
      const peak = await sseClients();
      assert.ok(peak >= 1);
      await broadcast({ stream: `chat_r-${runtime}`, data: JSON.stringify({ text: "hello" }) });
      await waitFor(() => messages().length === 1, "the channel's message");
      assert.equal(messages()[0]!.data, '{"text":"hello"}');
      es.close();
      // streams of earlier tests may still be closing: only this one's count is known to go
      await waitFor(async () => (await sseClients()) <= peak - 1, "sse_clients_num back down");
      await waitFor(
        () => backend.callsOf("disconnect").length === disconnectsBefore + 1,
        "the Disconnect call",
      );
      const call = backend.callsOf("disconnect").at(-1)!;
      assert.deepEqual(call.body.subscriptions, [identifier]);
    });

    it("401 for a connection the application rejects, 400 for a rejected subscription or no channel", async () => {
      const rejected = await fetch(`${events()}?channel=ChatChannel&reject=1`);
      assert.equal(rejected.status, 401);
      assert.equal(rejected.headers.get("content-type"), "text/event-stream; charset=utf-8");
      assert.equal(await rejected.text(), "");
      const sub = await fetch(`${events()}?channel=RejectChannel&user=u`);
      assert.equal(sub.status, 400);
      assert.equal(await sub.text(), "");
      assert.equal((await fetch(`${events()}?raw=1`)).status, 400);
      assert.equal((await fetch(`${events()}`, { method: "PUT" })).status, 405);
      // an EventSource gives up on a non-200 answer
      const { es, errors } = eventSource(`${events()}?channel=RejectChannel&user=u`);
      await waitFor(() => es.readyState === EventSource.CLOSED, "EventSource closed");
      assert.deepEqual(errors, ["400"]);
    });

    it("raw mode: only data messages (no welcome, confirmation or pings)", async () => {
      const name = `raw-${runtime}`;
      // Bun's fetch resolves only with the first body bytes, and a raw stream has none before a message
      const sid = `raw-sid-${runtime}`;
      const pending = stream(`${events()}?stream=${name}&raw=1`, { headers: { "X-Request-ID": sid } });
      await server.waitForOutput(`DBG session established sid=${sid}`);
      await broadcast({ stream: name, data: JSON.stringify("first") });
      const r = await pending;
      const first = await r.next();
      assert.deepEqual(first && { event: first.event, data: first.data }, {
        event: "message",
        data: "first",
      });
    });

    it("POST with JSONL commands: full Action Cable messages for every subscription", async () => {
      const pub = JSON.stringify({ channel: "$pubsub", stream_name: `post-${runtime}` });
      const chat = JSON.stringify({ channel: "ChatChannel", room: `post-${runtime}` });
      const body = `${JSON.stringify({ command: "subscribe", identifier: pub })}\n\n${JSON.stringify({ command: "subscribe", identifier: chat })}\n`;
      const r = await stream(`${events()}?user=poster`, { method: "POST", body });
      assert.equal((await r.next())?.event, "welcome");
      assert.equal(json(await r.next()).identifier, pub);
      assert.equal(json(await r.next()).identifier, chat);
      await broadcast({ stream: `post-${runtime}`, data: "1" });
      await broadcast({ stream: `chat_post-${runtime}`, data: JSON.stringify({ text: "x" }) });
      const a = await r.next();
      assert.deepEqual(json(a), {
        identifier: pub,
        message: 1,
        stream_id: `post-${runtime}`,
        epoch,
        offset: 1,
      });
      assert.equal(a?.id, `1/${epoch}/post-${runtime}`);
      assert.deepEqual(json(await r.next()), {
        identifier: chat,
        message: { text: "x" },
        stream_id: `chat_post-${runtime}`,
        epoch,
        offset: 1,
      });
    });

    it("POST: a malformed line or a body over 64 KB is 400", async () => {
      const ok = JSON.stringify({
        command: "subscribe",
        identifier: JSON.stringify({ channel: "$pubsub", stream_name: "p" }),
      });
      assert.equal((await fetch(`${events()}`, { method: "POST", body: `${ok}\n{nope` })).status, 400);
      const big = JSON.stringify({ command: "subscribe", identifier: "x", pad: "x".repeat(65_536) });
      const res = await fetch(`${events()}`, { method: "POST", body: big });
      assert.equal(res.status, 400);
      // the server is fine afterwards
      assert.equal((await fetch(`${server.url}/health`)).status, 200);
    });

    it("EventSource resumes with Last-Event-ID after a dropped connection: missed messages once, in order", async () => {
      const name = `resume/${runtime}`;
      const fetcher = new DroppableFetch();
      const { got, messages } = eventSource(
        `${events()}?stream=${encodeURIComponent(name)}`,
        ["confirm_subscription", "confirm_history"],
        fetcher,
      );
      await waitFor(() => got.some((g) => g.type === "confirm_subscription"), "confirmation");
      for (const n of [1, 2]) await broadcast({ stream: name, data: JSON.stringify({ n }) });
      await waitFor(() => messages().length === 2, "two live messages");
      fetcher.drop(true);
      await waitFor(() => fetcher.requests.length === 2, "the reconnect attempt", 15_000);
      for (const n of [3, 4, 5]) await broadcast({ stream: name, data: JSON.stringify({ n }) });
      fetcher.open();
      await waitFor(() => messages().length === 5, "the missed messages", 15_000);
      await broadcast({ stream: name, data: JSON.stringify({ n: 6 }) });
      await waitFor(() => messages().length === 6, "a live message after the resume");
      assert.deepEqual(
        messages().map((m) => [JSON.parse(m.data).n, m.lastEventId]),
        [1, 2, 3, 4, 5, 6].map((n) => [n, `${n}/${epoch}/${name}`]),
      );
      assert.equal(fetcher.requests[1]!.headers["last-event-id"], `2/${epoch}/${name}`);
      // the second stream: subscribed again, then the backlog, then confirm_history
      const types = got.filter((g) => g.type !== "message" || JSON.parse(g.data).n > 2).map((g) => g.type);
      assert.deepEqual(types, [
        "confirm_subscription",
        "confirm_subscription",
        "message",
        "message",
        "message",
        "confirm_history",
        "message",
      ]);
    });

    it("history_since: the stream's recent messages first, then confirm_history; a bad Last-Event-ID is 400", async () => {
      const name = `since-${runtime}`;
      const since = nowSec() - 60;
      for (const n of [1, 2, 3]) await broadcast({ stream: name, data: JSON.stringify({ n }) });
      const r = await stream(`${events()}?stream=${name}&history_since=${since}`);
      const got: SseEvent[] = [];
      for (;;) {
        const e = await r.next();
        assert.ok(e);
        if (e.event === "ping") continue;
        got.push(e);
        if (e.event === "confirm_history") break;
      }
      assert.deepEqual(
        got.map((e) => [e.event, e.data, e.id]),
        [
          ["welcome", got[0]!.data, undefined],
          ["confirm_subscription", got[1]!.data, undefined],
          ["message", '{"n":1}', `1/${epoch}/${name}`],
          ["message", '{"n":2}', `2/${epoch}/${name}`],
          ["message", '{"n":3}', `3/${epoch}/${name}`],
          [
            "confirm_history",
            JSON.stringify({ type: "confirm_history", identifier: json(got[1]).identifier }),
            undefined,
          ],
        ],
      );
      // Last-Event-ID by hand: from offset 2 on
      const r2 = await stream(`${events()}?stream=${name}`, {
        headers: { "Last-Event-ID": `2/${epoch}/${name}` },
      });
      const third = await r2.until((e) => e.event === "message", "the message after offset 2");
      assert.equal(third.data, '{"n":3}');
      assert.equal(
        (await fetch(`${events()}?stream=${name}`, { headers: { "Last-Event-ID": `x/${epoch}/${name}` } }))
          .status,
        400,
      );
      assert.equal(
        (await fetch(`${events()}?stream=${name}`, { headers: { "Last-Event-ID": "7" } })).status,
        200,
      );
      assert.equal((await fetch(`${events()}?stream=${name}&history_since=soon`)).status, 400);
    });

    it("a remote disconnect without reconnect ends the stream with retry:", async () => {
      const token = await jwt.generateToken({ user: `bye-${runtime}` });
      const r = await stream(`${events()}?stream=bye&jid=${token}`);
      await r.until((e) => e.event === "confirm_subscription", "confirmation");
      const bye = {
        command: "disconnect",
        payload: { identifier: JSON.stringify({ user: `bye-${runtime}` }), reconnect: false },
      };
      assert.equal((await broadcast(bye)).status, 201);
      const rest = await r.rest();
      const last = rest.at(-1)!;
      assert.equal(last.event, "disconnect");
      assert.deepEqual(json(last), { type: "disconnect", reason: "remote", reconnect: false });
      assert.equal(last.retry, 31536000000);
      assert.equal(r.ended, true);
    });

    it("CORS per --allowed_origins: preflight, the allowed origin echoed, a foreign one refused", async () => {
      const pre = await fetch(`${events()}`, {
        method: "OPTIONS",
        headers: { Origin: "https://app.example", "Access-Control-Request-Method": "POST" },
      });
      assert.equal(pre.status, 200);
      assert.equal(pre.headers.get("access-control-allow-origin"), "https://app.example");
      assert.equal(pre.headers.get("access-control-allow-methods"), "POST, OPTIONS");
      assert.equal(pre.headers.get("access-control-allow-credentials"), "true");
      assert.match(pre.headers.get("access-control-allow-headers") ?? "", /X-Request-ID/);
      const own = await stream(`${events()}?stream=cors`, { headers: { Origin: "https://app.example" } });
      assert.equal(own.response.headers.get("access-control-allow-origin"), "https://app.example");
      const foreign = await fetch(`${events()}?stream=cors`, { headers: { Origin: "https://evil.example" } });
      assert.equal(foreign.status, 403);
      assert.equal(foreign.headers.get("access-control-allow-origin"), null);
    });

    it("a client that does not read is let go as too slow, and its connection is cut", async () => {
      const name = `slow-${runtime}`;
      const slowBefore = await metric(`${server.url}/metrics`, "disconnected_slow_clients_total");
      const socket = tcpConnect(server.port, "127.0.0.1");
      let received = 0;
      let closed = false;
      socket.on("close", () => {
        closed = true;
      });
      await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
      socket.write(`GET /events?stream=${name} HTTP/1.1\r\nHost: x\r\nX-Request-ID: slow-${runtime}\r\n\r\n`);
      socket.once("data", (d) => {
        received += d.length;
        socket.pause(); // and never read again
      });
      await server.waitForOutput(`DBG session established sid=slow-${runtime}`);
      // streams of earlier tests may still be closing: only this one's count is known to go
      const peak = await sseClients();
      const chunk = JSON.stringify("x".repeat(64 * 1024));
      for (let i = 0; i < 8; i++) {
        const batch = Array.from({ length: 25 }, () => ({ stream: name, data: chunk }));
        assert.equal((await broadcast(batch)).status, 201);
      }
      await waitFor(
        async () => (await metric(`${server.url}/metrics`, "disconnected_slow_clients_total")) > slowBefore,
        "the slow client detected",
        20_000,
      );
      await waitFor(async () => (await sseClients()) <= peak - 1, "sse_clients_num back down");
      // --ws_write_timeout (2 s) after the too_slow disconnect, what it did not read is dropped
      await server.waitForOutput(
        /DBG closed SSE stream not read within the write timeout, connection cut/,
        20_000,
      );
      socket.on("data", (d) => {
        received += d.length;
      });
      socket.resume();
      await waitFor(() => closed, "the connection closed", 20_000);
      assert.ok(received > 0 && received < 200 * 64 * 1024, `received ${received} bytes`);
    });
  });

  describe(`[${runtime}] SSE at --sse_path, and server shutdown`, () => {
    it("keeps a stream open past the listener's 10 s idle deadline (no ping for 15 s)", async () => {
      const port = await freePort();
      const server = await startServer(runtime, {
        port,
        args: [
          "--sse",
          "--public",
          "--norpc",
          "--broadcast_adapter=http",
          `--http_broadcast_port=${port}`,
          "--ping_interval=60",
        ],
      });
      try {
        const r = await stream(`${server.url}/events?stream=idle`);
        await r.until((e) => e.event === "confirm_subscription", "confirmation");
        // the scenario itself: past Bun.serve's idleTimeout (10 s, checked every 4 s) and node:http's deadlines
        await new Promise((resolve) => setTimeout(resolve, 15_000));
        assert.equal(
          (await publish(`${server.url}/_broadcast`, { stream: "idle", data: '"still here"' })).status,
          201,
        );
        assert.equal(
          (await r.until((e) => e.event === "message", "the message after 15 s")).data,
          "still here",
        );
      } finally {
        await server.stop();
      }
    });

    it("serves at --sse_path only with --sse, and ends every stream with server_restart on shutdown", async () => {
      const off = await startServer(runtime, { args: ["--public", "--norpc", "--broadcast_adapter=http"] });
      try {
        assert.equal((await fetch(`${off.url}/events?stream=x`)).status, 404);
      } finally {
        await off.stop();
      }
      const server = await startServer(runtime, {
        args: ["--sse", "--sse_path=/sse", "--public", "--norpc", "--broadcast_adapter=http"],
      });
      let code: number | null | undefined;
      try {
        assert.equal((await fetch(`${server.url}/events?stream=x`)).status, 404);
        const get = await stream(`${server.url}/sse?stream=x`);
        const post = await stream(`${server.url}/sse`, { method: "POST" });
        await get.until((e) => e.event === "confirm_subscription", "confirmation");
        await post.until((e) => e.event === "welcome", "welcome");
        const exited = server.stop("SIGTERM");
        for (const r of [get, post]) {
          const last = (await r.rest()).at(-1);
          assert.deepEqual(json(last), { type: "disconnect", reason: "server_restart", reconnect: true });
          assert.equal(last?.retry, undefined);
          assert.equal(r.ended, true);
        }
        code = await exited;
      } finally {
        await server.stop();
      }
      assert.equal(code, 0);
    });
  });
}
