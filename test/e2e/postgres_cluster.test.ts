// Clusters on PostgreSQL only (no Redis, no NATS): --broadcast_adapter=http,postgres with pub/sub
// chosen as postgres by itself, nodes under Bun and Deno mixed. Publications are made the ways
// applications make them: psql (Debian's client) and the npm client inside transactions (committed
// ones delivered at COMMIT in order, rolled-back ones never), HTTP broadcasts, remote disconnects.
// Faults: PostgreSQL restarted mid-stream (nothing lost: caught up from the tables), a node
// SIGKILLed holding claimed rows (claimed again after the claim timeout), bad rows counted and
// skipped, a schema from a newer version (one-line startup error).
import { afterAll, afterEach, beforeAll, describe, it } from "bun:test";
import assert from "node:assert/strict";
import { pgClient, psql } from "../support/pg_probe.ts";
import { publish } from "../support/publish.ts";
import { e2eRuntimes, type ServerProcess, type ServerRuntime, startServer } from "../support/server.ts";
import { hasService, type PostgresProcess, startPostgres } from "../support/services.ts";
import { waitFor } from "../support/wait.ts";
import { connect, type RawClient } from "../support/ws_client.ts";

const runtimes = e2eRuntimes(["bun", "deno"]);
const enabled = hasService("postgres");
const STREAM = "pg-stream";
const ID = JSON.stringify({ channel: "$pubsub", stream_name: STREAM });

function otherThan(r: ServerRuntime): ServerRuntime {
  return runtimes.find((x) => x !== r) ?? r;
}

const nodeArgs = (url: string, extra: string[] = []) => [
  "--public",
  "--norpc",
  "--secret=e2e", // puts the broadcast endpoint on the main port (--public drops its auth)
  "--broadcast_adapter=http,postgres",
  `--postgres_url=${url}`,
  "--postgres_poll_interval_milliseconds=200",
  "--metrics_http=/metrics",
  ...extra,
];

const READY = "Accept broadcasts from PostgreSQL table";

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

/** What a client got on the stream so far, in order. */
function got(s: Subscriber): unknown[] {
  return s.client.messages.flatMap((m) => {
    const msg = m as { identifier?: string; message?: unknown };
    return msg.identifier === ID ? [msg.message] : [];
  });
}

const isWarmup = (m: unknown) => typeof m === "string" && m.startsWith("warmup-");

/**
 * Each node reads a stream once its cursor is set: publishes markers until every subscriber has
 * one, then drops the markers. Non-consuming while it waits: a marker a slow node delivers after
 * its attempt gave up is not left to a stale waiter, which would take later messages too. A node
 * delivers a stream in offset order, so once every subscriber holds marker i no earlier marker
 * can still arrive.
 */
async function warmUp(url: string, subs: Subscriber[]): Promise<void> {
  for (let i = 0; ; i++) {
    const marker = `warmup-${i}`;
    await viaPsql(url, marker);
    try {
      await waitFor(() => subs.every((s) => got(s).includes(marker)), `warm-up marker ${i}`, 1000);
      break;
    } catch {
      if (i > 20) throw new Error("the nodes never all delivered a warm-up marker");
    }
  }
  for (const s of subs) {
    for (let j = s.client.messages.length - 1; j >= 0; j--) {
      const m = s.client.messages[j] as { identifier?: string; message?: unknown };
      if (m?.identifier === ID && isWarmup(m.message)) {
        s.client.messages.splice(j, 1);
        s.client.raw.splice(j, 1);
      }
    }
  }
}

/** Waits for `marker` on every subscriber, then returns what each got before it (consumed). */
async function upTo(
  subs: Subscriber[],
  marker: unknown,
  what: string,
  timeoutMs = 10_000,
): Promise<unknown[][]> {
  // Once one subscriber failed the others stop taking messages: nothing is left consuming.
  let failed = false;
  return Promise.all(
    subs.map(async (s, i) => {
      const seen: unknown[] = [];
      while (!failed) {
        const m = await s.client
          .next((x) => x.identifier === ID, `${what} on subscriber ${i}`, timeoutMs)
          .catch((err: Error) => {
            failed = true;
            throw err;
          });
        if (m.message === marker) return seen;
        seen.push(m.message);
      }
      return seen;
    }),
  );
}

