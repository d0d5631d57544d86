// Multi-node clusters over a real redis-server: Redis pub/sub between nodes (one node under Bun,
// the other under Deno), the redisx broadcaster (Redis Streams, as anycable-rb publishes), and the
// faults: Redis killed and restarted mid-stream, a redisx node SIGKILLed with entries pending,
// Redis down at startup.
import { afterAll, afterEach, beforeAll, describe, it } from "bun:test";
import assert from "node:assert/strict";
import { freePort } from "../support/ports.ts";
import { publish } from "../support/publish.ts";
import { numSub, type RedisProbe as Redis, redisProbe as redisClient } from "../support/redis_probe.ts";
import { e2eRuntimes, type ServerProcess, type ServerRuntime, startServer } from "../support/server.ts";
import { hasService, type ServiceProcess, startRedis } from "../support/services.ts";
import { waitFor } from "../support/wait.ts";
import { connect, type RawClient } from "../support/ws_client.ts";

const runtimes = e2eRuntimes(["bun", "deno"]);
const enabled = hasService("redis-server");
const STREAM = "cluster-stream";
const ID = JSON.stringify({ channel: "$pubsub", stream_name: STREAM });

/** The other runtime for node B (a mixed cluster), or the same one when only one is enabled. */
function otherThan(r: ServerRuntime): ServerRuntime {
  const other = runtimes.find((x) => x !== r);
  return other ?? r;
}

const nodeArgs = (redisUrl: string, extra: string[] = []) => [
  "--public",
  "--norpc",
  "--secret=e2e", // puts the broadcast endpoint on the main port (--public drops its auth)
  "--broadcast_adapter=http,redisx",
  "--pubsub=redis",
  `--redis_url=${redisUrl}`,
  "--redisx_read_block_milliseconds=500",
  ...extra,
];

/** anycable-rb's redisx adapter: XADD <stream> * payload <broadcast JSON>. */
async function xadd(c: Redis, payload: unknown): Promise<void> {
  await c.xAdd("__anycable__", "*", { payload: JSON.stringify(payload) });
}

interface Subscriber {
  client: RawClient;
  sid: string;
}

async function subscriber(server: ServerProcess): Promise<Subscriber> {
  const client = await connect(server.wsUrl);
  const sid = String((await client.next((m) => m.type === "welcome", "welcome")).sid);
  client.send({ command: "subscribe", identifier: ID });
  await client.next((m) => m.type === "confirm_subscription", "confirm");
  return { client, sid };
}

/**
 * Every subscriber gets exactly `expected`, in order unless `anyOrder` (redisx entries handled by
 * different nodes travel separately: their relative order is not kept, in anycable-go either).
 */
async function receivedExactly(
  subs: Subscriber[],
  expected: unknown[],
  what: string,
  anyOrder = false,
): Promise<void> {
  const sorted = (xs: unknown[]) => (anyOrder ? xs.map((x) => JSON.stringify(x)).sort() : xs);
  for (const [i, { client }] of subs.entries()) {
    const got: unknown[] = [];
    for (const _ of expected)
      got.push((await client.next((m) => m.identifier === ID, `${what} #${i}`)).message);
    assert.deepEqual(sorted(got), sorted(expected), `${what}: subscriber ${i}`);
  }
}

function noDuplicates(subs: Subscriber[], what: string): void {
  for (const [i, { client }] of subs.entries()) {
    assert.deepEqual(
      client.messages.filter((m) => (m as { identifier?: string }).identifier === ID),
      [],
      `${what}: nothing more on subscriber ${i}`,
    );
  }
}

/**
 * Publishes a marker and waits for it everywhere: a copy of an earlier message would have arrived
 * before it on the same connection, so none may be left over.
 */
async function settled(subs: Subscriber[], publishMarker: (m: string) => Promise<void>, what: string) {
  const marker = `marker-${Math.random()}`;
  await publishMarker(marker);
  await receivedExactly(subs, [marker], `${what} (marker)`);
  noDuplicates(subs, what);
}

function consumerOf(server: ServerProcess): string {
  const m = server.output().match(/Starting Redis broadcaster at .*consumer=([\w-]{6})/);
  if (!m) throw new Error(`no consumer name in:\n${server.output()}`);
  return m[1];
}

