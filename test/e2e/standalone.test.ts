// Standalone mode against the real server process, per runtime: JWT identification, signed and
// public streams, whispers, public mode, the REST API and a Hotwire-style Turbo Streams run, all
// without an RPC backend. Tokens come from @anycable/serverless-js; stream names are signed with
// the documented MessageVerifier algorithm (test/support/signing.ts).

import { afterAll, beforeAll, describe, it } from "bun:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import type { Cable } from "@anycable/core";
import { identificator } from "@anycable/serverless-js";
import WS from "ws";
import { freePort } from "../support/ports.ts";
import { metric, publish } from "../support/publish.ts";
import { e2eRuntimes, type ServerProcess, startServer } from "../support/server.ts";
import { signStream } from "../support/signing.ts";
import { waitFor } from "../support/wait.ts";
import { connect, type RawClient } from "../support/ws_client.ts";

const SECRET = "standalone-e2e-secret";
// Derived the way the SDKs derive them, independently of the server's code.
const derive = (phrase: string) => createHmac("sha256", SECRET).update(phrase).digest("hex");
const BROADCAST_KEY = derive("broadcast-cable");
const API_KEY = derive("api-cable");
const runtimes = e2eRuntimes(["bun", "deno"]);

type Strategy = "param" | "header" | "sub-protocol";
type Protocol = "actioncable-v1-json" | "actioncable-v1-ext-json";

async function coreCable(
  url: string,
  opts: { token?: string; strategy?: Strategy; protocol?: Protocol } = {},
) {
  const { createCable } = await import("@anycable/core");
  return createCable(url, {
    websocketImplementation: WS,
    protocol: opts.protocol ?? "actioncable-v1-json",
    // @anycable/core's types spell the query strategy "params" but its code reads "param" (the
    // default), so that one is left unset.
    websocketAuthStrategy: opts.strategy === "param" ? undefined : opts.strategy,
    auth: opts.token ? { token: opts.token } : undefined,
    logLevel: "error",
    // a refused client must stay refused, not retry in the background of the next test
    maxReconnectAttempts: 0,
  }) as Cable;
}

/** Collects the reason of the cable's final close (a `disconnect` with reconnect false). */
function closeReasons(cable: Cable): string[] {
  const reasons: string[] = [];
  cable.on("close", (ev) => {
    reasons.push(String((ev as { reason?: string } | undefined)?.reason ?? "user"));
  });
  return reasons;
}

async function welcomed(url: string, protocols?: string | string[], headers?: Record<string, string>) {
  const c = await connect(url, protocols, headers);
  const welcome = await c.next((m) => m.type === "welcome" || m.type === "disconnect", "welcome");
  assert.equal(welcome.type, "welcome", JSON.stringify(welcome));
  return { c, sid: String(welcome.sid) };
}

async function subscribeRaw(c: RawClient, identifier: string): Promise<string> {
  c.send({ command: "subscribe", identifier });
  const reply = await c.next((m) => m.identifier === identifier && typeof m.type === "string", "reply");
  return String(reply.type);
}

