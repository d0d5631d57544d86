// Standalone features next to an RPC application, end to end (real server process under Bun and
// Deno, @grpc/grpc-js backend): JWT identification with the RPC Connect fallback and
// --enforce_jwt, whispers on an RPC channel (istate `$w`), CableReady streams signed with their
// own key, and per-session cancellation of RPC calls (--rpc_concurrency queue, calls in flight).

import { afterAll, beforeAll, describe, it } from "bun:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { identificator } from "@anycable/serverless-js";
import {
  type CommandReq,
  type CommandRes,
  type ConnectReq,
  type ConnectRes,
  type DisconnectReq,
  type GrpcBackend,
  Status,
  startGrpcBackend,
} from "../support/grpc_backend.ts";
import { freePort } from "../support/ports.ts";
import { metric, publish } from "../support/publish.ts";
import { e2eRuntimes, type ServerProcess, startServer } from "../support/server.ts";
import { signStream } from "../support/signing.ts";
import { waitFor } from "../support/wait.ts";
import { connect, type RawClient } from "../support/ws_client.ts";

const SECRET = "identity-rpc-e2e-secret";
const CABLE_READY_SECRET = "cable-ready-e2e-key";
const BROADCAST_KEY = createHmac("sha256", SECRET).update("broadcast-cable").digest("hex");
const runtimes = e2eRuntimes(["bun", "deno"]);
const jwt = identificator(SECRET, "1h");

const disconnectsOf = (backend: GrpcBackend, identifiers: string) =>
  backend.callsOf("Disconnect").filter((c) => (c.request as DisconnectReq).identifiers === identifiers);

async function subscribe(c: RawClient, identifier: string): Promise<string> {
  c.send({ command: "subscribe", identifier });
  const reply = await c.next((m) => m.identifier === identifier && typeof m.type === "string", "reply");
  return String(reply.type);
}

/** The client's next message on `identifier` (a broadcast or a whisper). */
async function nextOn(c: RawClient, identifier: string): Promise<unknown> {
  return (await c.next((m) => m.identifier === identifier && "message" in m, `message on ${identifier}`))
    .message;
}

