// Long polling (--poll) against the real server process, per runtime: the documented protocol
// request by request (first POST → welcome + X-Anycable-Poll-ID, JSONL commands, held polls
// answered by a broadcast or the poll interval, 401 session_expired, 413, CORS, --max-conn), and
// the real @anycable/core client over a long-polling transport through HTTP RPC
// (@anycable/serverless-js): subscribe, perform, broadcasts, the Disconnect call once the
// session expires; metrics; held polls answered with server_restart on shutdown.

import { afterAll, beforeAll, describe, it } from "bun:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { type HttpBackend, startHttpBackend } from "../support/http_backend.ts";
import { LpTransport, lpPost, POLL_ID } from "../support/lp_client.ts";
import { metric, publish } from "../support/publish.ts";
import { e2eRuntimes, type ServerProcess, startServer } from "../support/server.ts";
import { waitFor } from "../support/wait.ts";

const SECRET = "lp-e2e-secret";
const derive = (phrase: string) => createHmac("sha256", SECRET).update(phrase).digest("hex");
const BROADCAST_KEY = derive("broadcast-cable");
const runtimes = e2eRuntimes(["bun", "deno"]);

const pubsub = (stream: string) => JSON.stringify({ channel: "$pubsub", stream_name: stream });
const subscribe = (identifier: string) => ({ command: "subscribe", identifier });

