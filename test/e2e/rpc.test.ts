// RPC to the application, end to end: the real server process (Bun, Deno) between real
// @rails/actioncable / raw WebSocket clients and (a) a gRPC backend built on @grpc/grpc-js,
// (b) the @anycable/serverless-js SDK over HTTP RPC.

import { afterAll, beforeAll, describe, it } from "bun:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Consumer, Subscription } from "@rails/actioncable";
import WS from "ws";
import {
  type CommandReq,
  type DisconnectReq,
  type GrpcBackend,
  startGrpcBackend,
  UNAUTHORIZED,
} from "../support/grpc_backend.ts";
import { type HttpBackend, startHttpBackend } from "../support/http_backend.ts";
import { freePort } from "../support/ports.ts";
import { metric, publish } from "../support/publish.ts";
import { e2eRuntimes, type ServerProcess, startServer } from "../support/server.ts";
import { waitFor } from "../support/wait.ts";
import { connect, type RawClient } from "../support/ws_client.ts";

const all = e2eRuntimes(["bun", "deno", "binary"]);
const runtimes = all.filter((r) => r !== "binary");
const binary = all.includes("binary");
const room = (n: string) => JSON.stringify({ channel: "ChatChannel", room: n });

interface TrackedSubscription {
  sub: Subscription;
  state: "pending" | "connected" | "rejected";
  received: unknown[];
}

/** An @rails/actioncable consumer over `ws`, optionally sending extra handshake headers. */
async function railsConsumer(url: string, headers?: Record<string, string>): Promise<Consumer> {
  const { createConsumer, adapters } = await import("@rails/actioncable");
  class HeaderWS extends WS {
    constructor(address: string, protocols?: string | string[]) {
      super(address, protocols, { headers });
    }
  }
  (adapters as { WebSocket: unknown }).WebSocket = HeaderWS;
  return createConsumer(url);
}

function track(consumer: Consumer, params: { channel: string; [key: string]: string }): TrackedSubscription {
  const t: TrackedSubscription = {
    sub: undefined as unknown as Subscription,
    state: "pending",
    received: [],
  };
  t.sub = consumer.subscriptions.create(params, {
    connected: () => {
      t.state = "connected";
    },
    rejected: () => {
      t.state = "rejected";
    },
    received: (data: unknown) => {
      t.received.push(data);
    },
  });
  return t;
}

async function welcomed(url: string, headers?: Record<string, string>): Promise<RawClient> {
  const c = await connect(url, "actioncable-v1-json", headers);
  await c.next((m) => m.type === "welcome", "welcome");
  return c;
}

async function subscribed(c: RawClient, identifier: string): Promise<void> {
  c.send({ command: "subscribe", identifier });
  await c.next(
    (m) => m.identifier === identifier && m.type === "confirm_subscription",
    `confirm ${identifier}`,
  );
}

function perform(c: RawClient, identifier: string, data: Record<string, unknown>): void {
  c.send({ command: "message", identifier, data: JSON.stringify(data) });
}

