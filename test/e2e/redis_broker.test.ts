// The Redis broker across nodes (--broker=redis --pubsub=redis on a real redis-server; node A
// under one runtime, node B under the other): an @anycable/core client that loses its socket on
// node A reconnects to node B, restores its session there (no RPC: --norpc) and catches up through
// history with the offsets and epoch node A gave; presence joined on one node is seen on the
// other and through node B's REST API; a node that dies has its clients' presence expire (swept by
// a survivor); Redis restarted empty gives a new epoch, and the old one is refused.
import { afterAll, afterEach, beforeAll, describe, it } from "bun:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import type { Channel } from "@anycable/core";
import {
  closeCables,
  collect,
  coreCable,
  extClient,
  framesUntil,
  Gate,
  type Meta,
  type Msg,
  newWire,
  pubId,
  subscribeRaw,
  unique,
} from "../support/ext_clients.ts";
import { publish } from "../support/publish.ts";
import { e2eRuntimes, type ServerProcess, type ServerRuntime, startServer } from "../support/server.ts";
import { hasService, type ServiceProcess, startRedis } from "../support/services.ts";
import { waitFor } from "../support/wait.ts";

const SECRET = "redis-broker-e2e";
const derive = (phrase: string) => createHmac("sha256", SECRET).update(phrase).digest("hex");
const BROADCAST_KEY = derive("broadcast-cable");
const API_KEY = derive("api-cable");
const runtimes = e2eRuntimes(["bun", "deno"]);
const enabled = hasService("redis-server");

const otherThan = (r: ServerRuntime): ServerRuntime => runtimes.find((x) => x !== r) ?? r;

const nodeArgs = (redisUrl: string) => [
  "--norpc",
  `--secret=${SECRET}`,
  "--noauth",
  "--public_streams",
  "--broker=redis",
  "--pubsub=redis",
  `--redis_url=${redisUrl}`,
  "--broadcast_adapter=http",
  "--presence_ttl=2",
  "--log_level=debug",
];

afterEach(() => closeCables());

