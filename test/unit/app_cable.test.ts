import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { composeCable } from "../../src/app/cable.ts";
import { loadConfig } from "../../src/config/index.ts";
import { Logger } from "../../src/log/logger.ts";
import type { Runtime } from "../../src/runtime/types.ts";

function configOf(argv: string[]) {
  const loaded = loadConfig({ argv, env: {}, readFile: () => undefined });
  if (loaded.kind !== "run") throw new Error(JSON.stringify(loaded));
  return loaded.config;
}

// Composition binds nothing: listeners are opened by the listeners service when it starts.
const noRuntime = { name: "bun", http2MaxStreamsPerSession: 0 } as unknown as Runtime;

async function compose(argv: string[]) {
  const lines: string[] = [];
  const logger = new Logger("info", "text", {}, { write: (l) => lines.push(l) });
  const cable = await composeCable({ config: configOf(argv), runtime: noRuntime, logger, embedded: true });
  return { cable, log: lines.join("\n") };
}

describe("composeCable", () => {
  it("builds the Redis parts: pub/sub (derived from redisx, as anycable-go) and each broadcaster", async () => {
    const { cable, log } = await compose(["--norpc", "--broadcast_adapter=http,redis,redisx"]);
    assert.deepEqual(cable.services.names, [
      "metrics (prometheus)",
      "pubsub (redis)",
      "broker (none)",
      "listeners",
      "node",
      "broadcaster (http)",
      "broadcaster (redis)",
      "broadcaster (redisx)",
      "shutdown delay",
    ]);
    assert.doesNotMatch(log, /not served yet/);
  });

  it("orders the services so that dependants stop before what they depend on", async () => {
    const { cable } = await compose(["--norpc", "--broadcast_adapter=http"]);
    assert.deepEqual(cable.services.names, [
      "metrics (prometheus)",
      "pubsub (local)",
      "broker (none)",
      "listeners",
      "node",
      "broadcaster (http)",
      "shutdown delay",
    ]);
  });

  it("announces the broker like anycable-go and says what is not served", async () => {
    const { log } = await compose([
      "--norpc",
      "--broadcast_adapter=http,redisx",
      "--redis_url=redis://elsewhere:6379",
    ]);
    assert.match(log, /INF Using no-op \(legacy\) broker/);
    // REDIS_URL switches pub/sub to Redis, as in anycable-go; Redis, redisx and NATS are served.
    assert.doesNotMatch(log, /not served yet/);
    const nats = await compose(["--norpc", "--broadcast_adapter=http", "--broker=nats"]);
    assert.match(
      nats.log,
      /INF Using NATS broker: nats:\/\/127\.0\.0\.1:4222 \(history limit: 100, history ttl: 300s, sessions ttl: 300s, presence ttl: 15s\)/,
    );
    assert.doesNotMatch(nats.log, /not served yet/);
    assert.ok(nats.cable.services.names.includes("broker (nats)"));
    const plain = await compose(["--norpc", "--broadcast_adapter=http"]);
    assert.doesNotMatch(plain.log, /not served yet/);
  });
});
