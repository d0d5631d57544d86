// The `redis` broadcast adapter against a real redis-server, per runtime.

import { afterEach, describe, it } from "bun:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "redis";
import { freePort } from "../support/ports.ts";
import { metric } from "../support/publish.ts";
import { e2eRuntimes, type ServerProcess, startServer } from "../support/server.ts";
import { hasService, type ServiceProcess, startRedis } from "../support/services.ts";
import { waitFor } from "../support/wait.ts";
import { connect, type RawClient } from "../support/ws_client.ts";

const ID = JSON.stringify({ channel: "$pubsub", stream_name: "redis-stream" });
const all = e2eRuntimes(["bun", "deno", "binary"]);
const runtimes = all.filter((r) => r !== "binary");
const enabled = hasService("redis-server");

async function redisPublish(url: string, message: string): Promise<number> {
  const client = createClient({ url });
  await client.connect();
  try {
    return await client.publish("__anycable__", message);
  } finally {
    await client.close();
  }
}

async function subscribed(server: ServerProcess): Promise<RawClient> {
  const c = await connect(server.wsUrl);
  await c.next((m) => m.type === "welcome", "welcome");
  c.send({ command: "subscribe", identifier: ID });
  await c.next((m) => m.type === "confirm_subscription", "confirm");
  return c;
}

for (const runtime of runtimes) {
  describe.if(enabled)(`[${runtime}] redis broadcast adapter`, () => {
    let server: ServerProcess | undefined;
    let redis: ServiceProcess | undefined;
    afterEach(async () => {
      await server?.stop("SIGKILL");
      await redis?.stop();
      server = redis = undefined;
    });

    const args = (url: string) => [
      "--public",
      "--norpc",
      "--broadcast_adapter=redis",
      `--redis_url=${url}`,
      "--metrics_http=/metrics",
    ];

    it("delivers publications (single and batch) from the __anycable__ channel; bad ones are counted", async () => {
      redis = await startRedis();
      server = await startServer(runtime, { args: args(redis.url) });
      await server.waitForOutput("subscribed to Redis channel");
      const c = await subscribed(server);
      assert.equal(
        await redisPublish(redis.url, JSON.stringify({ stream: "redis-stream", data: '{"n":1}' })),
        1,
      );
      assert.deepEqual((await c.next((m) => m.identifier === ID, "first")).message, { n: 1 });
      await redisPublish(redis.url, "garbage{");
      await redisPublish(
        redis.url,
        JSON.stringify([
          { stream: "redis-stream", data: '{"n":2}' },
          { stream: "redis-stream", data: '{"n":3}' },
        ]),
      );
      assert.deepEqual((await c.next((m) => m.identifier === ID, "second")).message, { n: 2 });
      assert.deepEqual((await c.next((m) => m.identifier === ID, "third")).message, { n: 3 });
      assert.equal(await metric(`${server.url}/metrics`, "failed_broadcast_msg_total"), 1);
      c.close();
    });

    it("keeps serving while Redis is down and resubscribes when it returns", async () => {
      const port = await freePort();
      server = await startServer(runtime, { args: args(`redis://127.0.0.1:${port}`) });
      await server.waitForOutput("next Redis reconnect attempt");
      const c = await subscribed(server);
      assert.equal((await fetch(`${server.url}/health`)).status, 200);
      redis = await startRedis(port);
      await server.waitForOutput("subscribed to Redis channel", 20_000);
      await redisPublish(redis.url, JSON.stringify({ stream: "redis-stream", data: '"late"' }));
      assert.equal((await c.next((m) => m.identifier === ID, "after redis came up")).message, "late");
      // killed mid-run and back on the same port
      await redis.stop();
      redis = await redis.restart();
      await server.waitForOutput("reconnected to Redis channel", 20_000);
      await waitFor(
        async () =>
          (await redisPublish(redis!.url, JSON.stringify({ stream: "redis-stream", data: '"again"' }))) === 1,
        "server resubscribed",
      );
      assert.equal((await c.next((m) => m.identifier === ID, "after restart")).message, "again");
      c.close();
    });

    it("exits 1 once the reconnect attempts are exhausted", async () => {
      const dir = mkdtempSync(join(tmpdir(), "acts-redis-"));
      const port = await freePort();
      const file = join(dir, "anycable.toml");
      writeFileSync(file, "[redis]\nmax_reconnect_attempts = 1\n");
      server = await startServer(runtime, {
        args: [...args(`redis://127.0.0.1:${port}`), `--config-path=${file}`],
      });
      const code = await server.exited;
      assert.equal(code, 1);
      assert.match(server.output(), /Redis reconnect attempts exceeded|failed to connect to Redis/);
    });
  });
}

// The Redis client is loaded only when the adapter is configured: one publication through the
// single-file executable, started in an empty directory, proves the lazily imported module is in
// the bundle.
describe.if(enabled && all.includes("binary"))("[binary] redis broadcast adapter", () => {
  it("delivers a publication from Redis", async () => {
    const redis = await startRedis();
    const cwd = mkdtempSync(join(tmpdir(), "acts-bin-redis-"));
    const server = await startServer("binary", {
      cwd,
      args: ["--public", "--norpc", "--broadcast_adapter=redis", `--redis_url=${redis.url}`],
    });
    try {
      await server.waitForOutput("subscribed to Redis channel");
      const c = await subscribed(server);
      await redisPublish(redis.url, JSON.stringify({ stream: "redis-stream", data: '"from binary"' }));
      assert.equal((await c.next((m) => m.identifier === ID, "publication")).message, "from binary");
      c.close();
    } finally {
      await server.stop("SIGKILL");
      await redis.stop();
    }
  });
});
