// The NATS broker across nodes (--broker=nats --pubsub=nats on one real `nats-server -js`; node A
// under one runtime, node B under the other): an @anycable/core client that loses its socket on
// node A reconnects to node B, restores its session there (no RPC: --norpc) and catches up through
// history with the offsets and epoch node A gave, kept in anycable-go's JetStream layout; presence
// joined on one node is seen on the other and through node B's REST API; a node that dies has its
// clients' presence swept by a survivor after --presence_ttl; a nats-server restarted empty gives
// a new epoch (the old one is refused) and the cluster carries on. One node with --embed_nats
// switches JetStream on in its own nats-server and keeps history there.
import { afterAll, afterEach, beforeAll, describe, it } from "bun:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import type { Channel } from "@anycable/core";
import { type JetStreamManager, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
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
import { freePort } from "../support/ports.ts";
import { publish } from "../support/publish.ts";
import { e2eRuntimes, type ServerProcess, type ServerRuntime, startServer } from "../support/server.ts";
import { hasService, type NatsProcess, startNats } from "../support/services.ts";
import { waitFor } from "../support/wait.ts";

const SECRET = "nats-broker-e2e";
const derive = (phrase: string) => createHmac("sha256", SECRET).update(phrase).digest("hex");
const BROADCAST_KEY = derive("broadcast-cable");
const API_KEY = derive("api-cable");
const runtimes = e2eRuntimes(["bun", "deno"]);
const enabled = hasService("nats-server");

const otherThan = (r: ServerRuntime): ServerRuntime => runtimes.find((x) => x !== r) ?? r;

const nodeArgs = (natsUrl: string) => [
  "--norpc",
  `--secret=${SECRET}`,
  "--noauth",
  "--public_streams",
  "--broker=nats",
  "--pubsub=nats",
  `--nats_servers=${natsUrl}`,
  "--broadcast_adapter=http",
  "--presence_ttl=2",
  "--log_level=debug",
];

afterEach(() => closeCables());

for (const runtime of runtimes) {
  const other = otherThan(runtime);

  describe.if(enabled)(`[${runtime}] NATS broker cluster (node B under ${other})`, () => {
    let nats: NatsProcess;
    let probe: NatsConnection;
    let jsm: JetStreamManager;
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
      nats = await startNats();
      probe = await connect({ servers: nats.url });
      jsm = await jetstreamManager(probe);
      [a, b] = await Promise.all([
        startServer(runtime, { args: nodeArgs(nats.url) }),
        startServer(other, { args: nodeArgs(nats.url) }),
      ]);
      await Promise.all([a.waitForOutput(/NATS broker is ready/), b.waitForOutput(/NATS broker is ready/)]);
    });
    afterAll(async () => {
      closeCables();
      await Promise.all([a?.stop(), b?.stop()]);
      await probe?.close();
      await nats?.stop();
    });

    it("announces the NATS broker with its settings", () => {
      for (const node of [a, b]) {
        assert.match(
          node.output(),
          new RegExp(
            `Using NATS broker: nats://127\\.0\\.0\\.1:${nats.port} \\(history limit: 100, history ttl: 300s, sessions ttl: 300s, presence ttl: 2s\\)`,
          ),
        );
      }
    });

    it("a core client dropped on node A restores on node B and catches up, in order, complete", async () => {
      const stream = `cross_${runtime}`;
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
      // published through node B while the client is away: JetStream gives the next offsets
      for (let n = 3; n < 3 + N; n++) assert.equal((await broadcast(b, stream, { n })).status, 201);
      gate.open();
      await waitFor(() => unique(deliveries).length === 2 + N, "the missed messages, from node B", 15_000);
      // and a live one through node A reaches the client on node B (NATS pub/sub)
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
      // where anycable-go keeps them: the stream's JetStream stream, its sequences the offsets
      const info = await jsm.streams.info(`_ac_${stream}`);
      assert.equal(info.state.last_seq, 3 + N);
      assert.equal((await jsm.streams.getMessage(`_ac_${stream}`, { seq: 3 }))?.string(), '{"n":3}');
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
      assert.deepEqual(await chB.presence.info(), { alice: { name: "Alice" }, bob: { name: "Bob" } });
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
      const c = await startServer(runtime, { args: nodeArgs(nats.url) });
      await c.waitForOutput(/NATS broker is ready/);
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
      const frames = await framesUntil(watcher.c, presence, "carol's leave on node A");
      const [leave] = frames.filter(presence);
      assert.deepEqual(leave!.message, { type: "leave", id: "carol" });
      assert.ok(Date.now() - killedAt >= 1900, "not before the presence TTL");
      assert.deepEqual(await users(b, stream), { total: 0, ids: [] });
      const sweeps = () =>
        [a, b].map((n) => n.output().split("swept the presence of a node that stopped").length - 1);
      await waitFor(() => sweeps().reduce((x, y) => x + y) >= 1, "a survivor's sweep in the logs");
      assert.deepEqual(
        sweeps().reduce((x, y) => x + y),
        1,
        "one survivor claimed the dead node",
      );
      doomed.c.close();
      watcher.c.close();
    });

    it("starts a new epoch when NATS comes back empty; the old one gets reject_history", async () => {
      const stream = `restart_${runtime}`;
      const first = await extClient(b.wsUrl);
      await subscribeRaw(first.c, pubId(stream));
      assert.equal((await broadcast(a, stream, "before")).status, 201);
      const [before] = (await framesUntil(first.c, (m) => m.message === "before", "before")).filter(
        (m) => m.message === "before",
      );
      const oldEpoch = String(before!.epoch);
      await probe.close();
      nats = await nats.stop().then(() => nats.restart());
      probe = await connect({ servers: nats.url });
      jsm = await jetstreamManager(probe);
      // pub/sub resubscribed and the broker set JetStream up again: a publication through node A
      // reaches node B's client under a new epoch
      let n = 0;
      const after = await waitFor(
        async () => {
          await broadcast(a, stream, `after ${++n}`);
          await new Promise((r) => setTimeout(r, 100));
          return first.c.messages.find(
            (m) => String((m as Msg).message).startsWith("after") && (m as Msg).epoch !== undefined,
          ) as Msg | undefined;
        },
        "a publication with an offset after the restart",
        20_000,
        200,
      );
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
      // and the new epoch's history is served
      const fresh = await extClient(a.wsUrl);
      fresh.c.send({
        command: "subscribe",
        identifier: id,
        history: { streams: { [stream]: { epoch: after.epoch, offset: Number(after.offset) } } },
      });
      const ok = await framesUntil(
        fresh.c,
        (m) => m.identifier === id && (m.type === "reject_history" || m.type === "confirm_history"),
        "the answer to the new epoch",
      );
      assert.equal(ok.at(-1)!.type, "confirm_history", JSON.stringify(ok));
      for (const c of [late, fresh, first]) c.c.close();
    });
  });

  describe.if(enabled)(`[${runtime}] NATS broker on embedded NATS`, () => {
    let node: ServerProcess;
    beforeAll(async () => {
      const port = await freePort();
      node = await startServer(runtime, {
        args: [
          "--norpc",
          `--secret=${SECRET}`,
          "--noauth",
          "--public_streams",
          "--broker=nats",
          "--pubsub=nats",
          "--embed_nats",
          `--enats_addr=nats://127.0.0.1:${port}`,
          "--broadcast_adapter=http",
        ],
      });
      await node.waitForOutput(/NATS broker is ready/, 20_000);
    });
    afterAll(async () => {
      await node?.stop();
    });

    it("switches JetStream on and serves history from it", async () => {
      const stream = `embedded_${runtime}`;
      const c = await extClient(node.wsUrl);
      await subscribeRaw(c.c, pubId(stream));
      for (const n of [1, 2, 3]) {
        assert.equal(
          (await publish(`${node.url}/_broadcast`, { stream, data: JSON.stringify({ n }) }, BROADCAST_KEY))
            .status,
          201,
        );
      }
      const live = (await framesUntil(c.c, (m) => (m.message as Msg)?.n === 3, "three live messages")).filter(
        (m) => m.message !== undefined,
      );
      assert.deepEqual(
        live.map((m) => m.offset),
        [1, 2, 3],
      );
      const late = await extClient(node.wsUrl);
      const id = pubId(stream);
      late.c.send({
        command: "subscribe",
        identifier: id,
        history: { streams: { [stream]: { epoch: live[0]!.epoch, offset: 1 } } },
      });
      const frames = await framesUntil(
        late.c,
        (m) => m.identifier === id && (m.type === "reject_history" || m.type === "confirm_history"),
        "history from the embedded server's JetStream",
      );
      assert.equal(frames.at(-1)!.type, "confirm_history");
      assert.deepEqual(
        frames.filter((m) => m.message !== undefined).map((m) => (m.message as Msg).n),
        [2, 3],
      );
      c.c.close();
      late.c.close();
    });
  });
}