/** anycable-rb's Postgres adapter: SELECT anycable_publish(stream, <broadcast JSON>). */
const publication = (data: unknown, meta?: Record<string, string>) =>
  JSON.stringify(
    meta
      ? { stream: STREAM, data: JSON.stringify(data), meta }
      : { stream: STREAM, data: JSON.stringify(data) },
  );
const sqlString = (s: string) => `'${s.replaceAll("'", "''")}'`;
const viaPsql = (url: string, data: unknown) =>
  psql(url, `SELECT anycable_publish(${sqlString(STREAM)}, ${sqlString(publication(data))})`);

async function metric(server: ServerProcess, name: string): Promise<number> {
  const body = await (await fetch(`${server.url}/metrics`)).text();
  const full = `anycable_go_${name}`;
  const line = body.split("\n").find((l) => l.startsWith(`${full} `) || l.startsWith(`${full}{`));
  return line ? Number(line.split(" ").pop()) : 0;
}

for (const runtime of runtimes) {
  const other = otherThan(runtime);

  describe.if(enabled)(`[${runtime}] postgres cluster of three (node B under ${other})`, () => {
    let pg: PostgresProcess;
    let nodes: ServerProcess[];
    const clients: RawClient[] = [];
    beforeAll(async () => {
      pg = await startPostgres();
      nodes = await Promise.all([
        startServer(runtime, { args: nodeArgs(pg.url) }),
        startServer(other, { args: nodeArgs(pg.url) }),
        startServer(runtime, { args: nodeArgs(pg.url) }),
      ]);
      await Promise.all(nodes.map((n) => n.waitForOutput(READY)));
    }, 60_000);
    afterEach(() => {
      for (const c of clients.splice(0)) c.close();
    });
    afterAll(async () => {
      await Promise.all((nodes ?? []).map((n) => n.stop("SIGKILL")));
      await pg?.destroy();
    });

    async function subscribers(): Promise<Subscriber[]> {
      const subs: Subscriber[] = [];
      for (const n of nodes) subs.push(await subscriber(n), await subscriber(n));
      clients.push(...subs.map((s) => s.client));
      await warmUp(pg.url, subs);
      return subs;
    }

    it("picks pub/sub postgres by itself and says so", () => {
      for (const n of nodes) {
        assert.match(
          n.output(),
          /Starting PostgreSQL pub\/sub: postgres:\/\/postgres@127\.0\.0\.1:\d+\/postgres/,
        );
        assert.match(n.output(), /PostgreSQL signalling schema (created or updated|up to date)/);
      }
    });

    it("delivers psql publications once to every client of every node, in order, batches and meta included", async () => {
      const subs = await subscribers();
      for (let i = 1; i <= 5; i++) await viaPsql(pg.url, { n: i });
      await psql(
        pg.url,
        `SELECT anycable_publish(${sqlString(STREAM)}, ${sqlString(
          JSON.stringify([
            { stream: STREAM, data: JSON.stringify("b1") },
            { stream: STREAM, data: JSON.stringify("b2"), meta: { exclude_socket: subs[2].sid } },
          ]),
        )})`,
      );
      await viaPsql(pg.url, "end");
      const seen = await upTo(subs, "end", "the psql publications");
      for (const [i, s] of seen.entries()) {
        const expected = [{ n: 1 }, { n: 2 }, { n: 3 }, { n: 4 }, { n: 5 }, "b1", ...(i === 2 ? [] : ["b2"])];
        assert.deepEqual(s, expected, `subscriber ${i}`);
      }
      await waitFor(
        async () => (await psql(pg.url, "SELECT count(*) FROM anycable_broadcasts")) === "0",
        "rows deleted",
      );
    });

    it("delivers a transaction's publications at COMMIT, in order; never a rolled-back one's", async () => {
      const subs = await subscribers();
      const app = pgClient(pg.url, 4);
      const handled = async () =>
        (await Promise.all(nodes.map((n) => metric(n, "publications_total")))).reduce((a, b) => a + b, 0);
      try {
        await app
          .begin(async (tx) => {
            await tx`SELECT anycable_publish(${STREAM}, ${publication("never")})`;
            throw new Error("rollback");
          })
          .catch(() => {});
        let commit!: () => void;
        const held = new Promise<void>((r) => {
          commit = r;
        });
        let opened!: () => void;
        const open = new Promise<void>((r) => {
          opened = r;
        });
        const long = app.begin(async (tx) => {
          for (const x of ["t1", "t2", "t3"]) await tx`SELECT anycable_publish(${STREAM}, ${publication(x)})`;
          opened();
          await held;
        });
        await open;
        // Another stream is not held up by the open transaction...
        const before = await handled();
        await app`SELECT anycable_publish('pg-other', ${JSON.stringify({ stream: "pg-other", data: '"x"' })})`;
        await waitFor(async () => (await handled()) === before + 1, "the other stream's publication handled");
        // ...while nothing of the open transaction can be seen, so nothing of it can be claimed.
        assert.equal(await psql(pg.url, "SELECT count(*) FROM anycable_broadcasts"), "0");
        // A publication on the same stream waits for the transaction (the stream's offset row is
        // locked until it ends), so it comes after the transaction's, whatever the timing.
        const after = app`SELECT anycable_publish(${STREAM}, ${publication("after")})`;
        commit();
        await long;
        await after;
        await app`SELECT anycable_publish(${STREAM}, ${publication("end")})`;
        const seen = await upTo(subs, "end", "the committed transaction");
        for (const s of seen) assert.deepEqual(s, ["t1", "t2", "t3", "after"]);
        assert.equal(await psql(pg.url, `SELECT count(*) FROM anycable_broadcasts`), "0");
      } finally {
        await app.end();
      }
    });

    it("fans an HTTP publication accepted by one node out to every node once", async () => {
      const subs = await subscribers();
      for (const n of [1, 2, 3]) {
        const res = await publish(`${nodes[n - 1].url}/_broadcast`, {
          stream: STREAM,
          data: JSON.stringify({ h: n }),
        });
        assert.equal(res.status, 201);
      }
      // Accepted by three nodes, each written by its own node: no order between them.
      for (const [i, s] of subs.entries()) {
        const seen: string[] = [];
        while (seen.length < 3) {
          seen.push(
            JSON.stringify(
              (await s.client.next((m) => m.identifier === ID, `HTTP on subscriber ${i}`)).message,
            ),
          );
        }
        assert.deepEqual(seen.sort(), ['{"h":1}', '{"h":2}', '{"h":3}'], `subscriber ${i}: each once`);
      }
      // Anything more (a copy) would come before a marker each node writes after them.
      for (const n of nodes)
        await publish(`${n.url}/_broadcast`, { stream: STREAM, data: JSON.stringify(`end-${n.port}`) });
      for (const [i, s] of subs.entries()) {
        const rest: unknown[] = [];
        while (rest.filter((x) => String(x).startsWith("end-")).length < 3) {
          rest.push((await s.client.next((m) => m.identifier === ID, `markers on subscriber ${i}`)).message);
        }
        assert.deepEqual(
          rest.filter((x) => !String(x).startsWith("end-")),
          [],
          `subscriber ${i}: no copies`,
        );
      }
    });

    it("sends anycable_remote_command's disconnect to the session on whichever node holds it", async () => {
      const onB = await subscriber(nodes[1]);
      const onA = await subscriber(nodes[0]);
      clients.push(onB.client, onA.client);
      const cmd = JSON.stringify({
        command: "disconnect",
        payload: { identifier: JSON.stringify({ sid: onB.sid }), reconnect: false },
      });
      assert.equal(await psql(pg.url, `SELECT anycable_remote_command(${sqlString(cmd)}) > 0`), "t");
      assert.deepEqual(await onB.client.next((m) => m.type === "disconnect", "disconnect on B"), {
        type: "disconnect",
        reason: "remote",
        reconnect: false,
      });
      assert.equal(await onB.client.waitClosed(), 1000);
      onA.client.send({ command: "ping" });
      await onA.client.next((m) => m.type === "pong", "A's client still served");
    });

    it("counts rows that are not publications (failed_broadcast_msg_total) and skips them", async () => {
      const subs = await subscribers();
      const before = (await Promise.all(nodes.map((n) => metric(n, "failed_broadcast_msg_total")))).reduce(
        (a, b) => a + b,
        0,
      );
      await psql(
        pg.url,
        `SELECT anycable_publish(${sqlString(STREAM)}, '{oops'); SELECT anycable_publish(${sqlString(STREAM)}, '{"data":"no stream"}')`,
      );
      await viaPsql(pg.url, "after");
      const seen = await upTo(subs, "after", "the publication after the bad rows");
      for (const s of seen) assert.deepEqual(s, []);
      await waitFor(async () => {
        const now = (await Promise.all(nodes.map((n) => metric(n, "failed_broadcast_msg_total")))).reduce(
          (a, b) => a + b,
          0,
        );
        return now - before === 2;
      }, "two failed publications counted across the cluster");
      assert.equal(
        await psql(pg.url, "SELECT count(*) FROM anycable_broadcasts"),
        "0",
        "deleted, not retried",
      );
    });
  });

  describe.if(enabled)(`[${runtime}] postgres cluster faults (node B under ${other})`, () => {
    const servers: ServerProcess[] = [];
    const clients: RawClient[] = [];
    let pg: PostgresProcess | undefined;
    afterEach(async () => {
      for (const c of clients.splice(0)) c.close();
      await Promise.all(servers.splice(0).map((s) => s.stop("SIGKILL")));
      await pg?.destroy();
      pg = undefined;
    });

    async function warmSubscribers(url: string, ns: ServerProcess[]): Promise<Subscriber[]> {
      const subs = await Promise.all(ns.map((n) => subscriber(n)));
      clients.push(...subs.map((s) => s.client));
      await warmUp(url, subs);
      return subs;
    }

    it("PostgreSQL restarted mid-stream: nothing committed is lost or duplicated, order kept", async () => {
      pg = await startPostgres();
      const url = pg.url;
      const ns = await Promise.all([
        startServer(runtime, { args: nodeArgs(url) }),
        startServer(other, { args: nodeArgs(url) }),
      ]);
      servers.push(...ns);
      await Promise.all(ns.map((n) => n.waitForOutput(READY)));
      const subs = await warmSubscribers(url, ns);
      for (let i = 1; i <= 3; i++) await viaPsql(url, i);
      assert.deepEqual(await upTo(subs, 3, "before the restart"), [
        [1, 2],
        [1, 2],
      ]);
      await pg.stop("immediate");
      pg = await pg.restart();
      // Committed before the nodes are back: caught up from the table once they reconnect.
      for (let i = 4; i <= 6; i++) await viaPsql(url, i);
      await Promise.all(ns.map((n) => n.waitForOutput("listening again", 15_000)));
      for (let i = 7; i <= 9; i++) await viaPsql(url, i);
      await viaPsql(url, "end");
      const seen = await upTo(subs, "end", "after the restart", 15_000);
      for (const [i, s] of seen.entries())
        assert.deepEqual(s, [4, 5, 6, 7, 8, 9], `subscriber ${i} after the restart`);
      for (const n of ns) assert.equal(n.proc.exitCode, null, "still running");
    }, 60_000);

    it("a node SIGKILLed holding claimed rows: another claims them after the claim timeout; nothing lost", async () => {
      pg = await startPostgres();
      const url = pg.url;
      const args = nodeArgs(url, ["--postgres_claim_timeout_seconds=2", "--postgres_batch_size=20"]);
      const ns = await Promise.all([
        startServer(runtime, { args: [...args, "--node_id=survivor-a"] }),
        startServer(other, { args: [...args, "--node_id=survivor-b"] }),
        startServer(runtime, { args: [...args, "--node_id=victim"] }),
      ]);
      servers.push(...ns);
      await Promise.all(ns.map((n) => n.waitForOutput(READY)));
      const subs = await warmSubscribers(url, ns.slice(0, 2));
      const victim = ns[2];
      // The numbers (payload data) of the rows the victim holds claimed.
      const claimedByVictim = async () =>
        (
          await psql(
            url,
            `SELECT payload FROM anycable_broadcasts WHERE claimed_by LIKE 'victim#%' ORDER BY "offset"`,
          )
        )
          .split("\n")
          .filter((x) => x !== "")
          .map((p) => Number(JSON.parse(p).data));
      // Publish one row per transaction and stop the victim mid-burst until it holds claimed rows
      // (claimed, not yet deleted: while it hands them on and waits for pub/sub to store them).
      const app = pgClient(url, 1);
      let held: number[] = [];
      let total = 0;
      try {
        for (let attempt = 0; attempt < 40 && held.length === 0; attempt++) {
          const burst = (async () => {
            for (let k = 0; k < 200; k++) {
              total++;
              await app`SELECT anycable_publish(${STREAM}, ${JSON.stringify({ stream: STREAM, data: String(total) })})`;
            }
          })();
          await new Promise((r) => setTimeout(r, 10 + (attempt % 8) * 7));
          victim.proc.kill("SIGSTOP");
          await burst;
          held = await claimedByVictim();
          if (held.length === 0) victim.proc.kill("SIGCONT");
        }
      } finally {
        await app.end();
      }
      assert.ok(held.length > 0, "the stopped node holds claimed rows");
      victim.proc.kill("SIGKILL");
      await victim.exited;
      const marker = "end";
      await viaPsql(url, marker);
      const seen = await upTo(subs, marker, "every row once the claims timed out", 20_000);
      for (const [i, s] of seen.entries()) {
        const numbers = [...got(subs[i]), ...s].filter((x): x is number => typeof x === "number");
        const all = [...new Set(numbers)].sort((a, b) => a - b);
        // At least once: only a row the victim had handed on before it died may come twice.
        const twice = numbers.filter((n, k) => numbers.indexOf(n) !== k);
        assert.ok(
          twice.every((n) => held.includes(n)),
          `duplicates ${twice} only among the victim's claimed rows ${held}`,
        );
        assert.deepEqual(
          all,
          Array.from({ length: total }, (_, k) => k + 1),
          `subscriber ${i}: nothing lost`,
        );
      }
      assert.equal(
        await psql(url, "SELECT count(*) FROM anycable_broadcasts"),
        "0",
        "every row handled and deleted",
      );
    }, 90_000);

    it("a schema from a newer version: the node does not start, and says why in one line", async () => {
      pg = await startPostgres();
      await psql(
        pg.url,
        "CREATE TABLE anycable_stream_offsets (scope text, stream text); COMMENT ON TABLE anycable_stream_offsets IS 'anycable signalling schema 7'",
      );
      const node = await startServer(runtime, { args: nodeArgs(pg.url), noWait: true });
      servers.push(node);
      assert.equal(await node.exited, 1);
      const lines = node.output().trimEnd().split("\n");
      assert.match(
        lines[lines.length - 1],
        /ERR failed to start: .*the PostgreSQL signalling schema is version 7 \(comment on anycable_stream_offsets\), newer than this server's 1: upgrade anycable-ts or use another database/,
      );
      assert.equal(lines.filter((l) => l.includes("newer than this server")).length, 1, "one line");
    }, 30_000);
  });
}