for (const runtime of runtimes) {
  describe(`[${runtime}] gRPC RPC (@grpc/grpc-js backend)`, () => {
    let backend: GrpcBackend;
    let server: ServerProcess;
    let metricsUrl: string;

    beforeAll(async () => {
      backend = await startGrpcBackend();
      const port = await freePort();
      server = await startServer(runtime, {
        port,
        args: [
          `--rpc_host=${backend.address}`,
          "--broadcast_adapter=http",
          `--http_broadcast_port=${port}`,
          "--headers=cookie,x-api-token",
          "--metrics_http=/metrics",
          "--rpc_concurrency=3",
          "--rpc_command_timeout=1500",
        ],
      });
      backend.broadcastUrl = `${server.url}/_broadcast`;
      metricsUrl = `${server.url}/metrics`;
    });
    afterAll(async () => {
      await server?.stop();
      await backend?.stop();
    });

    it("announces the RPC controller like anycable-go", () => {
      assert.match(
        server.output(),
        new RegExp(
          `INF RPC controller initialized: ${backend.address.replace(/\./g, "\\.")} \\(concurrency: 3, impl: grpc, enable_tls: false, proto_versions: v1, proxy_headers: cookie,x-api-token, proxy_cookies: <all>\\)`,
        ),
      );
    });

    it("authenticates through Connect with the filtered headers, url, sid and protov", async () => {
      backend.reset();
      const consumer = await railsConsumer(`${server.wsUrl}?user=ann`, {
        cookie: "session=abc",
        "x-api-token": "tok",
        "x-other": "not proxied",
        "x-request-id": "req-ann-1",
      });
      const chat = track(consumer, { channel: "ChatChannel", room: "1" });
      await waitFor(() => chat.state === "connected", "subscription confirmed");
      const [call] = backend.callsOf("Connect");
      assert.ok(call);
      assert.equal(call.metadata.sid, "req-ann-1");
      assert.equal(call.metadata.protov, "v1");
      const env = (call.request as { env: { url: string; headers: Record<string, string> } }).env;
      assert.equal(env.url, `${server.wsUrl.replace("ws://", "http://")}?user=ann`);
      // only the --headers list (lower-cased) is proxied, plus anycable-go's REMOTE_ADDR
      assert.equal(env.headers.cookie, "session=abc");
      assert.equal(env.headers["x-api-token"], "tok");
      assert.equal(env.headers["x-other"], undefined);
      assert.deepEqual(
        Object.keys(env.headers)
          .filter((h) => h !== "REMOTE_ADDR")
          .sort(),
        ["cookie", "x-api-token"],
      );
      // every command carries the identifiers returned by Connect
      const [sub] = backend.callsOf("Command", "subscribe");
      assert.equal((sub!.request as CommandReq).connection_identifiers, '{"user":"ann"}');
      consumer.disconnect();
    });

    it("rejects a connection with the backend's exact unauthorized message", async () => {
      const before = await metric(metricsUrl, "failed_auths_total");
      const c = await connect(`${server.wsUrl}?reject=1`);
      await c.waitClosed();
      assert.deepEqual(c.raw, [UNAUTHORIZED]);
      assert.equal(c.raw[0], '{"type":"disconnect","reason":"unauthorized","reconnect":false}');
      assert.equal(c.closeCode, 1000);
      assert.equal(await metric(metricsUrl, "failed_auths_total"), before + 1);
    });

    it("confirms and rejects subscriptions (@rails/actioncable)", async () => {
      const consumer = await railsConsumer(`${server.wsUrl}?user=bob`);
      const ok = track(consumer, { channel: "ChatChannel", room: "2" });
      const no = track(consumer, { channel: "RejectChannel" });
      await waitFor(() => ok.state === "connected" && no.state === "rejected", "confirm + reject");
      consumer.disconnect();
    });

    it("performs actions: backend broadcasts reach every subscriber, transmissions only the caller", async () => {
      const a = await railsConsumer(`${server.wsUrl}?user=alice`);
      const b = await railsConsumer(`${server.wsUrl}?user=bert`);
      const ta = track(a, { channel: "ChatChannel", room: "3" });
      const tb = track(b, { channel: "ChatChannel", room: "3" });
      await waitFor(() => ta.state === "connected" && tb.state === "connected", "both subscribed");
      ta.sub.perform("speak", { text: "hello" });
      await waitFor(() => ta.received.length === 1 && tb.received.length === 1, "broadcast at both");
      assert.deepEqual(ta.received, [{ text: "hello", from: "alice" }]);
      assert.deepEqual(tb.received, [{ text: "hello", from: "alice" }]);
      ta.sub.perform("echo", { text: "just me" });
      await waitFor(() => ta.received.length === 2, "echo at the caller");
      assert.deepEqual(ta.received[1], { echo: "just me" });
      // an ERROR from the application sends nothing and keeps the socket: the next echo proves
      // both that nothing arrived in between and that the session is alive
      ta.sub.perform("explode", {});
      tb.sub.perform("echo", { text: "b only" });
      await waitFor(() => tb.received.length === 2, "echo at b");
      ta.sub.perform("echo", { text: "still here" });
      await waitFor(() => ta.received.length === 3, "second echo at the caller");
      assert.deepEqual(ta.received[2], { echo: "still here" });
      assert.deepEqual(tb.received, [{ text: "hello", from: "alice" }, { echo: "b only" }]);
      a.disconnect();
      b.disconnect();
    });

    it("unsubscribes: the backend is told and the streams stop", async () => {
      backend.reset();
      const c = await welcomed(`${server.wsUrl}?user=uma`);
      await subscribed(c, room("4"));
      await subscribed(c, room("5"));
      c.send({ command: "unsubscribe", identifier: room("4") });
      await waitFor(() => backend.callsOf("Command", "unsubscribe").length === 1, "Unsubscribe call");
      assert.equal(
        (backend.callsOf("Command", "unsubscribe")[0]!.request as CommandReq).identifier,
        room("4"),
      );
      // the unsubscribe is applied before the next command of the session is handled
      perform(c, room("5"), { action: "echo", text: "sync" });
      await c.next((m) => (m.message as { echo?: string })?.echo === "sync", "echo after unsubscribe");
      assert.equal(
        (await publish(`${server.url}/_broadcast`, { stream: "chat_4", data: '"gone"' })).status,
        201,
      );
      assert.equal(
        (await publish(`${server.url}/_broadcast`, { stream: "chat_5", data: '"here"' })).status,
        201,
      );
      await c.next((m) => m.message === "here", "broadcast to the remaining stream");
      assert.equal(
        c.messages.some((m) => (m as { message?: unknown }).message === "gone"),
        false,
      );
      c.close();
    });

    it("keeps cstate and istate per session and merges them from responses", async () => {
      const c = await welcomed(`${server.wsUrl}?user=sam`);
      await subscribed(c, room("6"));
      await subscribed(c, room("7"));
      perform(c, room("6"), { action: "state", cstate: { theme: "dark" }, istate: { draft: "hi" } });
      const first = await c.next((m) => m.identifier === room("6") && !!m.message, "first state echo");
      // Connect set cstate {user}; subscribe set istate {room}
      assert.deepEqual(first.message, { cstate: { user: "sam" }, istate: { room: "6" } });
      perform(c, room("6"), { action: "state" });
      const second = await c.next((m) => m.identifier === room("6") && !!m.message, "second state echo");
      assert.deepEqual(second.message, {
        cstate: { user: "sam", theme: "dark" },
        istate: { room: "6", draft: "hi" },
      });
      // another subscription sees the shared cstate but only its own istate
      perform(c, room("7"), { action: "state" });
      const other = await c.next((m) => m.identifier === room("7") && !!m.message, "other channel state");
      assert.deepEqual(other.message, { cstate: { user: "sam", theme: "dark" }, istate: { room: "7" } });
      c.close();
    });

    it("calls Disconnect on close with the subscriptions, states, url and headers", async () => {
      backend.reset();
      const c = await welcomed(`${server.wsUrl}?user=dora`, { cookie: "k=v" });
      await subscribed(c, room("8"));
      await subscribed(c, room("9"));
      perform(c, room("8"), { action: "state", istate: { seen: "yes" } });
      await c.next((m) => m.identifier === room("8") && !!m.message, "state set");
      c.close();
      // other tests' sessions may still be disconnecting: pick this session's call
      const call = await waitFor(
        () =>
          backend
            .callsOf("Disconnect")
            .find((c) => (c.request as DisconnectReq).identifiers === '{"user":"dora"}'),
        "Disconnect call",
      );
      const req = call.request as DisconnectReq;
      assert.deepEqual([...req.subscriptions].sort(), [room("8"), room("9")].sort());
      assert.deepEqual(req.env.istate, {
        [room("8")]: '{"room":"8","seen":"yes"}',
        [room("9")]: '{"room":"9"}',
      });
      assert.deepEqual(req.env.cstate, { user: "dora" });
      assert.equal(req.env.headers.cookie, "k=v");
      assert.match(req.env.url, /\?user=dora$/);
      assert.ok(call.metadata.sid);
    });

    it("never has more than --rpc_concurrency calls in flight at the backend", async () => {
      backend.reset();
      backend.delayMs = 150;
      const clients = await Promise.all(
        Array.from({ length: 10 }, (_, i) => welcomed(`${server.wsUrl}?user=c${i}`)),
      );
      assert.equal(backend.callsOf("Connect").length, 10);
      assert.equal(backend.maxInflight, 3);
      for (const c of clients) c.close();
      backend.reset();
    });

    it("survives the RPC server going away: 1011 for new connections, old sessions and broadcasts keep working", async () => {
      backend.reset();
      const c = await welcomed(`${server.wsUrl}?user=olga`);
      await subscribed(c, room("10"));
      const errorsBefore = await metric(metricsUrl, "rpc_error_total");
      await backend.stop();

      const refused = await connect(`${server.wsUrl}?user=late`);
      await refused.waitClosed();
      assert.equal(refused.closeCode, 1011);
      assert.deepEqual(refused.raw, []);
      assert.equal((await fetch(`${server.url}/health`)).status, 200);
      assert.equal(
        (await publish(`${server.url}/_broadcast`, { stream: "chat_10", data: '"while down"' })).status,
        201,
      );
      await c.next((m) => m.message === "while down", "broadcast while the backend is down");
      assert.equal(c.closeCode, undefined, "the existing session stays open");
      assert.ok((await metric(metricsUrl, "rpc_error_total")) > errorsBefore);
      assert.ok((await metric(metricsUrl, "rpc_retries_total")) > 0);

      await backend.start();
      const back = await welcomed(`${server.wsUrl}?user=back`);
      await subscribed(back, room("10"));
      perform(c, room("10"), { action: "speak", text: "recovered" });
      await c.next(
        (m) => (m.message as { text?: string })?.text === "recovered",
        "old session performs again",
      );
      await back.next((m) => (m.message as { text?: string })?.text === "recovered", "new session gets it");
      c.close();
      back.close();
    });
  });

  describe(`[${runtime}] disconnect queue`, () => {
    let backend: GrpcBackend;
    beforeAll(async () => {
      backend = await startGrpcBackend();
    });
    afterAll(async () => {
      await backend?.stop();
    });

    it("paces Disconnect calls at --disconnect_rate and flushes the rest on shutdown", async () => {
      const server = await startServer(runtime, {
        args: [`--rpc_host=${backend.address}`, "--disconnect_rate=5", "--shutdown_timeout=10"],
      });
      try {
        const clients = await Promise.all(
          Array.from({ length: 3 }, (_, i) => welcomed(`${server.wsUrl}?user=q${i}`)),
        );
        for (const c of clients) c.close();
        await waitFor(() => backend.callsOf("Disconnect").length === 3, "three Disconnect calls", 5000);
        const at = backend.callsOf("Disconnect").map((c) => c.at);
        // 5 per second: one call every 200 ms (a little slack for timer jitter)
        assert.ok(at[1]! - at[0]! >= 150 && at[2]! - at[1]! >= 150, `spacing ${at.join(",")}`);

        backend.reset();
        const more = await Promise.all(
          Array.from({ length: 6 }, (_, i) => welcomed(`${server.wsUrl}?user=s${i}`)),
        );
        await Promise.all(more.map((c, i) => subscribed(c, room(`s${i}`))));
        const started = Date.now();
        const code = await server.stop("SIGTERM");
        assert.equal(code, 0);
        // at 5/s the six calls would take over a second; the shutdown flush does not wait for the rate
        assert.equal(backend.callsOf("Disconnect").length, 6);
        assert.ok(Date.now() - started < 5000);
        assert.match(server.output(), /invoking remaining disconnects .*num=\d/);
        const subs = backend
          .callsOf("Disconnect")
          .map((c) => (c.request as DisconnectReq).subscriptions.length);
        assert.deepEqual(subs, [1, 1, 1, 1, 1, 1]);
        for (const c of more) await c.next((m) => m.reason === "server_restart", "server_restart");
      } finally {
        await server.stop("SIGKILL");
      }
    });
  });

  describe(`[${runtime}] HTTP RPC (@anycable/serverless-js backend)`, () => {
    const SECRET = "e2e-rpc-secret";
    const hex = (phrase: string) => createHmac("sha256", SECRET).update(phrase).digest("hex");
    let backend: HttpBackend;
    let server: ServerProcess;

    beforeAll(async () => {
      backend = await startHttpBackend();
      backend.secret = hex("rpc-cable");
      backend.broadcastKey = hex("broadcast-cable");
      server = await startServer(runtime, {
        args: [
          `--rpc_host=${backend.url}`,
          `--secret=${SECRET}`,
          "--broadcast_adapter=http",
          "--headers=cookie,x-api-token",
          "--rpc_command_timeout=1500",
        ],
      });
      backend.broadcastUrl = `${server.url}/_broadcast`;
    });
    afterAll(async () => {
      await server?.stop();
      await backend?.stop();
    });

    it("announces HTTP RPC and authenticates with the derived bearer key and meta headers", async () => {
      assert.match(
        server.output(),
        /RPC controller initialized: http:\/\/127\.0\.0\.1:\d+\/_anycable \(concurrency: 28, impl: http,/,
      );
      const c = await connect(`${server.wsUrl}?user=hana`, "actioncable-v1-json", {
        "x-request-id": "req-hana",
        "x-api-token": "t1",
        "x-other": "no",
      });
      const welcome = await c.next((m) => m.type === "welcome", "welcome");
      // the SDK puts x-anycable-meta-sid into its welcome: X-Request-ID became the session id
      assert.equal(welcome.sid, "req-hana");
      const [call] = backend.callsOf("connect");
      assert.equal(call!.headers.authorization, `Bearer ${hex("rpc-cable")}`);
      assert.equal(call!.headers["x-anycable-meta-sid"], "req-hana");
      assert.equal(call!.headers["x-anycable-meta-protov"], "v1");
      assert.equal(call!.headers["content-type"], "application/json");
      const env = call!.body.env as { headers: Record<string, string> };
      assert.equal(env.headers["x-api-token"], "t1");
      assert.equal(env.headers["x-other"], undefined);
      c.close();
    });

    it("passes the SDK's rejection through and closes", async () => {
      const c = await connect(`${server.wsUrl}?reject=1`);
      await c.waitClosed();
      assert.deepEqual(c.messages, [{ type: "disconnect", reason: "unauthorized" }]);
    });

    it("subscribes, performs, transmits, unsubscribes and disconnects through the SDK", async () => {
      const a = await railsConsumer(`${server.wsUrl}?user=ivy`);
      const b = await railsConsumer(`${server.wsUrl}?user=jon`);
      const ta = track(a, { channel: "ChatChannel", room: "h1" });
      const tb = track(b, { channel: "ChatChannel", room: "h1" });
      const no = track(b, { channel: "RejectChannel" });
      await waitFor(
        () => ta.state === "connected" && tb.state === "connected" && no.state === "rejected",
        "confirmations and the rejection",
      );
      ta.sub.perform("speak", { text: "over http" });
      await waitFor(() => ta.received.length === 1 && tb.received.length === 1, "broadcast at both");
      assert.deepEqual(tb.received, [{ text: "over http", from: "ivy" }]);
      ta.sub.perform("echo", { text: "mine" });
      tb.sub.perform("echo", { text: "yours" });
      await waitFor(() => ta.received.length === 2 && tb.received.length === 2, "echoes");
      assert.deepEqual(ta.received[1], { echo: "mine" });
      assert.deepEqual(tb.received[1], { echo: "yours" });

      const before = backend.callsOf("disconnect").length;
      ta.sub.unsubscribe();
      await waitFor(
        () => backend.callsOf("command").some((c) => c.body.command === "unsubscribe"),
        "unsubscribe command",
      );
      a.disconnect();
      await waitFor(() => backend.callsOf("disconnect").length > before, "Disconnect call");
      const call = backend.callsOf("disconnect").at(-1)!;
      assert.equal(call.body.identifiers, '{"user":"ivy"}');
      // unsubscribed before closing: no subscriptions left
      assert.equal(call.body.subscriptions, undefined);
      b.disconnect();
      await waitFor(
        () => backend.callsOf("disconnect").some((c) => c.body.identifiers === '{"user":"jon"}'),
        "jon's Disconnect",
      );
      const jon = backend.callsOf("disconnect").find((c) => c.body.identifiers === '{"user":"jon"}')!;
      assert.deepEqual(jon.body.subscriptions, [JSON.stringify({ channel: "ChatChannel", room: "h1" })]);
    });

    it("accepts statuses as enum names", async () => {
      backend.enumNames = true;
      try {
        const c = await welcomed(`${server.wsUrl}?user=enum`);
        await subscribed(c, room("h2"));
        c.close();
      } finally {
        backend.enumNames = false;
      }
    });

    it("closes with 1011 while the backend fails, and recovers", async () => {
      backend.failWith = 500;
      const failed = await connect(`${server.wsUrl}?user=x`);
      await failed.waitClosed();
      assert.equal(failed.closeCode, 1011);
      backend.failWith = 0;
      const c = await welcomed(`${server.wsUrl}?user=y`);
      await subscribed(c, room("h3"));
      await backend.stop();
      const down = await connect(`${server.wsUrl}?user=z`);
      await down.waitClosed();
      assert.equal(down.closeCode, 1011);
      assert.equal(
        (
          await publish(
            `${server.url}/_broadcast`,
            { stream: "chat_h3", data: '"still"' },
            backend.broadcastKey,
          )
        ).status,
        201,
      );
      await c.next((m) => m.message === "still", "broadcast while HTTP RPC is down");
      await backend.start();
      const again = await welcomed(`${server.wsUrl}?user=again`);
      again.close();
      c.close();
    });
  });
}

// The single-file executable embeds the gRPC client and the generated code: one gRPC round trip
// from an empty directory proves they made it into the bundle.
describe.if(binary)("[binary] gRPC RPC", () => {
  it("authenticates, subscribes and performs through the gRPC backend", async () => {
    const backend = await startGrpcBackend();
    const cwd = mkdtempSync(join(tmpdir(), "acts-bin-rpc-"));
    const server = await startServer("binary", { cwd, args: [`--rpc_host=${backend.address}`] });
    try {
      const c = await welcomed(`${server.wsUrl}?user=bin`);
      await subscribed(c, room("b1"));
      perform(c, room("b1"), { action: "echo", text: "compiled" });
      await c.next((m) => (m.message as { echo?: string })?.echo === "compiled", "echo");
      assert.equal(backend.callsOf("Connect").length, 1);
      c.close();
    } finally {
      await server.stop();
      await backend.stop();
    }
  });
});