for (const runtime of runtimes) {
  describe(`[${runtime}] long polling (--poll, HTTP RPC, --public_streams)`, () => {
    let server: ServerProcess;
    let backend: HttpBackend;
    const lp = () => `${server.url}/lp`;
    const broadcast = (body: unknown) => publish(`${server.url}/_broadcast`, body, BROADCAST_KEY);
    const clients = () => metric(`${server.url}/metrics`, "long_poll_clients_num");
    const stale = () => metric(`${server.url}/metrics`, "long_poll_stale_requests_total");

    beforeAll(async () => {
      backend = await startHttpBackend();
      backend.secret = derive("rpc-cable");
      backend.broadcastKey = BROADCAST_KEY;
      server = await startServer(runtime, {
        args: [
          "--poll",
          `--rpc_host=${backend.url}`,
          `--secret=${SECRET}`,
          "--public_streams",
          "--broadcast_adapter=http",
          "--allowed_origins=app.example",
          "--metrics_http=/metrics",
          "--poll_interval=2",
          "--poll_keepalive_timeout=1",
          "--poll_flush_interval=100",
          "--poll_max_request_size=2048",
          "--log_level=debug",
        ],
      });
      backend.broadcastUrl = `${server.url}/_broadcast`;
    });
    afterAll(async () => {
      await server?.stop();
      await backend?.stop();
    });

    it("announces the endpoint with its intervals, and serves the option (no 'not served yet' line)", () => {
      assert.match(
        server.output(),
        new RegExp(
          `INF Handle long polling requests at ${server.url}/lp \\(poll_interval: 2, keepalive_timeout: 1\\)`,
        ),
      );
      assert.doesNotMatch(server.output(), /option poll.* not served yet/);
    });

    it("first POST: welcome and the confirmation of the commands it carries, with the poll id", async () => {
      const name = `news/${runtime}`;
      const first = await lpPost(`${lp()}?user=u1`, { lines: [subscribe(pubsub(name))] });
      assert.equal(first.status, 200);
      const id = first.headers.get(POLL_ID);
      assert.ok(id && id.length >= 16, `poll id: ${id}`);
      assert.equal(first.messages[0]!.type, "welcome");
      assert.deepEqual(first.messages[1], { type: "confirm_subscription", identifier: pubsub(name) });
      assert.equal(first.messages.length, 2);
      assert.ok(first.text.endsWith("\n"), "JSONL: the last line ends with a newline");
      assert.equal(first.headers.get("access-control-expose-headers"), POLL_ID);

      // a held poll is answered by the broadcast that comes while it waits
      const held = lpPost(lp(), { id });
      assert.equal((await broadcast({ stream: name, data: JSON.stringify({ n: 1 }) })).status, 201);
      const got = await held;
      assert.equal(got.status, 200);
      assert.deepEqual(got.messages.at(-1), { identifier: pubsub(name), message: { n: 1 } });

      // messages that came between polls wait for the next one, in order
      for (const n of [2, 3])
        assert.equal((await broadcast({ stream: name, data: JSON.stringify({ n }) })).status, 201);
      const seen: unknown[] = [];
      await waitFor(async () => {
        const r = await lpPost(lp(), { id });
        assert.equal(r.status, 200);
        for (const m of r.messages) if (m.identifier === pubsub(name)) seen.push(m.message);
        return seen.length >= 2;
      }, "two queued messages");
      assert.deepEqual(seen, [{ n: 2 }, { n: 3 }]);

      // nothing to say: the poll is answered empty when --poll_interval passes
      const empty = await lpPost(lp(), { id });
      assert.equal(empty.status, 200);
      assert.equal(empty.text, "");
    });

    it("@anycable/core over long polling: RPC connect, subscribe, perform, broadcasts; Disconnect once the session expires", async () => {
      const room = `lp-${runtime}`;
      const disconnectsBefore = backend.callsOf("disconnect").length;
      const transport = new LpTransport(`${lp()}?user=core-${runtime}`);
      const { createCable } = await import("@anycable/core");
      const cable = createCable({
        transport: transport as never,
        logLevel: "error",
        maxReconnectAttempts: 0,
      });
      try {
        await cable.connect();
        assert.equal(cable.state, "connected");
        const connect = backend.callsOf("connect").at(-1)!;
        assert.match((connect.body.env as { url: string }).url, new RegExp(`/lp\\?user=core-${runtime}$`));
        assert.ok((await clients()) >= 1);

        const channel = cable.subscribeTo("ChatChannel", { room });
        const got: unknown[] = [];
        channel.on("message", (msg: unknown) => {
          got.push(msg);
        });
        await channel.ensureSubscribed();
        await channel.perform("echo", { text: "ping me" });
        await waitFor(() => got.length >= 1, "the echo transmission");
        assert.deepEqual(got[0], { echo: "ping me" });
        await channel.perform("speak", { text: "hello" });
        await waitFor(() => got.length >= 2, "the broadcast of speak");
        assert.deepEqual(got[1], { text: "hello", from: `core-${runtime}` });
        assert.equal(
          (await broadcast({ stream: `chat_${room}`, data: JSON.stringify({ text: "from app" }) })).status,
          201,
        );
        await waitFor(() => got.length >= 3, "an application broadcast");
        assert.deepEqual(got[2], { text: "from app" });
        assert.ok(
          transport.statuses.every((s) => s === 200),
          `statuses: ${transport.statuses}`,
        );
      } finally {
        cable.disconnect();
      }
      // the client stopped polling: after --poll_keepalive_timeout the session is closed
      await waitFor(
        () => backend.callsOf("disconnect").length > disconnectsBefore,
        "the Disconnect call",
        10_000,
      );
      const identifier = JSON.stringify({ channel: "ChatChannel", room });
      await waitFor(
        () =>
          backend
            .callsOf("disconnect")
            .some((c) => JSON.stringify(c.body.subscriptions) === JSON.stringify([identifier])),
        "the Disconnect call with the channel's subscription",
        10_000,
      );
    });

    it("401 session_expired for an unknown id and for a session not polled within the keepalive timeout", async () => {
      const before = await stale();
      const unknown = await lpPost(lp(), { id: "no-such-session" });
      assert.equal(unknown.status, 401);
      assert.deepEqual(unknown.messages, [
        { type: "disconnect", reason: "session_expired", reconnect: true },
      ]);
      const first = await lpPost(lp());
      assert.equal(first.status, 200);
      const id = first.headers.get(POLL_ID)!;
      const sid = String(first.messages[0]!.sid);
      await waitFor(
        () => server.output().includes(`long polling session expired sid=${sid}`),
        "the idle session swept",
        10_000,
      );
      const late = await lpPost(lp(), { id });
      assert.equal(late.status, 401);
      assert.deepEqual(late.messages, [{ type: "disconnect", reason: "session_expired", reconnect: true }]);
      assert.equal(await stale(), before + 2);
    });

    it("401 with the unauthorized disconnect when the application rejects the connection", async () => {
      const res = await lpPost(`${lp()}?reject=1`);
      assert.equal(res.status, 401);
      assert.equal(res.headers.get(POLL_ID), null);
      // (serverless-js's rejection carries no `reconnect`)
      assert.deepEqual(
        res.messages.map((m) => [m.type, m.reason]),
        [["disconnect", "unauthorized"]],
      );
    });

    it("bad input: 413 over --poll_max_request_size, 405 for GET, malformed lines skipped", async () => {
      const big = await lpPost(lp(), {
        body: `${JSON.stringify({ command: "x", pad: "a".repeat(4096) })}\n`,
      });
      assert.equal(big.status, 413);
      assert.equal((await fetch(lp())).status, 405);
      const name = `mixed-${runtime}`;
      const mixed = await lpPost(lp(), {
        body: `not json\n[1,2]\n${JSON.stringify(subscribe(pubsub(name)))}\n`,
      });
      assert.equal(mixed.status, 200);
      assert.deepEqual(mixed.messages.slice(1), [{ type: "confirm_subscription", identifier: pubsub(name) }]);
      // a later poll of that session still works
      const again = await lpPost(lp(), {
        id: mixed.headers.get(POLL_ID)!,
        lines: [{ command: "unsubscribe", identifier: pubsub(name) }],
      });
      assert.equal(again.status, 200);
    });

    it("CORS per --allowed_origins: preflight allows the poll id header, a foreign origin is refused", async () => {
      const pre = await fetch(lp(), {
        method: "OPTIONS",
        headers: { Origin: "https://app.example", "Access-Control-Request-Method": "POST" },
      });
      assert.equal(pre.status, 200);
      assert.equal(pre.headers.get("access-control-allow-origin"), "https://app.example");
      assert.equal(pre.headers.get("access-control-allow-methods"), "POST, OPTIONS");
      assert.match(pre.headers.get("access-control-allow-headers") ?? "", /X-Anycable-Poll-ID/);
      const own = await lpPost(lp(), { headers: { Origin: "https://app.example" } });
      assert.equal(own.status, 200);
      assert.equal(own.headers.get("access-control-allow-origin"), "https://app.example");
      const foreign = await lpPost(lp(), { headers: { Origin: "https://evil.example" } });
      assert.equal(foreign.status, 403);
    });
  });

  describe(`[${runtime}] long polling at --poll_path, --max-conn and server shutdown`, () => {
    it("serves at --poll_path only with --poll; --max-conn counts poll sessions; a held poll gets server_restart", async () => {
      const off = await startServer(runtime, { args: ["--public", "--norpc", "--broadcast_adapter=http"] });
      try {
        assert.equal((await fetch(`${off.url}/lp`, { method: "POST" })).status, 404);
      } finally {
        await off.stop();
      }
      const server = await startServer(runtime, {
        args: [
          "--poll",
          "--poll_path=/poll",
          "--public",
          "--norpc",
          "--broadcast_adapter=http",
          "--max-conn=2",
          "--log_level=debug",
        ],
      });
      let code: number | null | undefined;
      try {
        const url = `${server.url}/poll`;
        assert.equal((await fetch(`${server.url}/lp`, { method: "POST" })).status, 404);
        const a = await lpPost(url);
        const b = await lpPost(url);
        assert.equal(a.status, 200);
        assert.equal(b.status, 200);
        const third = await lpPost(url);
        assert.equal(third.status, 503);
        // held (the default interval is 15 s) when the server stops
        const sid = String(a.messages[0]!.sid);
        const held = lpPost(url, { id: a.headers.get(POLL_ID)! });
        await waitFor(() => server.output().includes(`poll held sid=${sid}`), "the poll held");
        const exited = server.stop("SIGTERM");
        const last = await held;
        assert.equal(last.status, 200);
        assert.deepEqual(last.messages.at(-1), {
          type: "disconnect",
          reason: "server_restart",
          reconnect: true,
        });
        code = await exited;
      } finally {
        await server.stop();
      }
      assert.equal(code, 0);
    });
  });
}
