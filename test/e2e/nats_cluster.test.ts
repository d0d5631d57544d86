// A 2-node cluster over a real nats-server, one node under Bun and one under Deno (`--pubsub=nats`,
// `--broadcast_adapter=http,nats`): HTTP publications and remote disconnects accepted by one node
// reach the clients of both exactly once; publications made as anycable-rb's nats adapter makes
// them (a PUB of the broadcast JSON to __anycable__) too; a nats-server restart mid-stream is
// survived (local clients served meanwhile, then reconnect and resubscribe).

import { afterAll, beforeAll, describe, it } from "bun:test";
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as natsConnect } from "@nats-io/transport-node";
import { freePort } from "../support/ports.ts";
import { metric, publish } from "../support/publish.ts";
import { e2eRuntimes, type ServerProcess, type ServerRuntime, startServer } from "../support/server.ts";
import { hasService, type NatsProcess, startNats } from "../support/services.ts";
import { waitFor } from "../support/wait.ts";
import { connect, type RawClient } from "../support/ws_client.ts";

const all = e2eRuntimes(["bun", "deno", "binary"]);
const runtimes = all.filter((r) => r !== "binary");
const enabled = hasService("nats-server");
const STREAM = "nats-cluster";
const ID = JSON.stringify({ channel: "$pubsub", stream_name: STREAM });

async function subscribed(server: ServerProcess): Promise<RawClient> {
  const c = await connect(server.wsUrl);
  await c.next((m) => m.type === "welcome", "welcome");
  c.send({ command: "subscribe", identifier: ID });
  await c.next((m) => m.type === "confirm_subscription", "confirm");
  return c;
}

/** The messages of the stream a client got, in order (removed from its queue). */
async function received(c: RawClient, n: number, what: string): Promise<unknown[]> {
  const out: unknown[] = [];
  for (let i = 0; i < n; i++)
    out.push((await c.next((m) => m.identifier === ID, `${what} #${i + 1}`)).message);
  return out;
}

const natsPublish = async (url: string, subject: string, payloads: string[]) => {
  const nc = await natsConnect({ servers: url });
  for (const p of payloads) nc.publish(subject, p);
  await nc.flush();
  await nc.close();
};

for (const runtime of runtimes) {
  const other: ServerRuntime = runtime === "bun" ? "deno" : "bun";
  describe.if(enabled)(`[${runtime}] NATS cluster (with a ${other} node)`, () => {
    let nats: NatsProcess;
    let a: ServerProcess;
    let b: ServerProcess;
    const args = (url: string) => [
      "--public",
      "--norpc",
      "--pubsub=nats",
      "--broadcast_adapter=http,nats",
      `--nats_servers=${url}`,
      "--metrics_http=/metrics",
    ];
    beforeAll(async () => {
      nats = await startNats();
      [a, b] = await Promise.all([
        startServer(runtime, { args: args(nats.url) }),
        startServer(other, { args: args(nats.url) }),
      ]);
      for (const s of [a, b]) await s.waitForOutput("subscribing for broadcasts");
    });
    afterAll(async () => {
      await Promise.all([a?.stop("SIGKILL"), b?.stop("SIGKILL")]);
      await nats?.stop();
    });

    /**
     * Clients on A and B whose subscriptions have reached NATS: probes published on A until one
     * arrives on B, then each client's queue is emptied once the last probe got there.
     */
    async function clients(): Promise<[RawClient, RawClient]> {
      const ca = await subscribed(a);
      const cb = await subscribed(b);
      let probe = 0;
      await waitFor(
        async () => {
          await publish(broadcastUrl(a), { stream: STREAM, data: JSON.stringify({ probe: ++probe }) });
          return streamMessages(cb).length > 0;
        },
        "node B's subscription through NATS",
        10_000,
        200,
      );
      for (const c of [ca, cb]) {
        await c.next(
          (m) => m.identifier === ID && (m.message as { probe?: number }).probe === probe,
          "last probe",
        );
        c.messages.length = 0;
        c.raw.length = 0;
      }
      return [ca, cb];
    }

    it("delivers an HTTP publication accepted by one node to the clients of both, exactly once", async () => {
      const [ca, cb] = await clients();
      const url = broadcastUrl(a);
      assert.equal((await publish(url, { stream: STREAM, data: '{"n":1}' })).status, 201);
      assert.equal(
        (
          await publish(url, [
            { stream: STREAM, data: '{"n":2}' },
            { stream: STREAM, data: '"end"' },
          ])
        ).status,
        201,
      );
      assert.deepEqual(await received(ca, 3, "on A"), [{ n: 1 }, { n: 2 }, "end"]);
      assert.deepEqual(await received(cb, 3, "on B"), [{ n: 1 }, { n: 2 }, "end"]);
      // nothing more: a duplicate would have come before "end" on the same subject
      assert.deepEqual(streamMessages(ca), []);
      assert.deepEqual(streamMessages(cb), []);
      ca.close();
      cb.close();
    });

    it("delivers publications made as anycable-rb's nats adapter makes them; malformed ones are counted", async () => {
      const [ca, cb] = await clients();
      const before = await metric(`${b.url}/metrics`, "failed_broadcast_msg_total");
      // AnyCable::BroadcastAdapters::Nats#raw_broadcast: publish(channel, payload.to_json)
      await natsPublish(nats.url, "__anycable__", [
        JSON.stringify({ stream: STREAM, data: JSON.stringify({ from: "rb" }) }),
        "not json",
        JSON.stringify([
          { stream: STREAM, data: '"batch-1"' },
          { stream: STREAM, data: '"batch-2"' },
        ]),
      ]);
      assert.deepEqual(await received(ca, 3, "on A"), [{ from: "rb" }, "batch-1", "batch-2"]);
      assert.deepEqual(await received(cb, 3, "on B"), [{ from: "rb" }, "batch-1", "batch-2"]);
      await waitFor(
        async () => (await metric(`${b.url}/metrics`, "failed_broadcast_msg_total")) === before + 1,
        "the malformed payload counted on B",
      );
      ca.close();
      cb.close();
    });

    it("delivers a remote disconnect accepted by one node to the sessions on the other", async () => {
      const [ca, cb] = await clients();
      // public mode identifies a session as {"sid": <its session id>}
      const sidB = await sessionId(b);
      const url = broadcastUrl(a);
      assert.equal(
        (
          await publish(url, {
            command: "disconnect",
            payload: { identifier: JSON.stringify({ sid: sidB.sid }), reconnect: false },
          })
        ).status,
        201,
      );
      const bye = await sidB.client.next((m) => m.type === "disconnect", "the remote disconnect on B");
      assert.equal(bye.reason, "remote");
      await sidB.client.waitClosed();
      assert.equal(ca.closeCode, undefined);
      assert.equal(cb.closeCode, undefined);
      ca.close();
      cb.close();
    });

    it("survives a nats-server restart: local clients served meanwhile, then reconnect and resubscribe", async () => {
      const [ca, cb] = await clients();
      await nats.stop();
      await a.waitForOutput(/WRN connection failed .*context=pubsub/);
      const url = broadcastUrl(a);
      assert.equal((await publish(url, { stream: STREAM, data: '"while down"' })).status, 201);
      assert.deepEqual(await received(ca, 1, "on A while NATS is down"), ["while down"]);
      assert.equal((await fetch(`${b.url}/health`)).status, 200);
      nats = await nats.restart();
      for (const s of [a, b]) await s.waitForOutput(/connection restored .*context=pubsub/, 15_000);
      let n = 0;
      await waitFor(
        async () => {
          await publish(url, { stream: STREAM, data: JSON.stringify({ again: ++n }) });
          return cb.messages.some((m) => (m as { identifier?: string }).identifier === ID);
        },
        "a publication on A reaching B after the restart",
        10_000,
        200,
      );
      const first = await cb.next((m) => m.identifier === ID, "on B");
      assert.match(JSON.stringify(first.message), /^\{"again":\d+\}$/);
      assert.ok(!cb.raw.some((r) => r.includes("while down")), "B never got what A delivered alone");
      ca.close();
      cb.close();
    });
  });
}

