// The PostgreSQL broker across nodes (--broker=postgres on a real PostgreSQL, pub/sub switched to
// PostgreSQL by itself: no Redis, no NATS; node A under one runtime, node B under the other): an
// @anycable/core client that loses its socket on node A reconnects to node B, restores its session
// there (no RPC: --norpc) and catches up through history with the offsets and epoch node A gave;
// presence joined on one node is seen on the other and through node B's REST API; a node that dies
// has its clients' presence expire (swept by a survivor); PostgreSQL restarted keeps the history
// (durable: a client resumes from an offset given before the restart), and a publication made
// while it was down is delivered without an offset and starts a new epoch (the old one refused).
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
import { psql } from "../support/pg_probe.ts";
import { publish } from "../support/publish.ts";
import { e2eRuntimes, type ServerProcess, type ServerRuntime, startServer } from "../support/server.ts";
import { hasService, type PostgresProcess, startPostgres } from "../support/services.ts";
import { waitFor } from "../support/wait.ts";

const SECRET = "postgres-broker-e2e";
const derive = (phrase: string) => createHmac("sha256", SECRET).update(phrase).digest("hex");
const BROADCAST_KEY = derive("broadcast-cable");
const API_KEY = derive("api-cable");
const runtimes = e2eRuntimes(["bun", "deno"]);
const enabled = hasService("postgres");

const otherThan = (r: ServerRuntime): ServerRuntime => runtimes.find((x) => x !== r) ?? r;

const nodeArgs = (url: string) => [
  "--norpc",
  `--secret=${SECRET}`,
  "--noauth",
  "--public_streams",
  "--broker=postgres",
  `--postgres_url=${url}`,
  "--postgres_poll_interval_milliseconds=200",
  "--broadcast_adapter=http",
  "--presence_ttl=2",
  "--log_level=debug",
];

afterEach(() => closeCables());