for (const runtime of runtimes) {
  const other = otherThan(runtime);

  describe.if(enabled)(`[${runtime}] redis cluster (node B under ${other})`, () => {
    let redis: ServiceProcess;
    let probe: Redis;
    let a: ServerProcess;
    let b: ServerProcess;
    const clients: RawClient[] = [];
    beforeAll(async () => {
      redis = await startRedis();
      probe = await redisClient(redis.url);
      [a, b] = await Promise.all([
        startServer(runtime, { args: nodeArgs(redis.url) }),
        startServer(other, { args: nodeArgs(redis.url) }),
      ]);
      await Promise.all([a.waitForOutput("INF connected"), b.waitForOutput("INF connected")]);
    });
    afterEach(() => {
      for (const c of clients.splice(0)) c.close();
    });
    afterAll(async () => {
      await Promise.all([a?.stop("SIGKILL"), b?.stop("SIGKILL")]);
      await probe?.close();
      await redis?.stop();
    });

    async function subscribers(): Promise<Subscriber[]> {
      const subs = await Promise.all([subscriber(a), subscriber(a), subscriber(b), subscriber(b)]);
      clients.push(...subs.map((s) => s.client));
      // Node B SUBSCRIBEs to the stream on its first local subscriber: both nodes hold it now.
      await waitFor(async () => (await numSub(probe, STREAM)) === 2, "both nodes subscribed to the stream");
      return subs;
    }

    it("delivers an HTTP publication accepted by node A to the clients of A and B exactly once", async () => {
      const subs = await subscribers();
      const http = (data: string) => publish(`${a.url}/_broadcast`, { stream: STREAM, data });
      assert.equal((await http(JSON.stringify({ n: 1 }))).status, 201);
      assert.equal((await http(JSON.stringify({ n: 2 }))).status, 201);
      await receivedExactly(subs, [{ n: 1 }, { n: 2 }], "the HTTP publications");
      await settled(subs, async (m) => void (await http(JSON.stringify(m))), "HTTP");
      // The publication went through Redis: the stream's Redis channel is the stream's name.
      assert.equal(await numSub(probe, STREAM), 2);
    });

    it("delivers redisx publications (as anycable-rb makes them) once per client, batches and meta included", async () => {
      const subs = await subscribers();
      await xadd(probe, { stream: STREAM, data: JSON.stringify("x1") });
      await xadd(probe, [
        { stream: STREAM, data: JSON.stringify("x2") },
        { stream: STREAM, data: JSON.stringify("x3"), meta: { exclude_socket: subs[2].sid } },
      ]);
      await receivedExactly([subs[0], subs[1], subs[3]], ["x1", "x2", "x3"], "redisx", true);
      await receivedExactly([subs[2]], ["x1", "x2"], "redisx, excluded from x3", true);
      await settled(subs, (m) => xadd(probe, { stream: STREAM, data: JSON.stringify(m) }), "redisx");
      await waitFor(async () => (await probe.xLen("__anycable__")) === 0, "entries acked and deleted");
    });

    it("sends a remote disconnect accepted by node A to the session on node B", async () => {
      const onB = await subscriber(b);
      const onA = await subscriber(a);
      clients.push(onB.client, onA.client);
      const res = await publish(`${a.url}/_broadcast`, {
        command: "disconnect",
        payload: { identifier: JSON.stringify({ sid: onB.sid }), reconnect: false },
      });
      assert.equal(res.status, 201);
      assert.deepEqual(await onB.client.next((m) => m.type === "disconnect", "disconnect on B"), {
        type: "disconnect",
        reason: "remote",
        reconnect: false,
      });
      assert.equal(await onB.client.waitClosed(), 1000);
      onA.client.send({ command: "ping" });
      await onA.client.next((m) => m.type === "pong", "A's client still served");
    });

    it("leaves the stream's Redis channel on a node whose last subscriber left", async () => {
      const onA = await subscriber(a);
      const onB = await subscriber(b);
      clients.push(onA.client);
      await waitFor(async () => (await numSub(probe, STREAM)) === 2, "both nodes subscribed");
      onB.client.close();
      await waitFor(async () => (await numSub(probe, STREAM)) === 1, "node B unsubscribed");
      await publish(`${a.url}/_broadcast`, { stream: STREAM, data: '"still"' });
      assert.equal((await onA.client.next((m) => m.identifier === ID, "A still gets it")).message, "still");
    });
  });

  describe.if(enabled)(`[${runtime}] redis cluster faults`, () => {
    const servers: ServerProcess[] = [];
    const clients: RawClient[] = [];
    let redis: ServiceProcess | undefined;
    const probes: Redis[] = [];
    afterEach(async () => {
      for (const c of clients.splice(0)) c.close();
      await Promise.all(servers.splice(0).map((s) => s.stop("SIGKILL")));
      for (const p of probes.splice(0)) await p.close().catch(() => {});
      await redis?.stop();
      redis = undefined;
    });

    it("redisx: a SIGKILLed node's pending entries are claimed by another, each delivered once", async () => {
      redis = await startRedis();
      const probe = await redisClient(redis.url);
      probes.push(probe);
      // A long block: a stopped node's read stays blocked (and gets the next entry) for 3 s.
      const args = nodeArgs(redis.url, ["--redisx_read_block_milliseconds=3000"]);
      const nodes = await Promise.all([
        startServer(runtime, { args }),
        startServer(other, { args }),
        startServer(runtime, { args }),
      ]);
      servers.push(...nodes);
      await Promise.all(nodes.map((n) => n.waitForOutput("INF connected")));
      const subs = await Promise.all(nodes.map((n) => subscriber(n)));
      clients.push(...subs.map((s) => s.client));
      await waitFor(async () => (await numSub(probe, STREAM)) === 3, "three nodes subscribed");
      // Three nodes, one consumer group: each publication reaches every client once.
      for (let i = 0; i < 6; i++) await xadd(probe, { stream: STREAM, data: JSON.stringify(i) });
      await receivedExactly(subs, [0, 1, 2, 3, 4, 5], "3-node redisx", true);

      // Node C stops (SIGSTOP) with its XREADGROUP blocked: Redis hands it the next entry, which
      // it can neither handle nor ack; then it is SIGKILLed with the entry pending. (Stopped just
      // between two reads it gets nothing: let it run again and retry.)
      const victim = nodes[2];
      const consumer = consumerOf(victim);
      await waitFor(
        async () => (await probe.xInfoConsumers("__anycable__", "bx")).length === 3,
        "three consumers in the group",
      );
      const survivors = subs.slice(0, 2);
      const sent: number[] = [];
      let pendingOnVictim = 0;
      for (let attempt = 0; attempt < 3 && pendingOnVictim === 0; attempt++) {
        victim.proc.kill("SIGSTOP");
        for (let i = 0; i < 10 && pendingOnVictim === 0; i++) {
          const n = 100 * (attempt + 1) + i;
          await xadd(probe, { stream: STREAM, data: JSON.stringify(n) });
          sent.push(n);
          const pending = await probe.xPending("__anycable__", "bx");
          pendingOnVictim = Number(
            pending.consumers?.find((c) => c.name === consumer)?.deliveriesCounter ?? 0,
          );
        }
        if (pendingOnVictim === 0) {
          victim.proc.kill("SIGCONT");
          const last = sent[sent.length - 1];
          await waitFor(
            () => subs[2].client.messages.some((m) => (m as { message?: unknown }).message === last),
            "the victim running again",
          );
        }
      }
      assert.ok(pendingOnVictim > 0, "the stopped node holds a pending entry");
      victim.proc.kill("SIGKILL");
      await victim.exited;
      // Claimed once idle longer than the block interval by a surviving node, and delivered once.
      await receivedExactly(survivors, sent, "after the SIGKILL", true);
      await settled(
        survivors,
        (m) => xadd(probe, { stream: STREAM, data: JSON.stringify(m) }),
        "after the claim",
      );
      await waitFor(
        async () => (await probe.xPending("__anycable__", "bx")).pending === 0,
        "nothing pending",
      );
    }, 40_000);

    it("Redis killed and restarted: pub/sub resubscribes, redisx loses nothing, nothing is duplicated", async () => {
      redis = await startRedis();
      const nodes = await Promise.all([
        startServer(runtime, { args: nodeArgs(redis.url) }),
        startServer(other, { args: nodeArgs(redis.url) }),
      ]);
      servers.push(...nodes);
      await Promise.all(nodes.map((n) => n.waitForOutput("INF connected")));
      const subs = await Promise.all([subscriber(nodes[0]), subscriber(nodes[1])]);
      clients.push(...subs.map((s) => s.client));
      let probe = await redisClient(redis.url);
      probes.push(probe);
      await waitFor(async () => (await numSub(probe, STREAM)) === 2, "both nodes subscribed");
      await publish(`${nodes[0].url}/_broadcast`, { stream: STREAM, data: '"before"' });
      await receivedExactly(subs, ["before"], "before the restart");

      await redis.stop(); // SIGKILL
      redis = await redis.restart(); // same port, empty
      probe = await redisClient(redis.url);
      probes.push(probe);
      // Published as soon as Redis is back, before the nodes have reconnected: it waits in the
      // stream (the lost group is created again from the stream's start) and is handled once.
      await xadd(probe, { stream: STREAM, data: '"x-after"' });
      await Promise.all(nodes.map((n) => n.waitForOutput("INF reconnected channel=", 15_000)));
      await waitFor(async () => (await numSub(probe, STREAM)) === 2, "both nodes resubscribed", 10_000);
      await waitFor(async () => (await probe.xLen("__anycable__")) === 0, "the entry handled and deleted");
      await publish(`${nodes[1].url}/_broadcast`, { stream: STREAM, data: '"http-after"' });
      // The marker takes the same way as "http-after" (node B's pub/sub, which may still hold it in
      // its queue for a moment after the restart), so it cannot overtake it on either node.
      const marker = '"the-end"';
      await publish(`${nodes[1].url}/_broadcast`, { stream: STREAM, data: marker });
      const ours = (client: RawClient) =>
        client.messages.flatMap((m) => {
          const msg = m as { identifier?: string; message?: unknown };
          return msg.identifier === ID ? [msg.message] : [];
        });
      await Promise.all(
        subs.map(({ client }) =>
          client.next((m) => m.identifier === ID && m.message === "the-end", "the marker"),
        ),
      );
      // The handled entry is re-transmitted through the handling node's pub/sub, which may still
      // be reconnecting its publisher (each connection has its own backoff): it waits in that
      // node's queue and comes after the marker then. It is never lost on the handling node.
      await waitFor(
        () => subs.some(({ client }) => ours(client).includes("x-after")),
        "the redisx entry reached the handling node's clients",
        10_000,
      );
      // A node still resubscribing when it was fanned out misses it (Redis pub/sub between nodes
      // is at-most-once, in anycable-go as well); nothing arrives twice.
      // (next() took the marker out of each client's messages.)
      for (const [i, { client }] of subs.entries()) {
        const messages = ours(client);
        assert.ok(
          JSON.stringify([...messages].sort()) === '["http-after","x-after"]' ||
            JSON.stringify(messages) === '["http-after"]',
          `client ${i}: each once (${JSON.stringify(messages)})`,
        );
      }
    }, 40_000);

    it("Redis down at startup: serves local clients, one log line per burst, delivers once Redis is up", async () => {
      const port = await freePort();
      const url = `redis://127.0.0.1:${port}`;
      const server = await startServer(runtime, {
        args: [
          "--public",
          "--norpc",
          "--secret=e2e",
          "--broadcast_adapter=http",
          "--pubsub=redis",
          `--redis_url=${url}`,
        ],
      });
      servers.push(server);
      await server.waitForOutput("next Redis reconnect attempt");
      assert.equal((await fetch(`${server.url}/health`)).status, 200);
      const sub = await subscriber(server);
      clients.push(sub.client);
      sub.client.send({ command: "ping" });
      await sub.client.next((m) => m.type === "pong", "served while Redis is down");
      // Accepted now, queued (bounded) until Redis is reachable.
      assert.equal(
        (await publish(`${server.url}/_broadcast`, { stream: STREAM, data: '"queued"' })).status,
        201,
      );
      redis = await startRedis(port);
      await server.waitForOutput("INF reconnected to Redis", 15_000);
      await receivedExactly([sub], ["queued"], "the publication queued while Redis was down");
      const out = server.output();
      assert.equal(out.match(/next Redis reconnect attempt/g)?.length, 1, out);
      assert.equal(out.match(/INF reconnected to Redis/g)?.length, 1, out);
      assert.doesNotMatch(out, /ERR/);
    }, 30_000);
  });
}
