// Redis Sentinel mode against a real master + replica + sentinel, per runtime: one server reads
// the `redis` broadcaster's channel, the `redisx` stream and Redis pub/sub (HTTP publications go
// through it) from the master a sentinel names (passwords for the sentinel and the data nodes, a
// database from --redis_url), and keeps delivering after a failover, whether asked for with
// SENTINEL FAILOVER or caused by SIGKILLing the master. Bad Sentinel settings end the process.
import { afterEach, describe, it } from "bun:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../support/ports.ts";
import { publish } from "../support/publish.ts";
import { numSub, type RedisProbe, redisProbe } from "../support/redis_probe.ts";
import { e2eRuntimes, type ServerProcess, startServer } from "../support/server.ts";
import {
  hasService,
  redisCommand,
  type SentinelSet,
  type ServiceProcess,
  startSentinelSet,
} from "../support/services.ts";
import { waitFor } from "../support/wait.ts";
import { connect, type RawClient } from "../support/ws_client.ts";

const runtimes = e2eRuntimes(["bun", "deno"]);
const enabled = hasService("redis-server");
const STREAM = "sentinel-stream";
const ID = JSON.stringify({ channel: "$pubsub", stream_name: STREAM });
const DATA_PASS = "datapass";
const SENTINEL_PASS = "sentpass";
const DB = 2;

/** A broadcaster and pub/sub on Sentinel; the first sentinel address is a dead one. */
async function serverArgs(set: SentinelSet, extra: string[] = []): Promise<string[]> {
  const dead = await freePort();
  return [
    "--public",
    "--norpc",
    "--secret=e2e", // the broadcast endpoint on the main port
    "--broadcast_adapter=http,redis,redisx",
    "--pubsub=redis",
    `--redis_sentinels=:${SENTINEL_PASS}@127.0.0.1:${dead},:${SENTINEL_PASS}@127.0.0.1:${set.sentinels[0].port}`,
    `--redis_url=redis://:${DATA_PASS}@${set.masterName}/${DB}`,
    "--redisx_read_block_milliseconds=500",
    ...extra,
  ];
}

/** A client of the data node `node`, on the server's database. */
function probeOf(node: ServiceProcess): Promise<RedisProbe> {
  return redisProbe(`redis://:${DATA_PASS}@127.0.0.1:${node.port}/${DB}`);
}

async function subscribed(server: ServerProcess): Promise<RawClient> {
  const c = await connect(server.wsUrl);
  await c.next((m) => m.type === "welcome", "welcome");
  c.send({ command: "subscribe", identifier: ID });
  await c.next((m) => m.type === "confirm_subscription", "confirm");
  return c;
}

const body = (data: string) => JSON.stringify({ stream: STREAM, data: JSON.stringify(data) });

/**
 * One publication through each part, against the master `probe` talks to: PUBLISH on
 * __anycable__ (the redis broadcaster; retried until its subscriber is there, each try a new
 * message), XADD (redisx: waits in the stream until read), and HTTP through Redis pub/sub once
 * the server has SUBSCRIBEd to the stream there. Each reaches the client exactly once.
 */
async function deliversThroughEveryPart(
  server: ServerProcess,
  probe: RedisProbe,
  c: RawClient,
  tag: string,
): Promise<void> {
  let tries = 0;
  await waitFor(
    async () => (await probe.publish("__anycable__", body(`redis-${tag}-${++tries}`))) === 1,
    `the redis broadcaster subscribed on the master (${tag})`,
    20_000,
    100,
  );
  assert.equal(
    (await c.next((m) => m.identifier === ID, `redis ${tag}`, 5000)).message,
    `redis-${tag}-${tries}`,
  );

  await probe.xAdd("__anycable__", "*", { payload: body(`redisx-${tag}`) });
  assert.equal((await c.next((m) => m.identifier === ID, `redisx ${tag}`, 20_000)).message, `redisx-${tag}`);

  await waitFor(
    async () => (await numSub(probe, STREAM)) === 1,
    `pub/sub subscribed on the master (${tag})`,
    20_000,
  );
  assert.equal((await publish(`${server.url}/_broadcast`, body(`http-${tag}`))).status, 201);
  assert.equal((await c.next((m) => m.identifier === ID, `http ${tag}`, 10_000)).message, `http-${tag}`);

  // a marker through pub/sub: a duplicate of anything above would have come before it
  assert.equal((await publish(`${server.url}/_broadcast`, body(`marker-${tag}`))).status, 201);
  assert.equal((await c.next((m) => m.identifier === ID, `marker ${tag}`)).message, `marker-${tag}`);
  assert.deepEqual(
    c.messages.filter((m) => (m as { identifier?: string }).identifier === ID),
    [],
    `nothing else (${tag})`,
  );
}

