// Adaptive RPC concurrency (--rpc_concurrency=0) against a @grpc/grpc-js backend whose capacity
// the test changes: the limit (rpc_capacity_num) falls while the backend answers
// RESOURCE_EXHAUSTED, and rises again once the backend keeps up but calls queue.
import { afterAll, beforeAll, describe, it } from "bun:test";
import assert from "node:assert/strict";
import { type GrpcBackend, startGrpcBackend } from "../support/grpc_backend.ts";
import { metric } from "../support/publish.ts";
import { e2eRuntimes, type ServerProcess, startServer } from "../support/server.ts";
import { waitFor } from "../support/wait.ts";
import { connect, type RawClient } from "../support/ws_client.ts";

const runtimes = e2eRuntimes(["bun", "deno"]);
const CLIENTS = 30;
const identifier = JSON.stringify({ channel: "ChatChannel", room: "adaptive" });

for (const runtime of runtimes) {
  describe(`[${runtime}] adaptive RPC concurrency (--rpc_concurrency=0)`, () => {
    let backend: GrpcBackend;
    let server: ServerProcess;
    const clients: RawClient[] = [];
    let running = true;
    const capacity = () => metric(`${server.url}/metrics`, "rpc_capacity_num");

    beforeAll(async () => {
      backend = await startGrpcBackend();
      server = await startServer(runtime, {
        args: [
          `--rpc_host=${backend.address}`,
          "--broadcast_adapter=http",
          "--metrics_http=/metrics",
          "--rpc_concurrency=0",
          "--rpc_concurrency_initial=20",
          "--rpc_concurrency_min=2",
          "--rpc_concurrency_max=40",
          "--log_level=debug",
        ],
      });
    });
    afterAll(async () => {
      running = false;
      for (const c of clients) c.close();
      await server?.stop();
      await backend?.stop();
    });

    it("announces the adaptive limits as AnyCable Pro does", () => {
      assert.match(
        server.output(),
        /RPC controller initialized: .*\(concurrency: auto \(initial=20, min=2, max=40\), impl: grpc/,
      );
    });

    it("lowers the limit while the backend is exhausted and raises it when calls queue", async () => {
      assert.equal(await capacity(), 20, "the initial limit");
      for (let i = 0; i < CLIENTS; i++) {
        const c = await connect(server.wsUrl);
        await c.next((m) => m.type === "welcome", "welcome");
        c.send({ command: "subscribe", identifier });
        await c.next((m) => m.type === "confirm_subscription", "confirm");
        clients.push(c);
      }
      // every client keeps one perform in flight: 30 calls wanted at all times
      backend.delayMs = 50;
      backend.capacity = 4;
      for (const c of clients) {
        void (async () => {
          while (running) {
            c.send({ command: "message", identifier, data: JSON.stringify({ action: "echo", text: "x" }) });
            try {
              await c.next((m) => (m.message as { echo?: string } | undefined)?.echo === "x", "echo", 20_000);
            } catch {
              return;
            }
          }
        })();
      }
      await waitFor(
        async () => (await capacity()) <= 6,
        "the limit falling to the backend's capacity",
        20_000,
      );
      assert.ok(backend.exhausted > 0, "the backend did refuse calls");
      await server.waitForOutput(/DBG RPC concurrency changed .*from=20 to=15/);
      const low = await capacity();

      backend.capacity = Number.POSITIVE_INFINITY;
      await waitFor(async () => (await capacity()) >= low + 5, "the limit rising with the backlog", 20_000);
      running = false;
    });
  });
}