for (const runtime of runtimes) {
  const other = otherThan(runtime);

  describe.if(enabled)(`[${runtime}] Redis broker cluster (node B under ${other})`, () => {
    let redis: ServiceProcess;
    let a: ServerProcess;
    let b: ServerProcess;
    const broadcast = (node: ServerProcess, stream: string, data: unknown) =>
      publish(`${node.url}/_broadcast`, { stream, data: JSON.stringify(data) }, BROADCAST_KEY);
    const users = async (node: ServerProcess, stream: string) => {
      const res = await fetch(`${node.url}/api/presence/${encodeURIComponent(stream)}/users`, {
        headers: { authorization: `Bearer ${API_KEY}` },
      });
      assert.equal(res.status, 200);
      const body = (await res.json()) as { total: number; records?: { id: string }[] };
      return { total: body.total, ids: (body.records ?? []).map((r) => r.id).sort() };
    };

    beforeAll(async () => {
      redis = await startRedis();
      [a, b] = await Promise.all([
        startServer(runtime, { args: nodeArgs(redis.url) }),
        startServer(other, { args: nodeArgs(redis.url) }),
      ]);
    });
    afterAll(async () => {
      closeCables();
      await Promise.all([a?.stop(), b?.stop()]);
      await redis?.stop();
    });

    it("announces the Redis broker with its settings", () => {
      for (const node of [a, b]) {
        assert.match(
          node.output(),
          new RegExp(
            `Using Redis broker at 127\\.0\\.0\\.1:${redis.port} \\(history limit: 100, history ttl: 300s, sessions ttl: 300s, presence ttl: 2s\\)`,
          ),
        );
      }
    });

    it("a core client dropped on node A restores on node B and catches up, in order, complete", async () => {
      const stream = `cross/${runtime}`;
      const wire = newWire();
      const gate = new Gate();
      let target: string | undefined;
      const cable = await coreCable(a.wsUrl, wire, { gate, reconnectTo: () => target });
      const channel: Channel = cable.streamFrom(stream);
      const { deliveries } = collect(channel);
      await channel.ensureSubscribed();
      for (const n of [1, 2]) assert.equal((await broadcast(a, stream, { n })).status, 201);
      await waitFor(() => deliveries.length === 2, "two live messages on node A");
      const epoch = deliveries[0]!.meta!.epoch;
      const oldSid = cable.sessionId;

      gate.shut();
      target = b.wsUrl;
      wire.sockets[0]!.terminate();
      await waitFor(() => gate.reached === 1, "the client reconnecting");
      const N = 5;
      // published through node B while the client is away: node B gives the next offsets
      for (let n = 3; n < 3 + N; n++) assert.equal((await broadcast(b, stream, { n })).status, 201);
      gate.open();
      await waitFor(() => unique(deliveries).length === 2 + N, "the missed messages, from node B", 15_000);
      // and a live one through node A reaches the client on node B (Redis pub/sub)
      assert.equal((await broadcast(a, stream, { n: 3 + N })).status, 201);
      await waitFor(() => unique(deliveries).length === 3 + N, "a live message published on node A");

      const got = unique(deliveries);
      assert.deepEqual(
        got.map((d) => d.msg),
        Array.from({ length: 3 + N }, (_, i) => ({ n: i + 1 })),
      );
      assert.deepEqual(
        got.map((d) => d.meta),
        Array.from({ length: 3 + N }, (_, i): Meta => ({ stream, epoch, offset: i + 1 })),
      );
      assert.equal(new URL(wire.urls[1]!).port, String(b.port), "the reconnect went to node B");
      const welcome = wire.inbound[1]![0]!;
      assert.equal(welcome.type, "welcome");
      assert.equal(welcome.restored, true, "node B restored node A's session");
      assert.equal(
        wire.outbound[1]!.filter((m) => m.command === "subscribe").length,
        0,
        "no resubscribe: history instead",
      );
      await b.waitForOutput(new RegExp(`DBG session restored .*old_sid=${oldSid}`));
    });

    it("shows presence joined on node A to node B's clients and REST API, and back", async () => {
      const stream = `presence/${runtime}`;
      const onA = await coreCable(a.wsUrl, newWire());
      const onB = await coreCable(b.wsUrl, newWire());
      const chA = onA.streamFrom(stream);
      const chB = onB.streamFrom(stream);
      const eventsB: Msg[] = [];
      const eventsA: Msg[] = [];
      chA.on("presence", (e) => {
        if (e.type !== "info") eventsA.push(e as unknown as Msg);
      });
      chB.on("presence", (e) => {
        if (e.type !== "info") eventsB.push(e as unknown as Msg);
      });
      await Promise.all([chA.ensureSubscribed(), chB.ensureSubscribed()]);
      await chA.presence.join("alice", { name: "Alice" });
      await waitFor(() => eventsB.length === 1, "alice's join on node B");
      assert.deepEqual(eventsB, [{ type: "join", id: "alice", info: { name: "Alice" } }]);
      assert.deepEqual(await users(b, stream), { total: 1, ids: ["alice"] });
      await chB.presence.join("bob", { name: "Bob" });
      await waitFor(() => eventsA.length === 2, "bob's join on node A");
      assert.deepEqual(await chA.presence.info(), { alice: { name: "Alice" }, bob: { name: "Bob" } });
      await chA.presence.leave();
      await waitFor(() => eventsB.length === 3, "alice's leave on node B");
      assert.deepEqual(eventsB[2], { type: "leave", id: "alice" });
      assert.deepEqual(await users(b, stream), { total: 1, ids: ["bob"] });
      assert.deepEqual(
        eventsA.map((e) => `${e.type}:${e.id}`),
        ["join:alice", "join:bob", "leave:alice"],
        "each event once on node A",
      );
    });

    it("expires the presence of a killed node's clients after --presence_ttl, seen on the others", async () => {
      const stream = `dying/${runtime}`;
      const c = await startServer(runtime, { args: nodeArgs(redis.url) });
      const watcher = await extClient(a.wsUrl);
      await subscribeRaw(watcher.c, pubId(stream));
      const doomed = await extClient(c.wsUrl);
      await subscribeRaw(doomed.c, pubId(stream));
      doomed.c.send({ command: "join", identifier: pubId(stream), presence: { id: "carol", info: "C" } });
      const presence = (m: Msg) => m.type === "presence" && (m.message as Msg).id === "carol";
      const [join] = (await framesUntil(watcher.c, presence, "carol's join on node A")).filter(presence);
      assert.deepEqual(join!.message, { type: "join", id: "carol", info: "C" });
      assert.deepEqual(await users(b, stream), { total: 1, ids: ["carol"] });
      const killedAt = Date.now();
      await c.stop("SIGKILL");
      const [leave] = (await framesUntil(watcher.c, presence, "carol's leave on node A")).filter(presence);
      assert.deepEqual(leave!.message, { type: "leave", id: "carol" });
      assert.ok(Date.now() - killedAt >= 1900, "not before the presence TTL");
      assert.deepEqual(await users(b, stream), { total: 0, ids: [] });
      doomed.c.close();
      watcher.c.close();
    });

    it("starts a new epoch when Redis comes back empty; the old one gets reject_history", async () => {
      const stream = `restart/${runtime}`;
      const first = await extClient(b.wsUrl);
      await subscribeRaw(first.c, pubId(stream));
      assert.equal((await broadcast(a, stream, "before")).status, 201);
      const [before] = (await framesUntil(first.c, (m) => m.message === "before", "before")).filter(
        (m) => m.message === "before",
      );
      const oldEpoch = String(before!.epoch);
      redis = await redis.stop().then(() => redis.restart());
      await Promise.all([
        a.waitForOutput(/reconnected to Redis \(broker\)/, 15_000),
        b.waitForOutput(/reconnected to Redis \(broker\)/, 15_000),
      ]);
      // pub/sub resubscribed too: a publication through node A reaches node B's client
      await waitFor(
        async () => {
          await broadcast(a, stream, "after");
          return first.c.messages.some((m) => (m as Msg).message === "after");
        },
        "a publication after the restart",
        15_000,
      );
      const after = first.c.messages.find((m) => (m as Msg).message === "after") as Msg;
      assert.notEqual(after.epoch, oldEpoch, "a new epoch");
      const late = await extClient(a.wsUrl);
      const id = pubId(stream);
      late.c.send({
        command: "subscribe",
        identifier: id,
        history: { streams: { [stream]: { epoch: oldEpoch, offset: 1 } } },
      });
      const frames = await framesUntil(
        late.c,
        (m) => m.identifier === id && (m.type === "reject_history" || m.type === "confirm_history"),
        "the answer to the old epoch",
      );
      assert.equal(frames.at(-1)!.type, "reject_history");
      late.c.close();
      first.c.close();
    });
  });
}