for (const runtime of runtimes) {
  describe(`[${runtime}] standalone: JWT, signed streams, whispers, REST API (--norpc --secret)`, () => {
    let server: ServerProcess;
    const jwt = identificator(SECRET, "1h");
    const broadcast = (body: unknown) => publish(`${server.url}/_broadcast`, body, BROADCAST_KEY);

    beforeAll(async () => {
      server = await startServer(runtime, {
        args: [
          "--norpc",
          `--secret=${SECRET}`,
          "--streams_whisper",
          "--broadcast_adapter=http",
          "--metrics_http=/metrics",
        ],
      });
    });
    afterAll(async () => {
      await server?.stop();
    });

    it("announces JWT, the channels router and the API", () => {
      const out = server.output();
      assert.match(out, /JWT authentication is enabled \(param: jid, enforced: false\)/);
      assert.match(out, /Using channels router: \$pubsub\b/);
      assert.doesNotMatch(out, /Turbo::StreamsChannel/);
      assert.match(out, /Handle API requests at http:\/\/127\.0\.0\.1:\d+\/api \(authorization required\)/);
    });

    it("identifies @anycable/core clients by query, header and sub-protocol tokens (no RPC)", async () => {
      const variants: [Strategy, Protocol][] = [
        ["param", "actioncable-v1-json"],
        ["header", "actioncable-v1-ext-json"],
        ["sub-protocol", "actioncable-v1-ext-json"],
        ["sub-protocol", "actioncable-v1-json"],
      ];
      const cables: { cable: Cable; reasons: string[] }[] = [];
      for (const [i, [strategy, protocol]] of variants.entries()) {
        const token = await jwt.generateToken({ user: `u${i}` });
        const cable = await coreCable(server.wsUrl, { token, strategy, protocol });
        const reasons = closeReasons(cable);
        await cable.connect();
        assert.equal(cable.state, "connected", `${strategy}/${protocol}`);
        assert.match(cable.sessionId ?? "", /^[\w-]{21}$/, "the server welcomes with its own sid");
        cables.push({ cable, reasons });
      }
      // The identifiers came from each token's ext claim: a remote disconnect by them finds exactly
      // the matching connection.
      for (const [i] of variants.entries()) {
        const res = await broadcast({
          command: "disconnect",
          payload: { identifier: JSON.stringify({ user: `u${i}` }), reconnect: false },
        });
        assert.equal(res.status, 201);
        await waitFor(() => cables[i]!.reasons.length === 1, `cable ${i} disconnected remotely`);
        assert.deepEqual(cables[i]!.reasons, ["remote"]);
        for (const other of cables.slice(i + 1)) assert.equal(other.cable.state, "connected");
      }
    });

    it("never selects the token sub-protocol", async () => {
      const token = await jwt.generateToken({ user: "raw" });
      const { c } = await welcomed(server.wsUrl, [`anycable-token.${token}`, "actioncable-v1-ext-json"]);
      assert.equal(c.protocol, "actioncable-v1-ext-json");
      c.close();
    });

    it("refuses expired, forged, oversized and missing tokens with the documented replies", async () => {
      const metricsUrl = `${server.url}/metrics`;
      const before = await metric(metricsUrl, "failed_auths_total");
      const expired = await identificator(SECRET, 1).generateToken({ user: "old" });
      const forged = await identificator("not-the-secret", "1h").generateToken({ user: "evil" });
      const good = await jwt.generateToken({ user: "x".repeat(9000) });
      const cases: [string, Record<string, string> | undefined, string][] = [
        [`${server.wsUrl}?jid=${expired}`, undefined, "token_expired"],
        [server.wsUrl, { "X-JID": forged }, "unauthorized"],
        [server.wsUrl, { "X-JID": good }, "unauthorized"], // > 8 KiB
        [`${server.wsUrl}?jid=not.a.jwt`, undefined, "unauthorized"],
        // tokenless falls back to the application, which under --norpc refuses
        [server.wsUrl, undefined, "unauthorized"],
      ];
      for (const [url, headers, reason] of cases) {
        const c = await connect(url, "actioncable-v1-json", headers);
        assert.deepEqual(await c.next((m) => m.type === "disconnect", reason), {
          type: "disconnect",
          reason,
          reconnect: false,
        });
        assert.equal(await c.waitClosed(), 1000);
      }
      await waitFor(
        async () => (await metric(metricsUrl, "failed_auths_total")) === before + cases.length,
        "failed auths counted",
      );
      // @anycable/core sees token_expired as the close reason (its cue to refresh the token)
      const cable = await coreCable(server.wsUrl, { token: expired });
      const reasons = closeReasons(cable);
      await cable.connect().catch(() => {});
      await waitFor(() => reasons.length > 0, "core client closed");
      assert.deepEqual(reasons, ["token_expired"]);
    });

    it("delivers HTTP broadcasts to streamFromSigned and rejects unsigned or tampered names", async () => {
      const token = await jwt.generateToken({ user: "reader" });
      const cable = await coreCable(server.wsUrl, { token, protocol: "actioncable-v1-ext-json" });
      const channel = cable.streamFromSigned(signStream("news/42", SECRET));
      const got: unknown[] = [];
      channel.on("message", (m: unknown) => {
        got.push(m);
      });
      await channel.ensureSubscribed();
      assert.equal((await broadcast({ stream: "news/42", data: JSON.stringify({ n: 1 }) })).status, 201);
      assert.equal((await broadcast([{ stream: "news/42", data: '"two"' }])).status, 201);
      await waitFor(() => got.length === 2, "two signed-stream messages");
      assert.deepEqual(got, [{ n: 1 }, "two"]);
      cable.disconnect();

      const { c } = await welcomed(`${server.wsUrl}?jid=${token}`);
      const signed = signStream("news/42", SECRET);
      const rejected = [
        { channel: "$pubsub", stream_name: "news/42" }, // public streams are off
        {
          channel: "$pubsub",
          signed_stream_name: `${signed.slice(0, -1)}${signed.endsWith("0") ? "1" : "0"}`,
        },
        { channel: "$pubsub", signed_stream_name: signStream("news/42", "other-key") },
        // another name's data under this name's digest
        {
          channel: "$pubsub",
          signed_stream_name: `${signStream("news/43", SECRET).split("--")[0]}--${signed.split("--")[1]}`,
        },
      ];
      for (const id of rejected)
        assert.equal(await subscribeRaw(c, JSON.stringify(id)), "reject_subscription");
      c.close();
    });

    it("whispers on signed streams (--streams_whisper) to others, not to the sender", async () => {
      const signed = signStream("room/7", SECRET);
      const members: { cable: Cable; got: unknown[]; channel: ReturnType<Cable["streamFromSigned"]> }[] = [];
      for (const [i, protocol] of (
        ["actioncable-v1-json", "actioncable-v1-ext-json", "actioncable-v1-json"] as const
      ).entries()) {
        const cable = await coreCable(server.wsUrl, {
          token: await jwt.generateToken({ user: `w${i}` }),
          protocol,
        });
        const channel = cable.streamFromSigned(signed);
        const got: unknown[] = [];
        channel.on("message", (m: unknown) => {
          got.push(m);
        });
        await channel.ensureSubscribed();
        members.push({ cable, got, channel });
      }
      const [sender, ...others] = members;
      await sender!.channel.whisper({ event: "typing", name: "w0" });
      for (const o of others) await waitFor(() => o.got.length === 1, "whisper at another member");
      for (const o of others) assert.deepEqual(o.got, [{ event: "typing", name: "w0" }]);
      // The server has handled the whisper; a later broadcast is the sender's first message.
      await broadcast({ stream: "room/7", data: '"marker"' });
      await waitFor(() => sender!.got.length > 0, "marker at the sender");
      assert.deepEqual(sender!.got, ["marker"]);
      for (const m of members) m.cable.disconnect();
    });

    it("serves POST /api/publish with the API key only", async () => {
      const token = await jwt.generateToken({ user: "api" });
      const a = await welcomed(`${server.wsUrl}?jid=${token}`);
      const b = await welcomed(`${server.wsUrl}?jid=${token}`);
      const id = JSON.stringify({ channel: "$pubsub", signed_stream_name: signStream("api/1", SECRET) });
      for (const x of [a, b]) assert.equal(await subscribeRaw(x.c, id), "confirm_subscription");
      const api = `${server.url}/api/publish`;
      const body = { stream: "api/1", data: JSON.stringify({ via: "api" }) };
      assert.equal((await publish(api, body)).status, 401, "no key");
      assert.equal((await publish(api, body, "wrong")).status, 401, "wrong key");
      assert.equal(
        (await publish(api, body, BROADCAST_KEY)).status,
        401,
        "the broadcast key is not the API key",
      );
      assert.equal(
        (await fetch(api, { headers: { authorization: `Bearer ${API_KEY}` } })).status,
        422,
        "GET",
      );
      assert.equal((await publish(api, "{broken", API_KEY)).status, 422, "malformed body");
      assert.equal((await fetch(api, { method: "OPTIONS" })).status, 422, "no CORS configured");
      assert.equal((await publish(api, body, API_KEY)).status, 201);
      for (const x of [a, b])
        assert.deepEqual((await x.c.next((m) => m.identifier === id, "api message")).message, { via: "api" });
      const batch = [
        { stream: "api/1", data: '"only b"', meta: { exclude_socket: a.sid } },
        { stream: "api/1", data: '"both"' },
      ];
      assert.equal((await publish(api, batch, API_KEY)).status, 201);
      assert.equal((await b.c.next((m) => m.identifier === id, "b 1")).message, "only b");
      assert.equal((await b.c.next((m) => m.identifier === id, "b 2")).message, "both");
      assert.equal((await a.c.next((m) => m.identifier === id, "a")).message, "both");
      assert.equal(a.c.messages.length, 0, "nothing else (401/422 requests published nothing)");
      for (const x of [a, b]) x.c.close();
    });
  });

  describe(`[${runtime}] public mode (--public --norpc)`, () => {
    let server: ServerProcess;
    let broadcastPort: number;
    let apiPort: number;

    beforeAll(async () => {
      broadcastPort = await freePort();
      apiPort = await freePort();
      server = await startServer(runtime, {
        args: [
          "--public",
          "--norpc",
          "--broadcast_adapter=http",
          `--http_broadcast_port=${broadcastPort}`,
          `--api_port=${apiPort}`,
        ],
      });
    });
    afterAll(async () => {
      await server?.stop();
    });

    it("warns, and announces the unauthenticated API on its dedicated port", () => {
      const out = server.output();
      assert.match(out, /Server is running in the public mode/);
      assert.match(out, /connection authentication is disabled/);
      assert.match(
        out,
        new RegExp(`Handle API requests at http://127\\.0\\.0\\.1:${apiPort}/api \\(no authorization\\)`),
      );
      assert.match(out, /API server is running without authentication/);
    });

    it("accepts anyone, serves streamFrom and delivers curl-style broadcasts and API publishes", async () => {
      const cable = await coreCable(server.wsUrl, { protocol: "actioncable-v1-ext-json" });
      const channel = cable.streamFrom("lobby");
      const got: unknown[] = [];
      channel.on("message", (m: unknown) => {
        got.push(m);
      });
      await channel.ensureSubscribed();
      const viaBroadcast = await fetch(`http://127.0.0.1:${broadcastPort}/_broadcast`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: '{"stream":"lobby","data":"{\\"text\\":\\"hello\\"}"}',
      });
      assert.equal(viaBroadcast.status, 201);
      const viaApi = await publish(`http://127.0.0.1:${apiPort}/api/publish`, {
        stream: "lobby",
        data: '"api"',
      });
      assert.equal(viaApi.status, 201);
      await waitFor(() => got.length === 2, "two messages");
      assert.deepEqual(got, [{ text: "hello" }, "api"]);
      // the API lives on its own port only
      assert.equal((await publish(`${server.url}/api/publish`, { stream: "lobby", data: "1" })).status, 404);
      cable.disconnect();
    });

    it("always allows whispers on public streams", async () => {
      const id = JSON.stringify({ channel: "$pubsub", stream_name: "cursor" });
      const a = await welcomed(server.wsUrl);
      const b = await welcomed(server.wsUrl);
      for (const x of [a, b]) assert.equal(await subscribeRaw(x.c, id), "confirm_subscription");
      a.c.send({ command: "whisper", identifier: id, data: { x: 10, y: 20 } });
      assert.deepEqual(await b.c.next((m) => m.identifier === id, "whisper"), {
        identifier: id,
        message: { x: 10, y: 20 },
      });
      await publish(`http://127.0.0.1:${broadcastPort}/_broadcast`, { stream: "cursor", data: '"after"' });
      assert.equal((await a.c.next((m) => m.identifier === id, "marker")).message, "after");
      assert.equal(a.c.messages.length, 0);
      for (const x of [a, b]) x.c.close();
    });
  });

  describe(`[${runtime}] Hotwire-style (--norpc --secret --turbo_streams)`, () => {
    let server: ServerProcess;
    const jwt = identificator(SECRET, "1h");

    beforeAll(async () => {
      server = await startServer(runtime, {
        args: ["--norpc", `--secret=${SECRET}`, "--turbo_streams", "--broadcast_adapter=http"],
      });
    });
    afterAll(async () => {
      await server?.stop();
    });

    it("serves Turbo::StreamsChannel subscriptions signed the way turbo-rails signs them", async () => {
      assert.match(server.output(), /Using channels router: \$pubsub, Turbo::StreamsChannel/);
      const cable = await coreCable(server.wsUrl, { token: await jwt.generateToken({ user: "hw" }) });
      // turbo-rails: Turbo::StreamsChannel.signed_stream_name([board, :messages]) -> "gid://app/Board/1:messages"
      const streamName = "Z2lkOi8vYXBwL0JvYXJkLzE:messages";
      const channel = cable.subscribeTo("Turbo::StreamsChannel", {
        signed_stream_name: signStream(streamName, SECRET),
      });
      const got: unknown[] = [];
      channel.on("message", (m: unknown) => {
        got.push(m);
      });
      await channel.ensureSubscribed();
      const html =
        '<turbo-stream action="append" target="messages"><template><p>hi</p></template></turbo-stream>';
      const res = await publish(
        `${server.url}/_broadcast`,
        { stream: streamName, data: JSON.stringify(html) },
        BROADCAST_KEY,
      );
      assert.equal(res.status, 201);
      await waitFor(() => got.length === 1, "turbo stream message");
      assert.deepEqual(got, [html]);
      cable.disconnect();
    });

    it("rejects forged Turbo names and has no CableReady controller without --cable_ready", async () => {
      const { c } = await welcomed(`${server.wsUrl}?jid=${await jwt.generateToken({ user: "hw2" })}`);
      const forged = { channel: "Turbo::StreamsChannel", signed_stream_name: signStream("board:1", "other") };
      assert.equal(await subscribeRaw(c, JSON.stringify(forged)), "reject_subscription");
      const unsigned = { channel: "Turbo::StreamsChannel", stream_name: "board:1" };
      assert.equal(await subscribeRaw(c, JSON.stringify(unsigned)), "reject_subscription");
      const cr = { channel: "CableReady::Stream", identifier: signStream("board:1", SECRET) };
      assert.equal(await subscribeRaw(c, JSON.stringify(cr)), "reject_subscription");
      c.close();
    });
  });

  describe(`[${runtime}] REST API left unprotected is not served`, () => {
    let server: ServerProcess;

    beforeAll(async () => {
      server = await startServer(runtime, {
        args: [
          "--norpc",
          "--noauth",
          "--broadcast_adapter=http",
          `--http_broadcast_port=${await freePort()}`,
        ],
      });
    });
    afterAll(async () => {
      await server?.stop();
    });

    it("says so at startup and answers 404", async () => {
      assert.match(server.output(), /REST API is not served: it would be unprotected/);
      assert.doesNotMatch(server.output(), /Handle API requests/);
      assert.equal((await publish(`${server.url}/api/publish`, { stream: "s", data: "1" })).status, 404);
    });
  });
}