/** The HTTP broadcast endpoint (public mode: on the free port test/support/server.ts chose). */
function broadcastUrl(s: ServerProcess): string {
  const m = /--http_broadcast_port=(\d+)/.exec(s.proc.spawnargs.join(" "));
  return `http://127.0.0.1:${m ? Number(m[1]) : s.port}/_broadcast`;
}

function streamMessages(c: RawClient): unknown[] {
  return c.messages.filter((m) => (m as { identifier?: string }).identifier === ID);
}

async function sessionId(server: ServerProcess): Promise<{ sid: string; client: RawClient }> {
  const client = await connect(server.wsUrl);
  const welcome = await client.next((m) => m.type === "welcome", "welcome");
  return { sid: String(welcome.sid), client };
}

// The NATS modules are loaded only when configured: one run of the single-file executable, from an
// empty directory, with embedded NATS, NATS pub/sub and the nats broadcaster proves they are in
// the bundle.
describe.if(enabled && all.includes("binary"))("[binary] NATS pub/sub, broadcaster and embedded NATS", () => {
  it("delivers an HTTP publication through NATS and one PUBlished to __anycable__", async () => {
    const natsPort = await freePort();
    const server = await startServer("binary", {
      cwd: mkdtempSync(join(tmpdir(), "acts-bin-nats-")),
      args: [
        "--public",
        "--norpc",
        "--embed_nats",
        `--enats_addr=nats://127.0.0.1:${natsPort}`,
        "--pubsub=nats",
        "--broadcast_adapter=http,nats",
      ],
    });
    try {
      await server.waitForOutput("subscribing for broadcasts");
      const c = await subscribed(server);
      let n = 0;
      await waitFor(
        async () => {
          await publish(broadcastUrl(server), { stream: STREAM, data: JSON.stringify({ n: ++n }) });
          return streamMessages(c).length > 0;
        },
        "an HTTP publication through NATS",
        10_000,
        200,
      );
      await natsPublish(`nats://127.0.0.1:${natsPort}`, "__anycable__", [
        JSON.stringify({ stream: STREAM, data: '"from nats"' }),
      ]);
      await c.next((m) => m.identifier === ID && m.message === "from nats", "the NATS publication");
      c.close();
    } finally {
      await server.stop("SIGTERM");
    }
  });
});
