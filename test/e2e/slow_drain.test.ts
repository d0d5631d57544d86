// --shutdown_slowdrain: on SIGTERM the clients are told `server_restart` one batch at a time over
// 80% of --shutdown_timeout (here 5 s: 4 s), not all at once, and the server still exits 0.
import { describe, it } from "bun:test";
import assert from "node:assert/strict";
import { e2eRuntimes, startServer } from "../support/server.ts";
import { waitFor } from "../support/wait.ts";
import { connect, type RawClient } from "../support/ws_client.ts";

const runtimes = e2eRuntimes(["bun", "deno"]);
const CLIENTS = 20;

for (const runtime of runtimes) {
  describe(`[${runtime}] slow drain on shutdown`, () => {
    it("spreads the server_restart disconnects over the drain period", async () => {
      const server = await startServer(runtime, {
        args: [
          "--public",
          "--norpc",
          "--broadcast_adapter=http",
          "--shutdown_slowdrain",
          "--shutdown_timeout=5",
        ],
      });
      const clients: RawClient[] = [];
      for (let i = 0; i < CLIENTS; i++) {
        const c = await connect(server.wsUrl);
        await c.next((m) => m.type === "welcome", "welcome");
        clients.push(c);
      }
      const told: number[] = [];
      for (const c of clients) {
        c.ws.on("message", (data) => {
          const m = JSON.parse(data.toString()) as { type?: string; reason?: string };
          if (m.type === "disconnect" && m.reason === "server_restart") told.push(Date.now());
        });
      }
      const exited = server.stop("SIGTERM");
      await waitFor(() => told.length === CLIENTS, "every client told server_restart", 15_000);
      assert.equal(await exited, 0, "a clean exit");
      assert.match(
        server.output(),
        new RegExp(`INF Draining ${CLIENTS} active connections slowly for 4\\.0s`),
      );
      const spread = Math.max(...told) - Math.min(...told);
      // 20 clients over 4 s: one every 200 ms (a busy machine only stretches it)
      assert.ok(spread >= 2500, `disconnects spread over ${spread} ms, expected most of the 4 s drain`);
      for (const c of clients) c.close();
    });
  });
}
