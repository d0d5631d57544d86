// Embedded NATS across three anycable-ts processes (two under the describe's runtime, one under
// the other): each runs its own nats-server child, the three form a NATS cluster through
// --enats_cluster_routes alone, and a publication made on one node reaches a client on each. An
// embedded nats-server that dies is restarted and the node rejoins; shutdown stops the children.

import { afterAll, beforeAll, describe, it } from "bun:test";
import assert from "node:assert/strict";
import { freePort } from "../support/ports.ts";
import { publish } from "../support/publish.ts";
import { e2eRuntimes, type ServerProcess, type ServerRuntime, startServer } from "../support/server.ts";
import { hasService } from "../support/services.ts";
import { waitFor } from "../support/wait.ts";
import { connect, type RawClient } from "../support/ws_client.ts";

const runtimes = e2eRuntimes(["bun", "deno"]);
const enabled = hasService("nats-server");
const STREAM = "enats-cluster";
const ID = JSON.stringify({ channel: "$pubsub", stream_name: STREAM });

function broadcastUrl(s: ServerProcess): string {
  const m = /--http_broadcast_port=(\d+)/.exec(s.proc.spawnargs.join(" "));
  return `http://127.0.0.1:${m ? Number(m[1]) : s.port}/_broadcast`;
}

/** The PID of the node's nats-server child, from its latest "started"/"restarted" log line. */
function natsPid(s: ServerProcess): number {
  const pids = [...s.output().matchAll(/Embedded NATS server (?:started|restarted)\b.*?pid: (\d+)\)/g)];
  const restarted = [...s.output().matchAll(/embedded NATS server restarted \(pid: (\d+)\)/g)];
  const last = restarted.at(-1) ?? pids.at(-1);
  if (!last) throw new Error(`no nats-server pid in the output:\n${s.output()}`);
  return Number(last[1]);
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function subscribed(server: ServerProcess): Promise<RawClient> {
  const c = await connect(server.wsUrl);
  await c.next((m) => m.type === "welcome", "welcome");
  c.send({ command: "subscribe", identifier: ID });
  await c.next((m) => m.type === "confirm_subscription", "confirm");
  return c;
}

const got = (c: RawClient, tag: string) =>
  c.messages.some((m) => (m as { identifier?: string; message?: { tag?: string } }).message?.tag === tag);

/** Publishes on `from` until every client got one (the cluster's routes and interest settle). */
async function reachesAll(from: ServerProcess, clients: RawClient[], what: string): Promise<void> {
  let n = 0;
  const tags: string[] = [];
  await waitFor(
    async () => {
      const tag = `${what}-${++n}`;
      tags.push(tag);
      await publish(broadcastUrl(from), { stream: STREAM, data: JSON.stringify({ tag }) });
      return clients.every((c) => tags.some((t) => got(c, t)));
    },
    `a publication on one node reaching all three (${what})`,
    20_000,
    250,
  );
}

for (const runtime of runtimes) {
  const other: ServerRuntime = runtime === "bun" ? "deno" : "bun";
  describe.if(enabled)(`[${runtime}] embedded NATS cluster (with a ${other} node)`, () => {
    let nodes: ServerProcess[] = [];
    beforeAll(async () => {
      const ports = await Promise.all(
        [0, 1, 2].map(async () => ({ client: await freePort(), cluster: await freePort() })),
      );
      const routes = ports.map((p) => `nats://127.0.0.1:${p.cluster}`).join(",");
      nodes = await Promise.all(
        ports.map((p, i) =>
          startServer(i === 1 ? other : runtime, {
            args: [
              "--public",
              "--norpc",
              "--broadcast_adapter=http",
              "--pubsub=nats",
              "--embed_nats",
              `--enats_addr=nats://127.0.0.1:${p.client}`,
              `--enats_cluster=nats://127.0.0.1:${p.cluster}`,
              `--enats_cluster_routes=${routes}`,
            ],
          }),
        ),
      );
    });
    afterAll(async () => {
      // SIGTERM: a node stops its child itself; any child left over is killed by PID
      const children = nodes.flatMap((n) =>
        [...n.output().matchAll(/pid: (\d+)\)/g)].map((m) => Number(m[1])),
      );
      await Promise.all(nodes.map((n) => n.stop("SIGTERM")));
      for (const pid of children) if (alive(pid)) process.kill(pid, "SIGKILL");
    });

    it("forms a cluster through --enats_cluster_routes: a publication on one node reaches a client on each", async () => {
      for (const n of nodes)
        assert.match(n.output(), /Embedded NATS server started: nats:\/\/127\.0\.0\.1:\d+ \(server_name: /);
      const clients = await Promise.all(nodes.map(subscribed));
      await reachesAll(nodes[0]!, clients, "first");
      await reachesAll(nodes[2]!, clients, "from-third");
      for (const c of clients) c.close();
    });

    it("restarts an embedded nats-server that died, and the node is in the cluster again", async () => {
      const node = nodes[1]!;
      const pid = natsPid(node);
      process.kill(pid, "SIGKILL");
      await node.waitForOutput("embedded NATS server restarted", 15_000);
      const next = natsPid(node);
      assert.notEqual(next, pid);
      assert.ok(alive(next));
      const clients = await Promise.all(nodes.map(subscribed));
      await reachesAll(nodes[1]!, clients, "after-restart");
      for (const c of clients) c.close();
    });

    it("stops its nats-server on shutdown", async () => {
      const node = nodes[2]!;
      const pid = natsPid(node);
      assert.ok(alive(pid));
      assert.equal(await node.stop("SIGTERM"), 0);
      await waitFor(() => !alive(pid), "the nats-server child to exit");
    });
  });
}

// Registered only when Bun servers run (a skip would count as one under CI=true).
if (runtimes.includes("bun")) {
  describe.if(enabled)("[bun] embedded NATS without nats-server", () => {
    it("refuses to start with one line saying how to install it", async () => {
      const server = await startServer("bun", {
        noWait: true,
        args: [
          "--public",
          "--norpc",
          "--embed_nats",
          `--enats_addr=nats://127.0.0.1:${await freePort()}`,
          "--enats_bin=/nonexistent/nats-server",
        ],
      });
      assert.equal(await server.exited, 1);
      assert.match(
        server.output(),
        /ERR failed to start: embedded NATS failed to start: embedded NATS needs the nats-server executable, and "\/nonexistent\/nats-server" was not found: install it \(Debian\/Ubuntu: apt-get install nats-server;.*--enats_bin/,
      );
    });
  });
}