for (const runtime of runtimes) {
  describe.if(enabled)(`[${runtime}] redis sentinel`, () => {
    let set: SentinelSet | undefined;
    let server: ServerProcess | undefined;
    const probes: RedisProbe[] = [];
    const clients: RawClient[] = [];
    afterEach(async () => {
      for (const c of clients.splice(0)) c.close();
      await Promise.all(probes.splice(0).map((p) => p.close().catch(() => {})));
      await server?.stop("SIGKILL");
      await set?.stop();
      server = set = undefined;
    });

    async function start(): Promise<{ set: SentinelSet; server: ServerProcess; client: RawClient }> {
      set = await startSentinelSet({ dataPassword: DATA_PASS, sentinelPassword: SENTINEL_PASS });
      server = await startServer(runtime, { args: await serverArgs(set) });
      await server.waitForOutput("subscribed to Redis channel");
      const client = await subscribed(server);
      clients.push(client);
      return { set, server, client };
    }

    async function probe(node: ServiceProcess): Promise<RedisProbe> {
      const p = await probeOf(node);
      probes.push(p);
      return p;
    }

    it("serves every Redis part from the master a sentinel names, and again after SENTINEL FAILOVER", async () => {
      const { set, server, client } = await start();
      const first = set.nodes[0];
      assert.equal((await set.master()).port, first.port);
      assert.match(
        server.output(),
        /Starting Redis pub\/sub: master mymaster via sentinels 127\.0\.0\.1:\d+,127\.0\.0\.1:\d+/,
      );
      assert.ok(
        !server.output().includes(DATA_PASS) && !server.output().includes(SENTINEL_PASS),
        "no password in the log",
      );
      await deliversThroughEveryPart(server, await probe(first), client, "before");

      await set.replicaReady();
      assert.equal(
        String(await redisCommand(set.sentinels[0], SENTINEL_PASS, ["SENTINEL", "FAILOVER", "mymaster"])),
        "OK",
      );
      const promoted = set.nodes[1];
      await server.waitForOutput(
        `Redis Sentinel: master mymaster moved to 127.0.0.1:${promoted.port}`,
        20_000,
      );
      await deliversThroughEveryPart(server, await probe(promoted), client, "after");
      // the server's connections left the old master (now a replica of the new one)
      const old = await probe(first);
      assert.equal(await numSub(old, "__anycable__"), 0);
      assert.equal(await numSub(old, STREAM), 0);
    });

    it("keeps serving while the master is SIGKILLed and delivers from the replica Sentinel promotes", async () => {
      const { set, server, client } = await start();
      const [first, replica] = set.nodes;
      await deliversThroughEveryPart(server, await probe(first), client, "before");
      await set.replicaReady();
      await first.stop();
      await server.waitForOutput("lost connection to Redis", 10_000);
      assert.equal((await fetch(`${server.url}/health`)).status, 200);
      await server.waitForOutput(
        `Redis Sentinel: master mymaster moved to 127.0.0.1:${replica.port}`,
        20_000,
      );
      await deliversThroughEveryPart(server, await probe(replica), client, "after");
      assert.equal(server.proc.exitCode, null, "still running");
    });

    it("exits 1 like an unreachable Redis when no sentinel knows the master, or none answers", async () => {
      set = await startSentinelSet({ dataPassword: DATA_PASS, sentinelPassword: SENTINEL_PASS });
      const dir = mkdtempSync(join(tmpdir(), "acts-sentinel-"));
      const file = join(dir, "anycable.toml");
      writeFileSync(file, "[redis]\nmax_reconnect_attempts = 1\n");
      const base = ["--public", "--norpc", "--broadcast_adapter=redis", `--config-path=${file}`];

      server = await startServer(runtime, {
        args: [
          ...base,
          `--redis_sentinels=:${SENTINEL_PASS}@127.0.0.1:${set.sentinels[0].port}`,
          "--redis_url=redis://nosuchmaster",
        ],
      });
      assert.equal(await server.exited, 1);
      assert.match(
        server.output(),
        /ERR failed to reconnect to Redis: attempts exceeded error=.*Redis Sentinel does not know master \\"nosuchmaster\\"/,
      );

      const dead = await freePort();
      server = await startServer(runtime, {
        args: [...base, `--redis_sentinels=127.0.0.1:${dead}`, "--redis_url=redis://mymaster"],
      });
      assert.equal(await server.exited, 1);
      assert.match(
        server.output(),
        new RegExp(
          `no Redis Sentinel could name master \\\\"mymaster\\\\" \\(127\\.0\\.0\\.1:${dead}: [^)]*ECONNREFUSED`,
        ),
      );
    });

    it("refuses to start with a malformed sentinel address, naming the flag", async () => {
      server = await startServer(runtime, {
        noWait: true,
        args: [
          "--public",
          "--norpc",
          "--pubsub=redis",
          "--redis_sentinels=127.0.0.1:26379,:secret@host:nope",
          "--redis_url=redis://mymaster",
        ],
      });
      assert.equal(await server.exited, 1);
      assert.match(server.output(), /invalid --redis_sentinels entry "\*\*\*@host:nope"/);
      assert.ok(!server.output().includes("secret"), server.output());
    });
  });
}
