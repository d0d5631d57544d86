// Reliable streams, session restore, presence and pongs (--broker=memory) against the real server
// process, per runtime: @anycable/core clients that lose their socket catch up through history
// after restoring their session; restores reach no RPC backend (gRPC via @grpc/grpc-js, HTTP via
// @anycable/serverless-js); the history rules over the wire; presence between clients and through
// the REST API; a server restart (new epoch) that the JS client recovers from; --pong_timeout.
// Core clients run over a `ws` subclass that records every socket and frame (wire-level checks),
// and their reconnects can be held by a gate (transportConfigurator) instead of timed.

import { afterAll, afterEach, beforeAll, describe, it } from "bun:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import type { Cable, Channel } from "@anycable/core";
import { identificator } from "@anycable/serverless-js";
import {
  autoPong,
  closeCables,
  collect,
  coreCable,
  EXT,
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
import {
  type CommandReq,
  type CommandRes,
  type ConnectReq,
  type ConnectRes,
  type DisconnectReq,
  type GrpcBackend,
  Status,
  startGrpcBackend,
} from "../support/grpc_backend.ts";
import { type HttpBackend, startHttpBackend } from "../support/http_backend.ts";
import { freePort } from "../support/ports.ts";
import { publish } from "../support/publish.ts";
import { e2eRuntimes, type ServerProcess, startServer } from "../support/server.ts";
import { nowSec, signStream } from "../support/signing.ts";
import { waitFor } from "../support/wait.ts";
import { connect, type RawClient } from "../support/ws_client.ts";

const SECRET = "reliable-e2e-secret";
// Derived the way the SDKs derive them, independently of the server's code.
const derive = (phrase: string) => createHmac("sha256", SECRET).update(phrase).digest("hex");
const BROADCAST_KEY = derive("broadcast-cable");
const API_KEY = derive("api-cable");
const runtimes = e2eRuntimes(["bun", "deno"]);

const epochOf = (out: string): string => {
  const m = /Using in-memory broker \(epoch: ([^,]+), history limit: 100/.exec(out);
  assert.ok(m, `no broker line in:\n${out}`);
  return m[1]!;
};

afterEach(() => closeCables());

for (const runtime of runtimes) {
  describe(`[${runtime}] reliable streams, restore and presence (--broker=memory --norpc --secret)`, () => {
    let server: ServerProcess;
    let epoch: string;
    const jwt = identificator(SECRET, "1h");
    const broadcast = (body: unknown) => publish(`${server.url}/_broadcast`, body, BROADCAST_KEY);

    beforeAll(async () => {
      server = await startServer(runtime, {
        args: [
          "--norpc",
          `--secret=${SECRET}`,
          "--noauth",
          "--public_streams",
          "--broker=memory",
          "--presence_ttl=1",
          "--broadcast_adapter=http",
          "--log_level=debug",
        ],
      });
      epoch = epochOf(server.output());
    });
    afterAll(async () => {
      closeCables();
      await server?.stop();
    });

    it("announces the in-memory broker with its epoch and limits", () => {
      assert.match(
        server.output(),
        /INF Using in-memory broker \(epoch: \S+, history limit: 100, history ttl: 300s, sessions ttl: 300s, presence ttl: 1s\)/,
      );
    });

    /**
     * A core client receives two messages, loses its socket without a close handshake, misses N
     * publications while its reconnect is held, then restores its session (?sid=) and catches up
     * through `history`: every message once, in order.
     */
    async function catchUp(stream: string, subscribe: (cable: Cable) => Channel, token?: string) {
      const wire = newWire();
      const gate = new Gate();
      const cable = await coreCable(server.wsUrl, wire, { token, gate });
      const connects: unknown[] = [];
      cable.on("connect", (ev) => {
        connects.push(ev);
      });
      const channel = subscribe(cable);
      const { deliveries, infos } = collect(channel);
      await channel.ensureSubscribed();
      const body = (n: number) => ({ stream, data: JSON.stringify({ n }) });
      for (const n of [1, 2]) assert.equal((await broadcast(body(n))).status, 201);
      await waitFor(() => deliveries.length === 2, "two live messages");
      const oldSid = cable.sessionId;
      assert.match(oldSid ?? "", /^[\w-]{21}$/);
      const subscribeCmd = wire.outbound[0]!.find((m) => m.command === "subscribe");
      assert.ok(subscribeCmd, JSON.stringify(wire.outbound[0]));
      const identifier = String(subscribeCmd.identifier);

      // the first subscribe asked for history too (since: now), so one history_received is in
      const historyBefore = infos.filter((t) => t === "history_received").length;
      gate.shut();
      wire.sockets[0]!.terminate(); // no close frame: the TCP connection just goes
      await waitFor(() => gate.reached === 1, "the client reconnecting");
      assert.equal(cable.state, "connecting");
      const N = 5;
      for (let n = 3; n < 3 + N; n++) assert.equal((await broadcast(body(n))).status, 201);
      gate.open();

      await waitFor(() => unique(deliveries).length === 2 + N, "the missed messages", 15_000);
      await waitFor(
        () => infos.filter((t) => t === "history_received").length === historyBefore + 1,
        "history_received after the restore",
      );
      assert.equal((await broadcast(body(3 + N))).status, 201);
      await waitFor(() => unique(deliveries).length === 3 + N, "a live message after the restore");

      const got = unique(deliveries);
      assert.deepEqual(
        got.map((d) => d.msg),
        Array.from({ length: 3 + N }, (_, i) => ({ n: i + 1 })),
      );
      assert.deepEqual(
        got.map((d) => d.meta),
        Array.from({ length: 3 + N }, (_, i) => ({ stream, epoch, offset: i + 1 })),
      );
      // The restore: the second socket carried the old sid, the server welcomed it as restored
      // (with a new sid), the client asked for history from its last offset instead of resubscribing.
      assert.equal(wire.sockets.length, 2);
      assert.equal(new URL(wire.urls[1]!).searchParams.get("sid"), oldSid);
      const welcome = wire.inbound[1]![0]!;
      assert.deepEqual(welcome, {
        type: "welcome",
        sid: welcome.sid,
        restored: true,
        restored_ids: [identifier],
      });
      assert.notEqual(welcome.sid, oldSid);
      assert.equal(cable.sessionId, welcome.sid);
      assert.deepEqual(connects, [
        { reconnect: false, restored: false },
        { reconnect: true, restored: true },
      ]);
      const sent = wire.outbound[1]!;
      assert.equal(sent.filter((m) => m.command === "subscribe").length, 0, JSON.stringify(sent));
      const history = sent.find((m) => m.command === "history") as
        | { identifier: string; history: { since: number; streams: Record<string, Meta> } }
        | undefined;
      assert.ok(history, JSON.stringify(sent));
      assert.equal(history.identifier, identifier);
      assert.deepEqual(history.history.streams, { [stream]: { epoch, offset: 2 } });
      // What the server sent on the new socket: the missed messages in order, then confirm_history.
      const backlog = wire.inbound[1]!.filter((m) => m.identifier === identifier && m.type !== "ping");
      assert.deepEqual(
        backlog.slice(0, N + 1).map((m) => m.offset ?? m.type),
        [3, 4, 5, 6, 7, "confirm_history"],
      );
      await server.waitForOutput(new RegExp(`DBG session restored .*old_sid=${oldSid}`));
      return cable;
    }

    it("catches an @anycable/core client up after an abrupt drop: public stream, no-auth session", async () => {
      const stream = `catchup/public-${runtime}`;
      await catchUp(stream, (cable) => cable.streamFrom(stream));
    });

    it("catches an @anycable/core client up after an abrupt drop: signed stream, JWT session", async () => {
      const stream = `catchup/signed-${runtime}`;
      const token = await jwt.generateToken({ user: "reader" });
      const cable = await catchUp(stream, (c) => c.streamFromSigned(signStream(stream, SECRET)), token);
      // the restored session kept the token's identifiers: a remote disconnect by them finds it
      const reasons: string[] = [];
      cable.on("close", (ev) => {
        reasons.push(String((ev as { reason?: string } | undefined)?.reason));
      });
      const bye = {
        command: "disconnect",
        payload: { identifier: JSON.stringify({ user: "reader" }), reconnect: false },
      };
      assert.equal((await broadcast(bye)).status, 201);
      await waitFor(() => reasons.length === 1, "the remote disconnect");
      assert.deepEqual(reasons, ["remote"]);
    });

    it("answers history by offset and by since, inside subscribe, and rejects what it cannot serve", async () => {
      const stream = `hist/${runtime}`;
      const id = pubId(stream);
      const a = await extClient(server.wsUrl);
      await subscribeRaw(a.c, id);
      const t0 = nowSec();
      for (const n of [1, 2, 3])
        assert.equal((await broadcast({ stream, data: JSON.stringify({ n }) })).status, 201);
      const msg = (n: number) => ({ identifier: id, message: { n }, stream_id: stream, epoch, offset: n });
      for (const n of [1, 2, 3])
        assert.deepEqual(await a.c.next((m) => m.identifier === id && "message" in m, `live ${n}`), msg(n));
      const lastSec = nowSec();

      // by offset: what came after it
      const b = await extClient(server.wsUrl);
      await subscribeRaw(b.c, id);
      b.c.send({
        command: "history",
        identifier: id,
        history: { streams: { [stream]: { epoch, offset: 1 } } },
      });
      assert.deepEqual(await framesUntil(b.c, (m) => m.type === "confirm_history", "history by offset"), [
        msg(2),
        msg(3),
        { type: "confirm_history", identifier: id },
      ]);

      // by since (UNIX seconds): a message published in a later second is the only one at or after it
      await waitFor(() => nowSec() > lastSec, "the next second");
      assert.equal((await broadcast({ stream, data: JSON.stringify({ n: 4 }) })).status, 201);
      for (const x of [a, b])
        assert.deepEqual(await x.c.next((m) => m.identifier === id && "message" in m, "live 4"), msg(4));
      b.c.send({ command: "history", identifier: id, history: { since: lastSec + 1 } });
      assert.deepEqual(await framesUntil(b.c, (m) => m.type === "confirm_history", "history since"), [
        msg(4),
        { type: "confirm_history", identifier: id },
      ]);
      b.c.send({ command: "history", identifier: id, history: { since: t0 } });
      assert.deepEqual(await framesUntil(b.c, (m) => m.type === "confirm_history", "history since t0"), [
        msg(1),
        msg(2),
        msg(3),
        msg(4),
        { type: "confirm_history", identifier: id },
      ]);

      // inside subscribe: confirm_subscription, the messages, confirm_history
      const c = await extClient(server.wsUrl);
      c.c.send({
        command: "subscribe",
        identifier: id,
        history: { streams: { [stream]: { epoch, offset: 2 } } },
      });
      assert.deepEqual(await framesUntil(c.c, (m) => m.type === "confirm_history", "subscribe + history"), [
        { identifier: id, type: "confirm_subscription" },
        msg(3),
        msg(4),
        { type: "confirm_history", identifier: id },
      ]);

      // transient publications and whispers are delivered but not kept
      const transient = { stream, data: '"passing"', meta: { transient: true } };
      assert.equal((await broadcast(transient)).status, 201);
      for (const x of [a, b, c])
        assert.deepEqual(await x.c.next((m) => m.identifier === id && "message" in m, "transient"), {
          identifier: id,
          message: "passing",
        });
      c.c.send({ command: "whisper", identifier: id, data: { typing: true } });
      for (const x of [a, b])
        assert.deepEqual(await x.c.next((m) => m.identifier === id && "message" in m, "whisper"), {
          identifier: id,
          message: { typing: true },
        });
      b.c.send({
        command: "history",
        identifier: id,
        history: { streams: { [stream]: { epoch, offset: 3 } } },
      });
      assert.deepEqual(
        await framesUntil(b.c, (m) => m.type === "confirm_history", "after the transient and the whisper"),
        [msg(4), { type: "confirm_history", identifier: id }],
      );

      // another epoch, an offset beyond the stream: reject_history
      b.c.send({
        command: "history",
        identifier: id,
        history: { streams: { [stream]: { epoch: "nope", offset: 1 } } },
      });
      assert.deepEqual(await framesUntil(b.c, (m) => m.type === "reject_history", "epoch mismatch"), [
        { type: "reject_history", identifier: id },
      ]);
      b.c.send({
        command: "history",
        identifier: id,
        history: { streams: { [stream]: { epoch, offset: 99 } } },
      });
      assert.deepEqual(await framesUntil(b.c, (m) => m.type === "reject_history", "offset too new"), [
        { type: "reject_history", identifier: id },
      ]);
      const d = await extClient(server.wsUrl);
      d.c.send({
        command: "subscribe",
        identifier: id,
        history: { streams: { [stream]: { epoch: "nope", offset: 1 } } },
      });
      assert.deepEqual(await framesUntil(d.c, (m) => m.type === "reject_history", "subscribe, wrong epoch"), [
        { identifier: id, type: "confirm_subscription" },
        { type: "reject_history", identifier: id },
      ]);
      for (const x of [a, b, c, d]) x.c.close();
    });

    it("shares presence between two core clients and through GET /api/presence/<stream>/users", async () => {
      const stream = `presence/room-${runtime}`;
      const usersUrl = `${server.url}/api/presence/${encodeURIComponent(stream)}/users`;
      const users = async () => {
        const res = await fetch(usersUrl, { headers: { authorization: `Bearer ${API_KEY}` } });
        assert.equal(res.status, 200);
        const body = (await res.json()) as { type: string; total: number; records: { id: string }[] };
        body.records?.sort((x, y) => x.id.localeCompare(y.id));
        return body;
      };
      const a = await coreCable(server.wsUrl, newWire());
      const b = await coreCable(server.wsUrl, newWire());
      const chA = a.streamFrom(stream);
      const chB = b.streamFrom(stream);
      const eventsA: Msg[] = [];
      const eventsB: Msg[] = [];
      // @anycable/core emits the answers to presence.info() as "presence" events too (type "info")
      chA.on("presence", (e) => {
        if (e.type !== "info") eventsA.push(e as unknown as Msg);
      });
      chB.on("presence", (e) => {
        if (e.type !== "info") eventsB.push(e as unknown as Msg);
      });
      await Promise.all([chA.ensureSubscribed(), chB.ensureSubscribed()]);

      await chA.presence.join("alice", { name: "Alice" });
      const aliceJoin = { type: "join", id: "alice", info: { name: "Alice" } };
      await waitFor(() => eventsB.length === 1, "alice's join at b");
      assert.deepEqual(eventsB, [aliceJoin]);
      await waitFor(() => eventsA.length === 1, "alice's join at alice");
      assert.deepEqual(eventsA, [aliceJoin]);
      await chB.presence.join("bob", { name: "Bob" });
      await waitFor(() => eventsA.length === 2, "bob's join at a");
      assert.deepEqual(eventsA[1], { type: "join", id: "bob", info: { name: "Bob" } });

      assert.deepEqual(await chA.presence.info(), { alice: { name: "Alice" }, bob: { name: "Bob" } });
      assert.deepEqual(await users(), {
        type: "info",
        total: 2,
        records: [
          { id: "alice", info: { name: "Alice" } },
          { id: "bob", info: { name: "Bob" } },
        ],
      });
      assert.equal((await fetch(usersUrl)).status, 401, "no key");
      assert.equal(
        (await fetch(usersUrl, { headers: { authorization: `Bearer ${BROADCAST_KEY}` } })).status,
        401,
        "the broadcast key is not the API key",
      );

      await chA.presence.leave();
      await waitFor(() => eventsB.length === 3, "alice's leave at b");
      assert.equal(eventsB[2]!.type, "leave");
      assert.equal(eventsB[2]!.id, "alice");
      assert.deepEqual(await chB.presence.info(), { bob: { name: "Bob" } });
      assert.deepEqual((await users()).total, 1);

      // A raw client joins, then its TCP connection drops without leaving: it stays present until
      // --presence_ttl (1 s) has passed, then leaves.
      const raw = await extClient(server.wsUrl);
      const rawId = pubId(stream);
      await subscribeRaw(raw.c, rawId);
      raw.c.send({ command: "join", identifier: rawId, presence: { id: "carol", info: { name: "Carol" } } });
      await waitFor(() => eventsB.length === 4, "carol's join at b");
      assert.deepEqual(eventsB[3], { type: "join", id: "carol", info: { name: "Carol" } });
      assert.equal((await users()).total, 2);
      const droppedAt = Date.now();
      raw.c.ws.terminate();
      await waitFor(() => eventsB.length === 5, "carol's leave after the presence TTL", 10_000);
      const leftAfter = Date.now() - droppedAt;
      assert.equal(eventsB[4]!.type, "leave");
      assert.equal(eventsB[4]!.id, "carol");
      assert.ok(leftAfter >= 950, `carol left ${leftAfter} ms after the drop, before --presence_ttl=1`);
      assert.deepEqual(await users(), {
        type: "info",
        total: 1,
        records: [{ id: "bob", info: { name: "Bob" } }],
      });
      await waitFor(() => eventsA.length === 5, "all events at a");
      assert.deepEqual(
        eventsA.map((e) => `${e.type}:${e.id}`),
        ["join:alice", "join:bob", "leave:alice", "join:carol", "leave:carol"],
      );
    });

    /** A raw ext client subscribed to `stream`, and the presence events it got so far. */
    async function presenceWatcher(stream: string) {
      const w = await extClient(server.wsUrl);
      await subscribeRaw(w.c, pubId(stream));
      const events = () =>
        w.c.messages
          .filter((m) => (m as Msg).type === "presence")
          .map((m) => {
            const e = (m as { message: Msg }).message;
            return `${e.type}:${e.id}`;
          });
      return { w, events };
    }

    it("joins an id once however many sessions hold it, and leaves when the last one does", async () => {
      const stream = `presence/shared-${runtime}`;
      const id = pubId(stream);
      const { w, events } = await presenceWatcher(stream);
      const x1 = await extClient(server.wsUrl);
      const x2 = await extClient(server.wsUrl);
      for (const x of [x1, x2]) {
        await subscribeRaw(x.c, id);
        x.c.send({ command: "join", identifier: id, presence: { id: "zed", info: "Zed" } });
      }
      await waitFor(() => events().length === 1, "zed's join");
      x1.c.send({ command: "leave", identifier: id });
      // a later join marks the point where a leave for zed would have come
      x2.c.send({ command: "join", identifier: id, presence: { id: "zed", info: "Zed" } });
      const marker = await extClient(server.wsUrl);
      await subscribeRaw(marker.c, id);
      marker.c.send({ command: "join", identifier: id, presence: { id: "marker", info: null } });
      await waitFor(() => events().length === 2, "the marker's join");
      x2.c.send({ command: "unsubscribe", identifier: id });
      await waitFor(() => events().length === 3, "zed's leave");
      assert.deepEqual(events(), ["join:zed", "join:marker", "leave:zed"]);
      w.c.send({ command: "presence", identifier: id, data: {} });
      const info = await w.c.next((m) => m.type === "presence" && (m.message as Msg).type === "info", "info");
      assert.deepEqual(info.message, { type: "info", total: 1, records: [{ id: "marker" }] });
      w.c.send({ command: "presence", identifier: id, data: { return_records: false } });
      const totals = await w.c.next(
        (m) => m.type === "presence" && (m.message as Msg).type === "info",
        "totals",
      );
      assert.deepEqual(totals.message, { type: "info", total: 1 });
      for (const x of [w, x1, x2, marker]) x.c.close();
    });

    it("keeps a restored core client present: it re-joins, and its old record expires without a leave", async () => {
      const stream = `presence/restore-${runtime}`;
      const { w, events } = await presenceWatcher(stream);
      const wire = newWire();
      const gate = new Gate();
      const cable = await coreCable(server.wsUrl, wire, { gate });
      const channel = cable.streamFrom(stream);
      await channel.ensureSubscribed();
      await channel.presence.join("dave", { name: "Dave" });
      const eve = await extClient(server.wsUrl);
      await subscribeRaw(eve.c, pubId(stream));
      eve.c.send({ command: "join", identifier: pubId(stream), presence: { id: "eve", info: "Eve" } });
      await waitFor(() => events().length === 2, "dave's and eve's joins");

      gate.shut();
      wire.sockets[0]!.terminate();
      await waitFor(() => gate.reached === 1, "dave reconnecting");
      gate.open();
      await waitFor(
        () => wire.outbound[1]?.some((m) => m.command === "join"),
        "dave's join after the restore",
      );
      assert.equal(wire.inbound[1]![0]!.restored, true);
      assert.deepEqual(wire.outbound[1]!.find((m) => m.command === "join")?.presence, {
        id: "dave",
        info: { name: "Dave" },
      });
      // eve drops after dave's old socket did: when her record expires, dave's old one has too
      eve.c.ws.terminate();
      await waitFor(() => events().length === 3, "eve's leave", 10_000);
      assert.deepEqual(events(), ["join:dave", "join:eve", "leave:eve"]);
      const res = await fetch(`${server.url}/api/presence/${encodeURIComponent(stream)}/users`, {
        headers: { authorization: `Bearer ${API_KEY}` },
      });
      assert.deepEqual(await res.json(), {
        type: "info",
        total: 1,
        records: [{ id: "dave", info: { name: "Dave" } }],
      });
      w.c.close();
    });
  });

  describe(`[${runtime}] without a broker (--norpc --public)`, () => {
    let server: ServerProcess;

    beforeAll(async () => {
      const port = await freePort();
      server = await startServer(runtime, {
        port,
        args: ["--norpc", "--public", "--broadcast_adapter=http", `--http_broadcast_port=${port}`],
      });
    });
    afterAll(async () => {
      await server?.stop();
    });

    it("rejects history in subscribe and the history command; live messages carry no offsets", async () => {
      assert.doesNotMatch(server.output(), /Using in-memory broker/);
      const stream = `nobroker/${runtime}`;
      const id = pubId(stream);
      const { c } = await extClient(server.wsUrl);
      c.send({ command: "subscribe", identifier: id, history: { since: nowSec() - 60 } });
      assert.deepEqual(await framesUntil(c, (m) => m.type === "reject_history", "subscribe + history"), [
        { identifier: id, type: "confirm_subscription" },
        { type: "reject_history", identifier: id },
      ]);
      c.send({
        command: "history",
        identifier: id,
        history: { streams: { [stream]: { epoch: "x", offset: 1 } } },
      });
      assert.deepEqual(await framesUntil(c, (m) => m.type === "reject_history", "history by offset"), [
        { type: "reject_history", identifier: id },
      ]);
      c.send({ command: "history", identifier: id, history: { since: nowSec() - 60 } });
      assert.deepEqual(await framesUntil(c, (m) => m.type === "reject_history", "history by since"), [
        { type: "reject_history", identifier: id },
      ]);
      assert.equal((await publish(`${server.url}/_broadcast`, { stream, data: '"plain"' })).status, 201);
      assert.deepEqual(await c.next((m) => m.identifier === id, "live"), {
        identifier: id,
        message: "plain",
      });
      // and the presence API has nothing to serve
      const res = await fetch(`${server.url}/api/presence/${encodeURIComponent(stream)}/users`);
      assert.equal(res.status, 501);
      c.close();
    });
  });

  // --- restore in front of an RPC application

  interface RpcLog {
    connects(): number;
    subscribes(): number;
    /** Per `message` command: the env and identifiers the application got. */
    performs(): { sid: string; ids: string; cstate: unknown; istate: unknown }[];
    disconnects(): { identifiers: string; subscriptions: string[] }[];
  }

  /** Ext client: connect, subscribe, echo, close; then restore with `how`; checks that no RPC repeats. */
  async function restoreWithoutRpc(
    server: ServerProcess,
    log: RpcLog,
    broadcast: (body: unknown) => Promise<Response>,
    room: string,
    how: "header" | "query",
  ) {
    const id = JSON.stringify({ channel: "ChatChannel", room });
    const a = await extClient(`${server.wsUrl}?user=ann`);
    const oldSid = String(a.welcome.sid);
    assert.match(oldSid, /^[\w-]{21}$/, JSON.stringify(a.welcome));
    await subscribeRaw(a.c, id);
    a.c.send({
      command: "message",
      identifier: id,
      data: JSON.stringify({ action: "echo", text: "before" }),
    });
    assert.deepEqual(await a.c.next((m) => m.identifier === id && "message" in m, "echo"), {
      identifier: id,
      message: { echo: "before" },
    });
    assert.equal(log.connects(), 1);
    assert.equal(log.subscribes(), 1);
    a.c.close();
    await a.c.waitClosed();
    await waitFor(() => log.disconnects().length === 1, "the first session's Disconnect");

    // no ?user=: a Connect call would identify this one as "anon"
    const b =
      how === "header"
        ? await connect(server.wsUrl, EXT, { "X-ANYCABLE-RESTORE-SID": oldSid })
        : await connect(`${server.wsUrl}?sid=${oldSid}`, EXT);
    const welcome = await b.next((m) => m.type === "welcome" || m.type === "disconnect", "restored welcome");
    assert.deepEqual(welcome, { type: "welcome", sid: welcome.sid, restored: true, restored_ids: [id] });
    assert.match(String(welcome.sid), /^[\w-]{21}$/);
    assert.notEqual(welcome.sid, oldSid);
    // subscribed without subscribing
    assert.equal(
      (await broadcast({ stream: `chat_${room}`, data: JSON.stringify({ text: "hi" }) })).status,
      201,
    );
    const live = await b.next((m) => m.identifier === id && "message" in m, "broadcast after the restore");
    assert.deepEqual(live.message, { text: "hi" });
    assert.equal(live.stream_id, `chat_${room}`);
    assert.equal(live.offset, 1);
    // the same identifiers and states reach the application as before the drop
    b.send({ command: "message", identifier: id, data: JSON.stringify({ action: "echo", text: "after" }) });
    assert.deepEqual(await b.next((m) => m.identifier === id && "message" in m, "echo after"), {
      identifier: id,
      message: { echo: "after" },
    });
    await waitFor(() => log.performs().length === 2, "the second perform recorded");
    const [before, after] = log.performs();
    assert.equal(after!.sid, welcome.sid);
    assert.equal(after!.ids, JSON.stringify({ user: "ann" }));
    assert.deepEqual(
      { ids: after!.ids, cstate: after!.cstate, istate: after!.istate },
      { ids: before!.ids, cstate: before!.cstate, istate: before!.istate },
    );
    assert.equal(log.connects(), 1, "no Connect for the restore");
    assert.equal(log.subscribes(), 1, "no Subscribe for the restore");
    assert.equal(log.disconnects().length, 1, "no Disconnect for the old session beyond the first");
    b.close();
    await b.waitClosed();
    await waitFor(() => log.disconnects().length === 2, "the restored session's Disconnect");
    assert.deepEqual(log.disconnects()[1], {
      identifiers: JSON.stringify({ user: "ann" }),
      subscriptions: [id],
    });
    // a restored session is restorable in turn, under its new sid
    const c = await connect(server.wsUrl, EXT, { "X-ANYCABLE-RESTORE-SID": String(welcome.sid) });
    const again = await c.next((m) => m.type === "welcome", "second restore");
    assert.deepEqual(again, { type: "welcome", sid: again.sid, restored: true, restored_ids: [id] });
    assert.equal((await broadcast({ stream: `chat_${room}`, data: '"again"' })).status, 201);
    assert.equal((await c.next((m) => m.identifier === id && "message" in m, "broadcast")).offset, 2);
    assert.equal(log.connects(), 1);
    assert.equal(log.subscribes(), 1);
    c.close();
    await waitFor(() => log.disconnects().length === 3, "the third session's Disconnect");
  }

  describe(`[${runtime}] session restore in front of gRPC RPC (@grpc/grpc-js backend)`, () => {
    let backend: GrpcBackend;
    let server: ServerProcess;
    const broadcast = (body: unknown) => publish(`${server.url}/_broadcast`, body);
    const log: RpcLog = {
      connects: () => backend.callsOf("Connect").length,
      subscribes: () => backend.callsOf("Command", "subscribe").length,
      performs: () =>
        backend.callsOf("Command", "message").map((c) => {
          const req = c.request as CommandReq;
          return {
            sid: c.metadata.sid ?? "",
            ids: req.connection_identifiers,
            cstate: req.env.cstate,
            istate: req.env.istate,
          };
        }),
      disconnects: () =>
        backend.callsOf("Disconnect").map((c) => {
          const req = c.request as DisconnectReq;
          return { identifiers: req.identifiers, subscriptions: req.subscriptions };
        }),
    };
    // as anycable-rb does: the welcome carries the session id from the call's metadata
    const connectWithSid = (req: ConnectReq, md: Record<string, string>): ConnectRes => {
      const user = new URL(req.env.url).searchParams.get("user") ?? "anon";
      return {
        status: Status.SUCCESS,
        identifiers: JSON.stringify({ user }),
        transmissions: [JSON.stringify({ type: "welcome", sid: md.sid })],
        env: { cstate: { user } },
      };
    };
    const fresh = () => {
      backend.reset();
      backend.onConnect = connectWithSid;
    };

    beforeAll(async () => {
      backend = await startGrpcBackend();
      const port = await freePort();
      server = await startServer(runtime, {
        port,
        args: [
          `--rpc_host=${backend.address}`,
          "--broker=memory",
          "--broadcast_adapter=http",
          `--http_broadcast_port=${port}`,
        ],
      });
      backend.broadcastUrl = `${server.url}/_broadcast`;
    });
    afterAll(async () => {
      await server?.stop();
      await backend?.stop();
    });

    it("restores by X-ANYCABLE-RESTORE-SID with no Connect or Subscribe call", async () => {
      fresh();
      await restoreWithoutRpc(server, log, broadcast, `g-header-${runtime}`, "header");
    });

    it("restores by ?sid= with no Connect or Subscribe call", async () => {
      fresh();
      await restoreWithoutRpc(server, log, broadcast, `g-query-${runtime}`, "query");
    });

    it("applies presence changes from Command answers (join_presence-style channels)", async () => {
      fresh();
      backend.onCommand = (req: CommandReq): CommandRes => {
        const params = JSON.parse(req.identifier) as { channel: string; room: string };
        const stream = `presence_${params.room}`;
        if (req.command === "subscribe")
          return {
            status: Status.SUCCESS,
            streams: [stream],
            transmissions: [JSON.stringify({ identifier: req.identifier, type: "confirm_subscription" })],
            env: { istate: { $p: stream } },
          };
        const user = (JSON.parse(req.connection_identifiers) as { user: string }).user;
        const action = (JSON.parse(req.data) as { action: string }).action;
        const presence =
          action === "enter"
            ? { type: "join", id: user, info: JSON.stringify({ name: user }) }
            : { type: "leave", id: user, info: "" };
        return { status: Status.SUCCESS, presence } as CommandRes;
      };
      const id = JSON.stringify({ channel: "PresenceChannel", room: `p-${runtime}` });
      const ann = await extClient(`${server.wsUrl}?user=ann`);
      const bob = await extClient(`${server.wsUrl}?user=bob`);
      for (const x of [ann, bob]) await subscribeRaw(x.c, id);
      const presenceOf = (x: { c: RawClient }, what: string) =>
        x.c.next((m) => m.identifier === id && m.type === "presence", what);
      ann.c.send({ command: "message", identifier: id, data: JSON.stringify({ action: "enter" }) });
      for (const x of [ann, bob])
        assert.deepEqual(await presenceOf(x, "ann's join"), {
          type: "presence",
          identifier: id,
          message: { type: "join", id: "ann", info: { name: "ann" } },
        });
      bob.c.send({ command: "presence", identifier: id, data: {} });
      assert.deepEqual((await presenceOf(bob, "info")).message, {
        type: "info",
        total: 1,
        records: [{ id: "ann", info: { name: "ann" } }],
      });
      ann.c.send({ command: "message", identifier: id, data: JSON.stringify({ action: "exit" }) });
      const leave = await presenceOf(bob, "ann's leave");
      assert.equal((leave.message as Msg).type, "leave");
      assert.equal((leave.message as Msg).id, "ann");
      for (const x of [ann, bob]) x.c.close();
    });

    it("connects normally for plain actioncable-v1-json clients and for unknown or garbled sids", async () => {
      fresh();
      const a = await extClient(`${server.wsUrl}?user=cached`);
      await subscribeRaw(a.c, JSON.stringify({ channel: "ChatChannel", room: "cached" }));
      a.c.close();
      await a.c.waitClosed();
      const cachedSid = String(a.welcome.sid);
      const cases: [string, string, Record<string, string> | undefined][] = [
        [`${server.wsUrl}?user=plain`, "actioncable-v1-json", { "X-ANYCABLE-RESTORE-SID": cachedSid }],
        [`${server.wsUrl}?user=unknown&sid=no-such-session`, EXT, undefined],
        [`${server.wsUrl}?user=garbled`, EXT, { "X-ANYCABLE-RESTORE-SID": "../{sid}%00;'\"=?" }],
        [`${server.wsUrl}?user=long&sid=${"s".repeat(5000)}`, EXT, undefined],
      ];
      for (const [i, [url, protocol, headers]] of cases.entries()) {
        const { c, welcome } = await extClient(url, headers, protocol);
        assert.equal(welcome.restored, undefined, JSON.stringify(welcome));
        assert.equal(log.connects(), 2 + i, `a Connect call for ${url}`);
        c.close();
      }
      // an X-Request-ID naming the cached session does not take it over: the session gets a fresh id
      const { c, welcome } = await extClient(`${server.wsUrl}?user=thief`, { "X-Request-ID": cachedSid });
      assert.equal(welcome.restored, undefined);
      assert.match(String(welcome.sid), /^[\w-]{21}$/);
      assert.notEqual(welcome.sid, cachedSid);
      await server.waitForOutput(
        `X-Request-ID is the id of a cached session, using a fresh session id sid=${welcome.sid} request_id=${cachedSid}`,
      );
      c.close();
      // and the cached session is still there for its owner
      const owner = await connect(server.wsUrl, EXT, { "X-ANYCABLE-RESTORE-SID": cachedSid });
      const back = await owner.next((m) => m.type === "welcome", "the owner's restore");
      assert.equal(back.restored, true);
      owner.close();
    });
  });

  describe(`[${runtime}] session restore in front of HTTP RPC (@anycable/serverless-js backend)`, () => {
    let backend: HttpBackend;
    let server: ServerProcess;
    const broadcast = (body: unknown) => publish(`${server.url}/_broadcast`, body, BROADCAST_KEY);
    const commands = () => backend.callsOf("command").map((c) => c.body);
    const log: RpcLog = {
      connects: () => backend.callsOf("connect").length,
      subscribes: () => commands().filter((b) => b.command === "subscribe").length,
      performs: () =>
        backend
          .callsOf("command")
          .filter((c) => c.body.command === "message")
          .map((c) => {
            const env = (c.body.env ?? {}) as { cstate?: unknown; istate?: unknown };
            return {
              sid: c.headers["x-anycable-meta-sid"] ?? "",
              ids: String(c.body.connection_identifiers),
              cstate: env.cstate,
              istate: env.istate,
            };
          }),
      disconnects: () =>
        backend.callsOf("disconnect").map((c) => ({
          identifiers: String(c.body.identifiers),
          subscriptions: c.body.subscriptions as string[],
        })),
    };

    beforeAll(async () => {
      backend = await startHttpBackend();
      backend.secret = derive("rpc-cable");
      backend.broadcastKey = BROADCAST_KEY;
      server = await startServer(runtime, {
        args: [
          `--rpc_host=${backend.url}`,
          `--secret=${SECRET}`,
          "--broker=memory",
          "--broadcast_adapter=http",
        ],
      });
      backend.broadcastUrl = `${server.url}/_broadcast`;
    });
    afterAll(async () => {
      await server?.stop();
      await backend?.stop();
    });

    it("restores by X-ANYCABLE-RESTORE-SID with no connect or subscribe request", async () => {
      backend.calls.length = 0;
      await restoreWithoutRpc(server, log, broadcast, `h-header-${runtime}`, "header");
    });

    it("restores by ?sid= with no connect or subscribe request", async () => {
      backend.calls.length = 0;
      await restoreWithoutRpc(server, log, broadcast, `h-query-${runtime}`, "query");
    });
  });

  describe(`[${runtime}] server restart: new epoch, reject_history, the core client recovers`, () => {
    let server: ServerProcess | undefined;
    afterAll(async () => {
      closeCables();
      await server?.stop("SIGKILL");
    });

    it("re-subscribes after SIGTERM and after SIGKILL, gets reject_history, then new broadcasts", async () => {
      const port = await freePort();
      const start = () =>
        startServer(runtime, {
          port,
          args: [
            "--broker=memory",
            "--norpc",
            "--public",
            "--broadcast_adapter=http",
            `--http_broadcast_port=${port}`,
          ],
        });
      const broadcast = (n: number) =>
        publish(`http://127.0.0.1:${port}/_broadcast`, { stream, data: JSON.stringify({ n }) });
      const stream = `restart/${runtime}`;
      server = await start();
      const epoch1 = epochOf(server.output());
      const wire = newWire();
      const cable = await coreCable(server.wsUrl, wire);
      const connects: unknown[] = [];
      cable.on("connect", (ev) => {
        connects.push(ev);
      });
      const channel = cable.streamFrom(stream);
      const { deliveries, infos } = collect(channel);
      await channel.ensureSubscribed();
      const identifier = String(wire.outbound[0]!.find((m) => m.command === "subscribe")?.identifier);
      for (const n of [1, 2]) assert.equal((await broadcast(n)).status, 201);
      await waitFor(() => deliveries.length === 2, "two messages");
      assert.deepEqual(
        deliveries.map((d) => d.meta),
        [1, 2].map((offset) => ({ stream, epoch: epoch1, offset })),
      );

      /** After a restart: the socket that got welcomed, what went over it, and the recovery. */
      const recovered = async (
        from: number,
        lastEpoch: string,
        lastOffset: number,
        n: number,
        epoch: string,
      ) => {
        await waitFor(() => infos.filter((t) => t === "history_not_found").length === n, "history_not_found");
        await waitFor(() => channel.state === "connected", "the channel connected again");
        const i = wire.inbound.findIndex(
          (frames, k) => k >= from && frames.some((m) => m.type === "welcome"),
        );
        assert.ok(i >= 0, "a welcomed socket after the restart");
        const welcome = wire.inbound[i]!.find((m) => m.type === "welcome")!;
        assert.equal(welcome.restored, undefined, "a normal connect, not a restore");
        const subscribe = wire.outbound[i]!.find((m) => m.command === "subscribe") as
          | { identifier: string; history: { since: number; streams: Record<string, Meta> } }
          | undefined;
        assert.ok(subscribe, `the client re-subscribed: ${JSON.stringify(wire.outbound[i])}`);
        assert.equal(subscribe.identifier, identifier);
        assert.deepEqual(subscribe.history.streams, { [stream]: { epoch: lastEpoch, offset: lastOffset } });
        assert.deepEqual(
          wire.inbound[i]!.filter((m) => m.identifier === identifier).map((m) => m.type),
          ["confirm_subscription", "reject_history"],
        );
        assert.equal((await broadcast(n + 2)).status, 201);
        await waitFor(() => deliveries.length === n + 2, "a broadcast after the restart");
        assert.deepEqual(deliveries[n + 1], { msg: { n: n + 2 }, meta: { stream, epoch, offset: 1 } });
        return { i, welcome };
      };

      // SIGTERM: the client is told server_restart, forgets its sid and connects afresh
      const termAt = wire.sockets.length;
      assert.equal(await server.stop("SIGTERM"), 0);
      assert.ok(
        wire.inbound[0]!.some(
          (m) => m.type === "disconnect" && m.reason === "server_restart" && m.reconnect === true,
        ),
        JSON.stringify(wire.inbound[0]),
      );
      server = await start();
      const epoch2 = epochOf(server.output());
      assert.notEqual(epoch2, epoch1);
      const first = await recovered(termAt, epoch1, 2, 1, epoch2);
      assert.equal(new URL(wire.urls[first.i]!).searchParams.get("sid") || "", "");

      // SIGKILL: no goodbye; the client tries to restore its sid, which the new server does not know
      const killAt = wire.sockets.length;
      const sid2 = String(first.welcome.sid);
      await server.stop("SIGKILL");
      server = await start();
      const epoch3 = epochOf(server.output());
      assert.notEqual(epoch3, epoch2);
      const second = await recovered(killAt, epoch2, 1, 2, epoch3);
      assert.equal(new URL(wire.urls[second.i]!).searchParams.get("sid"), sid2);
      assert.deepEqual(connects, [
        { reconnect: false, restored: false },
        { reconnect: true, restored: false },
        { reconnect: true, restored: false },
      ]);
      assert.deepEqual(
        deliveries.map((d) => d.msg),
        [1, 2, 3, 4].map((n) => ({ n })),
      );
    });
  });

  describe(`[${runtime}] --pong_timeout (--ping_interval=1 --pong_timeout=1), --sessions_ttl=0, --history_limit=3, --broker_max_streams=2`, () => {
    let server: ServerProcess;

    beforeAll(async () => {
      const port = await freePort();
      server = await startServer(runtime, {
        port,
        args: [
          "--broker=memory",
          "--norpc",
          "--public",
          "--broadcast_adapter=http",
          `--http_broadcast_port=${port}`,
          "--ping_interval=1",
          "--pong_timeout=1",
          "--sessions_ttl=0",
          "--history_limit=3",
          "--broker_max_streams=2",
        ],
      });
    });
    afterAll(async () => {
      closeCables();
      await server?.stop();
    });

    it("keeps no sessions to restore with --sessions_ttl=0 (history still works)", async () => {
      assert.match(server.output(), /Using in-memory broker \(epoch: \S+, .*sessions ttl: 0s/);
      const stream = `nottl/${runtime}`;
      const id = pubId(stream);
      const a = await extClient(server.wsUrl);
      autoPong(a.c); // this server holds extended clients to --pong_timeout
      await subscribeRaw(a.c, id);
      assert.equal((await publish(`${server.url}/_broadcast`, { stream, data: '"kept"' })).status, 201);
      const live = await a.c.next((m) => m.identifier === id && "message" in m, "live");
      assert.equal(live.offset, 1);
      a.c.close();
      await a.c.waitClosed();
      const b = await connect(`${server.wsUrl}?sid=${a.welcome.sid}`, EXT);
      autoPong(b);
      const welcome = await b.next((m) => m.type === "welcome", "welcome");
      assert.equal(welcome.restored, undefined, JSON.stringify(welcome));
      b.send({ command: "subscribe", identifier: id, history: { since: nowSec() - 60 } });
      assert.deepEqual(await framesUntil(b, (m) => m.type === "confirm_history", "history"), [
        { identifier: id, type: "confirm_subscription" },
        live,
        { type: "confirm_history", identifier: id },
      ]);
      b.close();
    });

    it("keeps the last --history_limit messages of a stream (3) and rejects offsets before them", async () => {
      assert.match(server.output(), /Using in-memory broker \(epoch: \S+, history limit: 3,/);
      const stream = `limit/${runtime}`;
      const id = pubId(stream);
      const a = await extClient(server.wsUrl);
      autoPong(a.c);
      await subscribeRaw(a.c, id);
      for (const n of [1, 2, 3, 4, 5])
        assert.equal(
          (await publish(`${server.url}/_broadcast`, { stream, data: JSON.stringify({ n }) })).status,
          201,
        );
      const live: Msg[] = [];
      for (const n of [1, 2, 3, 4, 5])
        live.push(await a.c.next((m) => m.identifier === id && "message" in m, `live ${n}`));
      const epoch = String(live[0]!.epoch);
      const ask = (offset: number) =>
        a.c.send({
          command: "history",
          identifier: id,
          history: { streams: { [stream]: { epoch, offset } } },
        });
      ask(3); // the oldest kept: what came after it
      assert.deepEqual(await framesUntil(a.c, (m) => m.type === "confirm_history", "from 3"), [
        live[3],
        live[4],
        { type: "confirm_history", identifier: id },
      ]);
      ask(2); // anycable-go's rule: the client's own offset must still be kept
      assert.deepEqual(await framesUntil(a.c, (m) => m.type === "reject_history", "from 2"), [
        { type: "reject_history", identifier: id },
      ]);
      a.c.send({ command: "history", identifier: id, history: { since: nowSec() - 60 } });
      assert.deepEqual(await framesUntil(a.c, (m) => m.type === "confirm_history", "since"), [
        live[2],
        live[3],
        live[4],
        { type: "confirm_history", identifier: id },
      ]);
      a.c.close();
    });

    it("keeps history for --broker_max_streams streams (2): the least recently published one goes", async () => {
      const streams = [1, 2, 3].map((n) => `bound${n}/${runtime}`);
      for (const stream of streams)
        assert.equal((await publish(`${server.url}/_broadcast`, { stream, data: '"kept?"' })).status, 201);
      const a = await extClient(server.wsUrl);
      autoPong(a.c);
      const since = nowSec() - 60;
      const historyOf = async (stream: string) => {
        const id = pubId(stream);
        a.c.send({ command: "subscribe", identifier: id, history: { since } });
        const frames = await framesUntil(
          a.c,
          (m) => m.identifier === id && m.type === "confirm_history",
          stream,
        );
        return frames.filter((m) => "message" in m).map((m) => m.message);
      };
      assert.deepEqual(
        await historyOf(streams[0]!),
        [],
        "the first stream's history was dropped for the third",
      );
      assert.deepEqual(await historyOf(streams[1]!), ["kept?"]);
      assert.deepEqual(await historyOf(streams[2]!), ["kept?"]);
      a.c.close();
    });

    it("disconnects an extended-protocol client that never answers with no_pong; plain clients are not held to it", async () => {
      const silent = await extClient(server.wsUrl);
      const plain = await extClient(server.wsUrl, undefined, "actioncable-v1-json");
      await silent.c.next((m) => m.type === "ping", "first ping");
      const pingedAt = Date.now();
      const bye = await silent.c.next((m) => m.type === "disconnect", "no_pong", 8000);
      const after = Date.now() - pingedAt;
      assert.deepEqual(bye, { type: "disconnect", reason: "no_pong", reconnect: true });
      // measured from when this client read the ping, which a busy machine may delay by a few
      // hundred ms (a CI run under Deno saw 752 ms): well short of the timeout is what is refused
      assert.ok(after >= 400, `disconnected ${after} ms after the ping, before --pong_timeout=1`);
      assert.equal(await silent.c.waitClosed(), 1000);
      await server.waitForOutput(
        new RegExp(`WRN disconnecting session due to no pongs sid=${silent.welcome.sid}`),
      );
      // the plain client, equally silent, keeps getting pings
      for (let i = 0; i < 3; i++) await plain.c.next((m) => m.type === "ping", `plain ping ${i}`, 5000);
      assert.equal(plain.c.closeCode, undefined);
      assert.equal(
        plain.c.messages.filter((m) => (m as Msg).type === "disconnect").length,
        0,
        JSON.stringify(plain.c.messages),
      );
      plain.c.close();
    });

    it("keeps an @anycable/core client that answers pings (protocolOptions.pongs) connected", async () => {
      const wire = newWire();
      const cable = await coreCable(server.wsUrl, wire, { pongs: true });
      const channel = cable.streamFrom(`pong/${runtime}`);
      const { deliveries } = collect(channel);
      await channel.ensureSubscribed();
      const pings = () => wire.inbound[0]!.filter((m) => m.type === "ping").length;
      await waitFor(() => pings() >= 4, "four pings", 10_000);
      assert.equal(wire.sockets.length, 1, "never reconnected");
      assert.equal(cable.state, "connected");
      assert.deepEqual(
        wire.inbound[0]!.filter((m) => m.type === "disconnect"),
        [],
      );
      assert.ok(
        wire.outbound[0]!.filter((m) => m.command === "pong").length >= 3,
        JSON.stringify(wire.outbound[0]),
      );
      const res = await publish(`${server.url}/_broadcast`, {
        stream: `pong/${runtime}`,
        data: '"still here"',
      });
      assert.equal(res.status, 201);
      await waitFor(() => deliveries.length === 1, "a broadcast");
      assert.equal(deliveries[0]!.msg, "still here");
    });

    it("disconnects a default @anycable/core client (no pongs option): it sends no pongs", async () => {
      const wire = newWire();
      const cable = await coreCable(server.wsUrl, wire);
      await cable.connect();
      await waitFor(
        () => wire.inbound[0]!.some((m) => m.type === "disconnect"),
        "the server's disconnect",
        8000,
      );
      assert.deepEqual(
        wire.inbound[0]!.find((m) => m.type === "disconnect"),
        { type: "disconnect", reason: "no_pong", reconnect: true },
      );
      assert.deepEqual(
        wire.outbound[0]!.filter((m) => m.command === "pong"),
        [],
      );
      // it reconnects by itself (reconnect: true)
      await waitFor(() => wire.sockets.length >= 2 && cable.state === "connected", "reconnected");
    });
  });
}
