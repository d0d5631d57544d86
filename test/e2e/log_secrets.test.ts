// No secret or token in any log line: a server at debug level with every secret set (application
// secret, broadcast and API keys, JWT, signed streams) serves real traffic, and its whole output
// is searched for each secret value it was given or derived.
import { afterAll, beforeAll, describe, it } from "bun:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { identificator } from "@anycable/serverless-js";
import { freePort } from "../support/ports.ts";
import { publish } from "../support/publish.ts";
import { e2eRuntimes, type ServerProcess, startServer } from "../support/server.ts";
import { signStream } from "../support/signing.ts";
import { connect } from "../support/ws_client.ts";

const runtimes = e2eRuntimes(["bun", "deno"]);
const SECRET = "s3cr3t-never-logged-4f9a";
const derive = (phrase: string) => createHmac("sha256", SECRET).update(phrase).digest("hex");

for (const runtime of runtimes) {
  describe(`[${runtime}] secrets stay out of the logs`, () => {
    let server: ServerProcess;
    const jwt = identificator(SECRET, "1h");
    let token = "";
    beforeAll(async () => {
      token = await jwt.generateToken({ user: "ann" });
      const port = await freePort();
      server = await startServer(runtime, {
        port,
        args: [
          "--norpc",
          `--secret=${SECRET}`,
          "--public_streams",
          "--broker=memory",
          "--log_level=debug",
          "--broadcast_adapter=http",
        ],
      });
    });
    afterAll(async () => {
      await server?.stop();
    });

    it("prints none of them at debug level through connects, subscribes, broadcasts and API calls", async () => {
      const broadcastKey = derive("broadcast-cable");
      const apiKey = derive("api-cable");
      const c = await connect(`${server.wsUrl}?jid=${token}`);
      await c.next((m) => m.type === "welcome", "welcome");
      const signed = signStream("secret-room", SECRET);
      const identifier = JSON.stringify({ channel: "$pubsub", signed_stream_name: signed });
      c.send({ command: "subscribe", identifier });
      await c.next((m) => m.type === "confirm_subscription", "confirm");
      assert.equal(
        (await publish(`${server.url}/_broadcast`, { stream: "secret-room", data: "1" }, broadcastKey))
          .status,
        201,
      );
      await c.next((m) => m.message === 1, "the broadcast");
      assert.equal(
        (await publish(`${server.url}/_broadcast`, { stream: "x", data: "1" }, "wrong-key")).status,
        401,
      );
      await fetch(`${server.url}/api/presence/secret-room/users`, {
        headers: { authorization: `Bearer ${apiKey}` },
      });
      const bad = await connect(`${server.wsUrl}?jid=${token}garbage`);
      await bad.next((m) => m.type === "disconnect", "the refusal");
      c.close();
      bad.close();
      await server.waitForOutput(/DBG/);
      const out = server.output();
      // the refused token was logged at debug level (the line most likely to leak one) and the
      // startup lines describe every secured endpoint: the search covers them
      assert.match(out, / DBG invalid token sid=\S+ error=/);
      assert.match(out, /Accept broadcast requests at .* \(authorization required\)/);
      for (const [name, value] of Object.entries({ SECRET, broadcastKey, apiKey, token, signed })) {
        assert.equal(out.includes(value), false, `${name} appears in the log`);
      }
    });
  });
}