for (const runtime of runtimes) {
  const other = otherThan(runtime);

  describe.if(enabled)(`[${runtime}] PostgreSQL broker cluster (node B under ${other})`, () => {
    let pg: PostgresProcess;
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

    /**
     * A node's pub/sub reads a stream from the offset it finds when its first client subscribes:
     * publish markers until the watcher has one, so what follows cannot be missed.
     */
    const warmUp = async (node: ServerProcess, watcher: { c: { messages: unknown[] } }, stream: string) => {
      let i = 0;
      await waitFor(
        async () => {
          await broadcast(node, stream, `warmup-${i++}`);
          return watcher.c.messages.some((m) => String((m as Msg).message).startsWith("warmup-"));
        },
        `a warm-up marker on ${stream}`,
        20_000,
        300,
      );
    };

    beforeAll(async () => {
      pg = await startPostgres();
      // one node first: it creates the tables (the other finds them under the DDL lock anyway)
      a = await startServer(runtime, { args: nodeArgs(pg.url) });
      b = await startServer(other, { args: nodeArgs(pg.url) });
    });
    afterAll(async () => {
      closeCables();
      await Promise.all([a?.stop(), b?.stop()]);
      await pg?.destroy();
    });

    it("announces the PostgreSQL broker with its settings, and PostgreSQL pub/sub", () => {
      for (const node of [a, b]) {
        assert.match(
          node.output(),
          new RegExp(
            `Using PostgreSQL broker at postgres://postgres@127\\.0\\.0\\.1:${pg.port}/postgres \\(history limit: 100, history ttl: 300s, sessions ttl: 300s, presence ttl: 2s\\)`,
          ),
        );
        assert.match(node.output(), /Starting PostgreSQL pub\/sub/);
        assert.match(node.output(), /PostgreSQL broker schema (created or updated|up to date)/);
      }
    });

    it("a core client dropped on node A restores on node B and catches up, in order, complete", async () => {
      const stream = `cross/${runtime}`;
      const wire = newWire();
      const gate = new Gate();
      let target: string | undefined;
      const cable = await coreCable(a.wsUrl, wire, { gate, reconnectTo: () => target });
      const channel: Channel = cable.streamFrom(stream);
      const { deliveries: all } = collect(channel);
      await channel.ensureSubscribed();
      // node A's pub/sub reads the stream from where it was when the client subscribed: markers
      // first, until one arrives (they take the stream's first offsets)
      let marker = 0;
      await waitFor(
        async () => {
          await broadcast(a, stream, { warm: marker++ });
          return all.length > 0;
        },
        "a warm-up marker on node A",
        20_000,
        300,
      );
      const isReal = (d: { msg: unknown }) => (d.msg as { n?: number }).n !== undefined;
      const real = () => unique(all).filter(isReal);
      for (const n of [1, 2]) assert.equal((await broadcast(a, stream, { n })).status, 201);
      await waitFor(() => real().length === 2, "two live messages on node A");
      const epoch = real()[0]!.meta!.epoch;
      const base = real()[0]!.meta!.offset;
      const oldSid = cable.sessionId;
      // a second subscriber on node A keeps its pub/sub reading the stream after the client leaves
      const watcher = await extClient(a.wsUrl);
      await subscribeRaw(watcher.c, pubId(stream));

      gate.shut();
      target = b.wsUrl;
      wire.sockets[0]!.terminate();
      await waitFor(() => gate.reached === 1, "the client reconnecting");
      const N = 5;
      // published through node B while the client is away: node B gives the next offsets
      for (let n = 3; n < 3 + N; n++) assert.equal((await broadcast(b, stream, { n })).status, 201);
      // in the pub/sub table (node A's watcher has them) before the client is back, so the client
      // gets them from history only, in order (node B's pub/sub would start after its own queued
      // messages anyway: test/unit/pubsub_postgres.test.ts; this keeps out the cross-node window,
      // where a message in flight from another node may come both ways, as with Redis pub/sub)
      await framesUntil(
        watcher.c,
        (m) => (m.message as { n?: number })?.n === 2 + N,
        "node B's messages on A",
      );
      watcher.c.close();
      gate.open();
      await waitFor(() => real().length === 2 + N, "the missed messages, from node B", 15_000);
      // and a live one through node A reaches the client on node B (PostgreSQL pub/sub)
      assert.equal((await broadcast(a, stream, { n: 3 + N })).status, 201);
      await waitFor(() => real().length === 3 + N, "a live message published on node A");

      const got = real();
      assert.deepEqual(
        got.map((d) => d.msg),
        Array.from({ length: 3 + N }, (_, i) => ({ n: i + 1 })),
      );
      assert.deepEqual(
        got.map((d) => d.meta),
        Array.from({ length: 3 + N }, (_, i): Meta => ({ stream, epoch, offset: base + i })),
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
    }, 30_000);

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
      // both nodes' pub/sub reading the stream before the joins (see warmUp)
      const warmed = { a: false, b: false };
      chA.on("message", () => {
        warmed.a = true;
      });
      chB.on("message", () => {
        warmed.b = true;
      });
      let marker = 0;
      await waitFor(
        async () => {
          await broadcast(a, stream, { warm: marker++ });
          return warmed.a && warmed.b;
        },
        "warm-up markers on both nodes",
        20_000,
        300,
      );
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
    }, 30_000);

    it("expires the presence of a killed node's clients after --presence_ttl, seen on the others", async () => {
      const stream = `dying/${runtime}`;
      const c = await startServer(runtime, { args: nodeArgs(pg.url) });
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
    }, 30_000);

    it("--presets=broker with only DATABASE_URL: the Postgres broker, http,postgres broadcasting and pub/sub", async () => {
      const c = await startServer(runtime, {
        args: ["--norpc", `--secret=${SECRET}`, "--noauth", "--public_streams", "--presets=broker"],
        env: { DATABASE_URL: pg.url },
      });
      try {
        assert.match(c.output(), /INF load presets presets=broker/);
        assert.match(c.output(), /Using PostgreSQL broker at postgres:\/\/postgres@127\.0\.0\.1:/);
        assert.match(c.output(), /Starting PostgreSQL pub\/sub/);
        const stream = `preset/${runtime}`;
        const watcher = await extClient(a.wsUrl);
        await subscribeRaw(watcher.c, pubId(stream));
        await warmUp(c, watcher, stream);
        const warmed = watcher.c.messages
          .filter((x) => String((x as Msg).message).startsWith("warmup-"))
          .map((x) => Number((x as Msg).offset));
        // published by the application in SQL, claimed by a node, numbered by the broker
        await psql(
          pg.url,
          `SELECT anycable_publish('${stream}', '${JSON.stringify({ stream, data: JSON.stringify("from sql") })}')`,
        );
        const [m] = (
          await framesUntil(watcher.c, (x) => x.message === "from sql", "the SQL publication")
        ).filter((x) => x.message === "from sql");
        assert.ok(Number(m!.offset) > Math.max(...warmed), "numbered after the markers");
        assert.equal(typeof m!.epoch, "string");
        watcher.c.close();
      } finally {
        await c.stop();
      }
    }, 30_000);

    it("keeps history across a PostgreSQL restart: a client resumes from an offset given before it", async () => {
      const stream = `durable/${runtime}`;
      const first = await extClient(b.wsUrl);
      await subscribeRaw(first.c, pubId(stream));
      await warmUp(a, first, stream);
      for (const m of ["m1", "m2", "m3"]) assert.equal((await broadcast(a, stream, m)).status, 201);
      const live = await framesUntil(first.c, (m) => m.message === "m3", "three live messages");
      const before = live.filter((m) => /^m\d$/.test(String(m.message)));
      const o1 = Number(before[0]!.offset);
      assert.deepEqual(
        before.map((m) => [m.message, m.offset]),
        [
          ["m1", o1],
          ["m2", o1 + 1],
          ["m3", o1 + 2],
        ],
      );
      const epoch = String(before[0]!.epoch);
      first.c.close();
      await pg.stop("fast");
      pg = await pg.restart();
      // the nodes reconnect by themselves; a client resuming from m1's offset of the old epoch
      await waitFor(
        async () => {
          const late = await extClient(a.wsUrl);
          const id = pubId(stream);
          late.c.send({
            command: "subscribe",
            identifier: id,
            history: { streams: { [stream]: { epoch, offset: o1 } } },
          });
          const frames = await framesUntil(
            late.c,
            (m) => m.identifier === id && (m.type === "reject_history" || m.type === "confirm_history"),
            "the answer to the history request",
          );
          late.c.close();
          if (frames.at(-1)!.type !== "confirm_history") return false;
          const got = frames.filter((m) => m.identifier === id && typeof m.message === "string");
          assert.deepEqual(
            got.map((m) => [m.message, m.offset, m.epoch]),
            [
              ["m2", o1 + 1, epoch],
              ["m3", o1 + 2, epoch],
            ],
          );
          return true;
        },
        "history served from the restarted PostgreSQL",
        20_000,
        250,
      );
    }, 30_000);

    it("delivers what was published while PostgreSQL was down without an offset, then starts a new epoch", async () => {
      const stream = `outage/${runtime}`;
      const watcher = await extClient(b.wsUrl);
      await subscribeRaw(watcher.c, pubId(stream));
      await warmUp(a, watcher, stream);
      assert.equal((await broadcast(a, stream, "before")).status, 201);
      const [before] = (await framesUntil(watcher.c, (m) => m.message === "before", "before")).filter(
        (m) => m.message === "before",
      );
      const oldEpoch = String(before!.epoch);
      await pg.stop("immediate");
      assert.equal((await broadcast(a, stream, "while down")).status, 201, "the node still accepts it");
      pg = await pg.restart();
      const [down] = (
        await framesUntil(watcher.c, (m) => m.message === "while down", "the message made while down")
      ).filter((m) => m.message === "while down");
      assert.equal(down!.offset, undefined, "no offset: PostgreSQL could not give one");
      await waitFor(
        async () => {
          await broadcast(a, stream, "after");
          return watcher.c.messages.some(
            (m) => (m as Msg).message === "after" && (m as Msg).offset !== undefined,
          );
        },
        "a numbered publication after the restart",
        20_000,
        500,
      );
      const after = watcher.c.messages.find(
        (m) => (m as Msg).message === "after" && (m as Msg).offset !== undefined,
      ) as Msg;
      assert.notEqual(after.epoch, oldEpoch, "a new epoch: nobody resumes across the unnumbered message");
      const late = await extClient(b.wsUrl);
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
      watcher.c.close();
    }, 30_000);
  });
}