for (const runtime of runtimes) {
  describe(`[${runtime}] JWT with RPC fallback, whispers on RPC channels, CableReady`, () => {
    let backend: GrpcBackend;
    let server: ServerProcess;
    let metricsUrl: string;
    const broadcast = (body: unknown) => publish(`${server.url}/_broadcast`, body, BROADCAST_KEY);

    beforeAll(async () => {
      backend = await startGrpcBackend();
      server = await startServer(runtime, {
        args: [
          `--rpc_host=${backend.address}`,
          `--secret=${SECRET}`,
          "--disconnect_mode=auto",
          "--broadcast_adapter=http",
          "--metrics_http=/metrics",
          "--cable_ready",
          `--cable_ready_secret=${CABLE_READY_SECRET}`,
        ],
      });
      metricsUrl = `${server.url}/metrics`;
    });
    afterAll(async () => {
      await server?.stop();
      await backend?.stop();
    });

    it("announces JWT (not enforced) and the CableReady route next to the RPC controller", () => {
      const out = server.output();
      assert.match(out, /JWT authentication is enabled \(param: jid, enforced: false\)/);
      assert.match(out, /Using channels router: \$pubsub, CableReady::Stream/);
      assert.match(out, /RPC controller initialized: /);
    });

    it("authenticates a tokenless client through the backend's Connect and passes its welcome", async () => {
      backend.reset();
      backend.onConnect = (req: ConnectReq): ConnectRes => ({
        status: Status.SUCCESS,
        identifiers: JSON.stringify({ user: new URL(req.env.url).searchParams.get("user") }),
        transmissions: [JSON.stringify({ type: "welcome", from: "backend" })],
      });
      const c = await connect(`${server.wsUrl}?user=tina`);
      const welcome = await c.next((m) => m.type === "welcome", "welcome");
      assert.deepEqual(welcome, { type: "welcome", from: "backend" });
      const calls = backend.callsOf("Connect");
      assert.equal(calls.length, 1);
      assert.match((calls[0]!.request as ConnectReq).env.url, /\?user=tina$/);
      // and the identifiers it returned are what commands carry
      assert.equal(
        await subscribe(c, JSON.stringify({ channel: "ChatChannel", room: "t" })),
        "confirm_subscription",
      );
      const [sub] = backend.callsOf("Command", "subscribe");
      assert.equal((sub!.request as CommandReq).connection_identifiers, '{"user":"tina"}');
      c.close();
    });

    it("identifies a client with a valid token itself: no Connect, and no Disconnect on close (auto)", async () => {
      backend.reset();
      const jay = await connect(`${server.wsUrl}?jid=${await jwt.generateToken({ user: "jay" })}`);
      const welcome = await jay.next((m) => m.type === "welcome", "welcome");
      // the server's own welcome carries the session id; the backend's default has none
      assert.match(String(welcome.sid), /^[\w-]{21}$/);
      // a signed stream needs no RPC either
      const id = JSON.stringify({ channel: "$pubsub", signed_stream_name: signStream("jwt/news", SECRET) });
      assert.equal(await subscribe(jay, id), "confirm_subscription");
      assert.equal((await broadcast({ stream: "jwt/news", data: '"n1"' })).status, 201);
      assert.equal(await nextOn(jay, id), "n1");

      // kim is JWT-identified too but uses an RPC channel: that makes her session need Disconnect
      const kim = await connect(`${server.wsUrl}?jid=${await jwt.generateToken({ user: "kim" })}`);
      await kim.next((m) => m.type === "welcome", "kim's welcome");
      jay.close();
      // every earlier client of this server has closed too: kim is the only one left
      await waitFor(async () => (await metric(metricsUrl, "clients_num")) === 1, "jay's close handled");
      const room = JSON.stringify({ channel: "ChatChannel", room: "k" });
      assert.equal(await subscribe(kim, room), "confirm_subscription");
      assert.equal(
        (backend.callsOf("Command", "subscribe")[0]!.request as CommandReq).connection_identifiers,
        '{"user":"kim"}',
      );
      kim.close();
      // Disconnect calls are made in close order: once kim's arrived, jay's would have too
      await waitFor(() => disconnectsOf(backend, '{"user":"kim"}').length === 1, "kim's Disconnect");
      assert.deepEqual(disconnectsOf(backend, '{"user":"jay"}'), []);
      assert.equal(backend.callsOf("Connect").length, 0, "no Connect for JWT-identified clients");
    });

    it("whispers on an RPC channel whose subscription names a whisper stream ($w), never to the sender", async () => {
      backend.reset();
      const base = backend.onCommand;
      backend.onCommand = (req: CommandReq, md): CommandRes | Promise<CommandRes> => {
        const params = JSON.parse(req.identifier) as Record<string, string>;
        if (params.channel !== "DocChannel" || req.command !== "subscribe") return base(req, md);
        return {
          status: Status.SUCCESS,
          streams: [`doc_${params.id}`],
          transmissions: [JSON.stringify({ identifier: req.identifier, type: "confirm_subscription" })],
          env: { istate: { $w: `doc_${params.id}` } },
        };
      };
      const doc = JSON.stringify({ channel: "DocChannel", id: "1" });
      const chat = JSON.stringify({ channel: "ChatChannel", room: "w" });
      const [a, b, c] = await Promise.all(
        ["wa", "wb", "wc"].map(async (user) => {
          const client = await connect(`${server.wsUrl}?user=${user}`);
          await client.next((m) => m.type === "welcome", "welcome");
          assert.equal(await subscribe(client, doc), "confirm_subscription");
          assert.equal(await subscribe(client, chat), "confirm_subscription");
          return client;
        }),
      );
      a!.send({ command: "whisper", identifier: doc, data: { event: "typing", user: "wa" } });
      assert.deepEqual(await nextOn(b!, doc), { event: "typing", user: "wa" });
      assert.deepEqual(await nextOn(c!, doc), { event: "typing", user: "wa" });
      // without `$w` in its istate a channel has no whisper stream: dropped
      b!.send({ command: "whisper", identifier: chat, data: { event: "dropped" } });
      // b's commands are handled in order: once its echo is back, the whisper was handled too
      b!.send({
        command: "message",
        identifier: chat,
        data: JSON.stringify({ action: "echo", text: "sync" }),
      });
      assert.deepEqual(await nextOn(b!, chat), { echo: "sync" });
      // a's whisper reached b and c, so it was handled before these broadcasts as well
      assert.equal((await broadcast({ stream: "doc_1", data: '"doc marker"' })).status, 201);
      assert.equal((await broadcast({ stream: "chat_w", data: '"chat marker"' })).status, 201);
      assert.equal(await nextOn(a!, doc), "doc marker", "the sender got nothing before the marker");
      for (const x of [a!, c!]) assert.equal(await nextOn(x, chat), "chat marker", "no whisper on chat");
      assert.equal(await nextOn(b!, doc), "doc marker");
      assert.equal(await nextOn(b!, chat), "chat marker");
      // whispers go to the stream, never through the backend (the echo is the only action)
      assert.equal(backend.callsOf("Command", "message").length, 1);
      for (const x of [a!, b!, c!]) x.close();
    });

    it("serves CableReady::Stream signed with --cable_ready_secret, without RPC, and rejects tampered names", async () => {
      backend.reset();
      const c = await connect(`${server.wsUrl}?jid=${await jwt.generateToken({ user: "cr" })}`);
      await c.next((m) => m.type === "welcome", "welcome");
      // CableReady signs the stream name into `identifier` (Rails MessageVerifier)
      const signed = signStream("cable_ready:users", CABLE_READY_SECRET);
      const id = JSON.stringify({ channel: "CableReady::Stream", identifier: signed });
      assert.equal(await subscribe(c, id), "confirm_subscription");
      const operations = { cableReady: true, operations: [{ operation: "consoleLog", message: "hi" }] };
      assert.equal(
        (await broadcast({ stream: "cable_ready:users", data: JSON.stringify(operations) })).status,
        201,
      );
      assert.deepEqual(await nextOn(c, id), operations);

      const [data, digest] = signed.split("--") as [string, string];
      const tampered = [
        `${data}--${digest.slice(0, -1)}${digest.endsWith("0") ? "1" : "0"}`,
        `${signStream("cable_ready:admins", CABLE_READY_SECRET).split("--")[0]}--${digest}`,
        // the streams secret is not CableReady's key here
        signStream("cable_ready:users", SECRET),
        "cable_ready:users",
      ];
      for (const name of tampered) {
        const bad = JSON.stringify({ channel: "CableReady::Stream", identifier: name });
        assert.equal(await subscribe(c, bad), "reject_subscription", name);
      }
      assert.deepEqual(backend.callsOf("Command"), [], "CableReady subscriptions never reach the backend");
      c.close();
    });
  });

  describe(`[${runtime}] --enforce_jwt with an RPC application`, () => {
    let backend: GrpcBackend;
    let server: ServerProcess;

    beforeAll(async () => {
      backend = await startGrpcBackend();
      server = await startServer(runtime, {
        args: [
          `--rpc_host=${backend.address}`,
          `--secret=${SECRET}`,
          "--enforce_jwt",
          "--broadcast_adapter=http",
        ],
      });
    });
    afterAll(async () => {
      await server?.stop();
      await backend?.stop();
    });

    it("rejects a tokenless client with unauthorized and never asks the backend", async () => {
      assert.match(server.output(), /JWT authentication is enabled \(param: jid, enforced: true\)/);
      const c = await connect(`${server.wsUrl}?user=anon`);
      assert.deepEqual(await c.next((m) => m.type === "disconnect", "disconnect"), {
        type: "disconnect",
        reason: "unauthorized",
        reconnect: false,
      });
      assert.equal(await c.waitClosed(), 1000);
      // a client with a token is served, and its commands still go to the backend
      const ok = await connect(`${server.wsUrl}?jid=${await jwt.generateToken({ user: "ok" })}`);
      await ok.next((m) => m.type === "welcome", "welcome");
      assert.equal(
        await subscribe(ok, JSON.stringify({ channel: "ChatChannel", room: "e" })),
        "confirm_subscription",
      );
      assert.equal(backend.callsOf("Command", "subscribe").length, 1);
      assert.equal(backend.callsOf("Connect").length, 0);
      ok.close();
    });
  });

  describe(`[${runtime}] per-session cancellation of RPC calls (--rpc_concurrency=1)`, () => {
    let backend: GrpcBackend;
    let server: ServerProcess;
    let metricsUrl: string;
    /** Connect calls of these users wait until released. */
    const gates = new Map<string, { wait: Promise<void>; open: () => void }>();
    const gate = (user: string) => {
      let open: () => void = () => {};
      const wait = new Promise<void>((r) => {
        open = r;
      });
      gates.set(user, { wait, open });
    };
    const connectUsers = () =>
      backend
        .callsOf("Connect")
        .map((c) => new URL((c.request as ConnectReq).env.url).searchParams.get("user"));

    beforeAll(async () => {
      backend = await startGrpcBackend();
      backend.onConnect = async (req: ConnectReq): Promise<ConnectRes> => {
        const user = new URL(req.env.url).searchParams.get("user") ?? "";
        await gates.get(user)?.wait;
        return {
          status: Status.SUCCESS,
          identifiers: JSON.stringify({ user }),
          transmissions: [JSON.stringify({ type: "welcome" })],
        };
      };
      const port = await freePort();
      server = await startServer(runtime, {
        port,
        args: [
          `--rpc_host=${backend.address}`,
          `--http_broadcast_port=${port}`,
          "--rpc_concurrency=1",
          // the gated calls must not time out while the test holds them
          "--rpc_command_timeout=30000",
          "--rpc_request_timeout=30000",
          "--broadcast_adapter=http",
          "--metrics_http=/metrics",
        ],
      });
      metricsUrl = `${server.url}/metrics`;
    });
    afterAll(async () => {
      for (const g of gates.values()) g.open();
      await server?.stop();
      await backend?.stop();
    });

    const metricIs = (name: string, value: number) =>
      waitFor(async () => (await metric(metricsUrl, name)) === value, `${name} = ${value}`);

    it("never makes the Connect calls of sessions that closed while queued, and counts them", async () => {
      gate("holder");
      const holder = await connect(`${server.wsUrl}?user=holder`);
      await waitFor(() => connectUsers().length === 1, "the holder's Connect at the backend");
      const queued = await Promise.all(["q0", "q1", "q2"].map((u) => connect(`${server.wsUrl}?user=${u}`)));
      await metricIs("rpc_pending_num", 3);
      for (const q of queued) q.close();
      await metricIs("rpc_canceled_total", 3);
      await metricIs("rpc_pending_num", 0);

      gates.get("holder")!.open();
      await holder.next((m) => m.type === "welcome", "holder's welcome");
      const after = await connect(`${server.wsUrl}?user=after`);
      await after.next((m) => m.type === "welcome", "the next client's welcome");
      assert.deepEqual(connectUsers(), ["holder", "after"]);
      assert.equal(await metric(metricsUrl, "rpc_error_total"), 0);

      // a session with its Connect in flight that goes away: the call is cancelled at the backend
      gate("leaver");
      const leaver = await connect(`${server.wsUrl}?user=leaver`);
      await waitFor(() => connectUsers().includes("leaver"), "the leaver's Connect at the backend");
      leaver.close();
      await waitFor(
        () =>
          backend
            .callsOf("Connect")
            .some((c) => c.cancelled && (c.request as ConnectReq).env.url.endsWith("user=leaver")),
        "the backend sees the leaver's Connect cancelled",
      );
      await metricIs("rpc_canceled_total", 4);
      assert.equal(await metric(metricsUrl, "rpc_error_total"), 0, "a cancelled call is not a failure");
      // its slot is free again
      const last = await connect(`${server.wsUrl}?user=last`);
      await last.next((m) => m.type === "welcome", "welcome after the cancellation");

      // sessions that were connected still get their Disconnect calls
      for (const c of [holder, after, last]) c.close();
      await waitFor(() => backend.callsOf("Disconnect").length === 3, "three Disconnect calls");
      assert.deepEqual(
        backend
          .callsOf("Disconnect")
          .map((c) => JSON.parse((c.request as DisconnectReq).identifiers).user)
          .sort(),
        ["after", "holder", "last"],
      );
      gates.get("leaver")!.open();
    });
  });
}
