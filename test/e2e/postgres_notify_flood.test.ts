// A flood of NOTIFYs (issue 18's faults): 60,000 wake-ups on the pub/sub and broadcast channels —
// for streams this node does not serve, with garbage payloads, and with payloads naming its own
// stream — sent while real publications are committed. A NOTIFY only marks a stream (or "read
// everything") and the tables are the source of truth, so the node keeps one bounded set whatever
// arrives: every real publication reaches the client once and in order, /health answers, and
// memory stays within a bound far below what keeping the notifications would take.
import { afterAll, beforeAll, describe, it } from "bun:test";
import assert from "node:assert/strict";
import { psql } from "../support/pg_probe.ts";
import { rssOf } from "../support/publish.ts";
import { e2eRuntimes, type ServerProcess, startServer } from "../support/server.ts";
import { hasService, type PostgresProcess, startPostgres } from "../support/services.ts";
import { waitFor } from "../support/wait.ts";
import { connect, type RawClient } from "../support/ws_client.ts";

const runtimes = e2eRuntimes(["bun", "deno"]);
const enabled = hasService("postgres");
const STREAM = "flood-stream";
const ID = JSON.stringify({ channel: "$pubsub", stream_name: STREAM });
const MIB = 1024 * 1024;

const sqlString = (s: string) => `'${s.replaceAll("'", "''")}'`;
const publishSql = (data: unknown) =>
  `SELECT anycable_publish(${sqlString(STREAM)}, ${sqlString(JSON.stringify({ stream: STREAM, data: JSON.stringify(data) }))})`;

/** 10,000 distinct NOTIFYs of each kind on `channel` in one statement (distinct: PostgreSQL folds equal ones). */
const floodSql = (channel: string, from: number) => `
  SELECT pg_notify('${channel}', '{"v":1,"stream":"other-' || g || '","offset":' || g || '}'),
         pg_notify('${channel}', 'garbage ' || g),
         pg_notify('${channel}', '{"v":1,"stream":"${STREAM}","offset":' || g || '}')
  FROM generate_series(${from}, ${from + 9999}) AS g`;

for (const runtime of runtimes) {
  describe.if(enabled)(`[${runtime}] postgres NOTIFY flood`, () => {
    let pg: PostgresProcess;
    let server: ServerProcess;
    let client: RawClient;
    beforeAll(async () => {
      pg = await startPostgres();
      server = await startServer(runtime, {
        args: [
          "--public",
          "--norpc",
          "--broadcast_adapter=postgres",
          `--postgres_url=${pg.url}`,
          "--postgres_poll_interval_milliseconds=200",
        ],
      });
      await server.waitForOutput("Accept broadcasts from PostgreSQL table");
      client = await connect(server.wsUrl);
      await client.next((m) => m.type === "welcome", "welcome");
      client.send({ command: "subscribe", identifier: ID });
      await client.next((m) => m.type === "confirm_subscription", "confirm");
      // the node reads the stream once its cursor is set: until a marker comes through
      for (let i = 0; ; i++) {
        await psql(pg.url, publishSql(`warm-${i}`));
        try {
          await waitFor(
            () => client.messages.some((m) => (m as { message?: unknown }).message === `warm-${i}`),
            "warm-up",
            1000,
          );
          break;
        } catch {
          if (i > 20) throw new Error("the node never delivered a warm-up marker");
        }
      }
      client.messages.length = 0;
    }, 60_000);
    afterAll(async () => {
      client?.close();
      await server?.stop("SIGKILL");
      await pg?.destroy();
    });

    it("delivers every real publication once, in order, serves /health, and keeps memory bounded", async () => {
      const before = await rssOf(server.proc.pid!);
      const floods: Promise<string>[] = [];
      for (let round = 0; round < 2; round++) {
        floods.push(psql(pg.url, floodSql("anycable_pubsub", round * 10_000)));
        floods.push(psql(pg.url, floodSql("anycable_broadcasts", round * 10_000)));
      }
      // committed while the notifications pour in
      for (let i = 1; i <= 20; i++) await psql(pg.url, publishSql(i));
      await Promise.all(floods);
      await psql(pg.url, publishSql("end"));
      assert.equal((await fetch(`${server.url}/health`)).status, 200);
      await client.next((m) => m.identifier === ID && m.message === "end", "the last publication", 30_000);
      const got = client.messages
        .filter((m) => (m as { identifier?: string }).identifier === ID)
        .map((m) => (m as { message: unknown }).message);
      assert.deepEqual(
        got,
        Array.from({ length: 20 }, (_, i) => i + 1),
        "each real publication once, in order",
      );
      const after = await rssOf(server.proc.pid!);
      // Measured 10-24 MiB (the client library parsing 120,000 notifications, then garbage); a read
      // or a queued message per notification would hold far more. The bound leaves room for the
      // runtime's own growth on a busy machine.
      assert.ok(after - before < 64 * MIB, `RSS grew by ${((after - before) / MIB).toFixed(1)} MiB`);
      assert.equal(server.proc.exitCode, null, "still running");
      const out = server.output();
      assert.doesNotMatch(out, / ERR /, "no error logged");
    }, 90_000);
  });
}
