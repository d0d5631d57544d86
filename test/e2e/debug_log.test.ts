// Logs to debug with: under --debug a session's life is in the log line by line, as anycable-go
// prints it (context=ws / node, component=hub, sid=...): the upgrade, every incoming command, each
// controller call's answer, the streams it starts, every broadcast on its way through the node, the
// Disconnect call. What grants access (a cookie, a token in the URL, a signed stream name) shows
// as [FILTERED]. And at info level none of these lines is printed.
import { afterAll, beforeAll, describe, it } from "bun:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { type GrpcBackend, startGrpcBackend } from "../support/grpc_backend.ts";
import { publish } from "../support/publish.ts";
import { e2eRuntimes, type ServerProcess, startServer } from "../support/server.ts";
import { signStream } from "../support/signing.ts";
import { connect } from "../support/ws_client.ts";

const runtimes = e2eRuntimes(["bun", "deno"]);
const SECRET = "debug-log-secret-7c1e";
const COOKIE = "_session=cookie-value-never-logged-91b2";
const room = JSON.stringify({ channel: "ChatChannel", room: "42" });

/** A JSON fragment as the text log shows it inside a quoted value. */
const q = (json: string) => json.replaceAll('"', '\\"');

/** The log lines (time stripped) that contain every fragment. */
function lines(out: string, ...fragments: string[]): string[] {
  return out
    .split("\n")
    .map((l) => l.replace(/^\S+ \S+ /, ""))
    .filter((l) => fragments.every((f) => l.includes(f)));
}

for (const runtime of runtimes) {
  describe(`[${runtime}] debug logs`, () => {
    let backend: GrpcBackend;
    let debug: ServerProcess;
    let quiet: ServerProcess;
    beforeAll(async () => {
      backend = await startGrpcBackend();
      const args = [
        `--rpc_host=${backend.address}`,
        `--secret=${SECRET}`,
        "--public_streams",
        "--broadcast_adapter=http",
        "--headers=cookie",
      ];
      [debug, quiet] = await Promise.all([
        startServer(runtime, { args: [...args, "--debug"] }),
        startServer(runtime, { args }),
      ]);
    }, 30_000);
    afterAll(async () => {
      await Promise.all([debug?.stop(), quiet?.stop()]);
      await backend?.stop();
    });

    async function session(server: ServerProcess): Promise<string> {
      const c = await connect(
        `${server.wsUrl}?user=ann&token=url-token-never-logged`,
        "actioncable-v1-json",
        {
          cookie: COOKIE,
        },
      );
      await c.next((m) => m.type === "welcome", "welcome");
      c.send({ command: "subscribe", identifier: room });
      await c.next((m) => m.identifier === room && m.type === "confirm_subscription", "confirm");
      const signed = signStream("secret-room", SECRET);
      const pubsub = JSON.stringify({ channel: "$pubsub", signed_stream_name: signed });
      c.send({ command: "subscribe", identifier: pubsub });
      await c.next((m) => m.identifier === pubsub && m.type === "confirm_subscription", "confirm signed");
      c.send({ command: "message", identifier: room, data: JSON.stringify({ action: "echo", text: "hi" }) });
      await c.next((m) => m.identifier === room && (m.message as { echo?: string })?.echo === "hi", "echo");
      const key = createHmac("sha256", SECRET).update("broadcast-cable").digest("hex");
      const res = await publish(`${server.url}/_broadcast`, { stream: "chat_42", data: '{"n":1}' }, key);
      assert.equal(res.status, 201);
      await c.next((m) => m.identifier === room && (m.message as { n?: number })?.n === 1, "broadcast");
      c.close();
      await c.waitClosed();
      return signed;
    }

    it("prints a session's life line by line, with what grants access filtered", async () => {
      const signed = await session(debug);
      await debug.waitForOutput("controller disconnect succeeded", 10_000);
      const out = debug.output();
      const sid = /WebSocket session established sid=(\S+)/.exec(out)?.[1];
      assert.ok(sid, out);
      const of = (...f: string[]) => lines(out, `sid=${sid}`, ...f);
      assert.equal(of("DBG WebSocket session established", "context=ws").length, 1, out);
      assert.equal(of("DBG controller authenticate", "context=node", q('"status":"success"')).length, 1, out);
      assert.ok(of("DBG incoming message", q('"command":"subscribe"'), "ChatChannel").length >= 1, out);
      assert.equal(of("DBG controller subscribe", q('"streams":["chat_42"]')).length, 1, out);
      const nodeLines = (...f: string[]) => of(...f).filter((l) => !l.includes("component=hub"));
      assert.equal(nodeLines("DBG subscribed", "context=node", "ChatChannel").length, 1, out);
      assert.equal(of("DBG subscribed", "component=hub", "stream=chat_42").length, 1, out);
      // the signed identifier: logged, its signed name filtered
      assert.ok(of("DBG incoming message", "signed_stream_name", "[FILTERED]").length >= 1, out);
      assert.ok(of("DBG subscribed", "signed_stream_name", "[FILTERED]", "context=node").length >= 1, out);
      assert.equal(of("DBG controller perform", q('"transmissions":1')).length, 1, out);
      assert.equal(lines(out, "DBG handle broadcast message", "context=node", "chat_42").length, 1, out);
      assert.equal(lines(out, "DBG incoming broadcast message", "context=node", "chat_42").length, 1, out);
      const disconnect = of("DBG disconnect", `ids="${q('{"user":"ann"}')}"`);
      assert.equal(disconnect.length, 1, out);
      assert.match(disconnect[0], /token=%5BFILTERED%5D/);
      assert.match(disconnect[0], /\\"cookie\\":\\"\[FILTERED\]\\"/);
      assert.equal(of("DBG controller disconnect succeeded").length, 1, out);
      assert.equal(of("DBG WebSocket session completed", "context=ws").length, 1, out);
      for (const [name, value] of Object.entries({ COOKIE, signed, token: "url-token-never-logged" }))
        assert.equal(out.includes(value), false, `${name} appears in the log`);
      assert.equal(out.includes("cookie-value-never-logged"), false, "the cookie value appears in the log");
    });

    it("prints none of them at info level", async () => {
      await session(quiet);
      const out = quiet.output();
      assert.doesNotMatch(out, / DBG /);
      for (const m of ["incoming message", "controller subscribe", "WebSocket session established"])
        assert.equal(out.includes(m), false, `${m} at info level`);
    });
  });
}
