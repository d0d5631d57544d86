// The Broadcaster contract on the postgres broadcaster against a real PostgreSQL, publishing as
// anycable-rb's adapter does (SELECT anycable_publish(stream, payload)); plus what the table queue
// adds: transactions, one node per row, claims of a dead node, retries and exhaustion, bad rows,
// a PostgreSQL restart.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { PublicationHandler } from "../../src/broadcast/broadcaster.ts";
import { PostgresBroadcaster } from "../../src/broadcast/postgres.ts";
import type { ParsedPublication } from "../../src/broadcast/publication.ts";
import { Logger } from "../../src/log/logger.ts";
import { defaults, type Options } from "../../src/postgres/options.ts";
import { createDatabase, pgClient, psql } from "../support/pg_probe.ts";
import { hasService, type PostgresProcess, startPostgres } from "../support/services.ts";
import { waitFor } from "../support/wait.ts";
import { broadcasterContract, RecordingHandler } from "./contracts/broadcaster_contract.ts";

const silent = new Logger("error", "text", {}, { write() {} });

let seq = 0;
const pub = (stream: string, data: string) => JSON.stringify({ stream, data });

function datas(calls: RecordingHandler["calls"]): string[] {
  return calls.flatMap((c) =>
    c.kind === "handle" && c.payload.kind === "broadcast"
      ? c.payload.publications.map((p) => p.dataJson)
      : [],
  );
}

describe("Postgres broadcaster", { skip: !hasService("postgres") }, () => {
  let pg: PostgresProcess;
  before(async () => {
    pg = await startPostgres();
  });
  after(async () => {
    await pg?.destroy();
  });

  async function freshDb(): Promise<string> {
    return createDatabase(pg.url, `b_${process.pid}_${++seq}`);
  }

  const options = (url: string, extra: Partial<Options> = {}): Options =>
    defaults(url, { pollIntervalMs: 200, startupAttempts: 1, claimId: `node-${++seq}`, ...extra });

  const broadcaster = (opts: Options, handler: PublicationHandler) =>
    new PostgresBroadcaster({ postgres: opts, connection: { private: true } }, handler, silent);

  broadcasterContract("postgres", async (handler) => {
    const url = await freshDb();
    const client = pgClient(url);
    let delivered = 0;
    const counting: PublicationHandler = {
      handle(p) {
        delivered++;
        handler.handle(p);
      },
      handleInvalid() {
        delivered++;
        handler.handleInvalid();
      },
    };
    const b = broadcaster(options(url), counting);
    let stopped = false;
    const shutdown = b.shutdown.bind(b);
    b.shutdown = async (deadline) => {
      stopped = true;
      await shutdown(deadline);
    };
    let published = 0;
    const count = async () => Number((await client`SELECT count(*) AS n FROM anycable_broadcasts`)[0].n);
    return {
      broadcaster: b,
      fanout: false,
      async publish(payload) {
        // One stream for all: the suite checks the order of separate publications.
        await client`SELECT anycable_publish('contract', ${payload})`;
        published++;
      },
      async ready() {},
      async settle() {
        if (!stopped) {
          await waitFor(() => delivered >= published, "every row handled");
          await waitFor(async () => (await count()) === 0, "every row deleted");
          return;
        }
        assert.equal(
          await count(),
          published - delivered,
          "the rows published after shutdown wait in the table",
        );
      },
      async close() {
        await client.end();
      },
    };
  });

  it("delivers what a transaction published at its COMMIT, in order, and nothing of a rolled-back one", async () => {
    const url = await freshDb();
    const handler = new RecordingHandler();
    const b = broadcaster(options(url), handler);
    const app = pgClient(url, 4);
    try {
      await b.start(() => {});
      await app
        .begin(async (tx) => {
          await tx`SELECT anycable_publish('chat', ${pub("chat", '"rolled back"')})`;
          throw new Error("rollback");
        })
        .catch(() => {});
      let release!: () => void;
      const held = new Promise<void>((r) => {
        release = r;
      });
      const long = app.begin(async (tx) => {
        for (let i = 1; i <= 3; i++) await tx`SELECT anycable_publish('chat', ${pub("chat", String(i))})`;
        await held;
      });
      // Published and committed while the long transaction is open, on another stream.
      await psql(url, `SELECT anycable_publish('other', '${pub("other", '"x"')}')`);
      await handler.atLeast(1, "the other stream's publication");
      await b.settled();
      assert.deepEqual(datas(handler.calls), ['"x"'], "nothing of the open transaction yet");
      release();
      await long;
      await handler.atLeast(4, "the long transaction's publications");
      await b.settled();
      assert.deepEqual(datas(handler.calls), ['"x"', "1", "2", "3"]);
    } finally {
      await b.shutdown(AbortSignal.timeout(3000));
      await app.end();
    }
  });

  it("gives each row to one node, keeping each stream's order", async () => {
    const url = await freshDb();
    const handlers = [new RecordingHandler(), new RecordingHandler(), new RecordingHandler()];
    // One shared log: the order in which the nodes handled rows, across nodes.
    const log: string[] = [];
    const nodes = handlers.map((h) =>
      broadcaster(options(url, { batchSize: 3 }), {
        handle(p: ParsedPublication) {
          if (p.kind === "broadcast") for (const x of p.publications) log.push(`${x.stream}:${x.dataJson}`);
          h.handle(p);
        },
        handleInvalid: () => h.handleInvalid(),
      }),
    );
    const app = pgClient(url, 4);
    try {
      for (const n of nodes) await n.start(() => {});
      await Promise.all(
        ["a", "b", "c"].map(async (s) => {
          for (let i = 0; i < 20; i++) await app`SELECT anycable_publish(${s}, ${pub(s, String(i))})`;
        }),
      );
      await waitFor(() => log.length >= 60, `60 rows handled (${log.length})`);
      for (const n of nodes) await n.settled();
      assert.equal(log.length, 60, "each exactly once");
      for (const s of ["a", "b", "c"]) {
        assert.deepEqual(
          log.filter((l) => l.startsWith(`${s}:`)),
          Array.from({ length: 20 }, (_, i) => `${s}:${i}`),
          `stream ${s} in order`,
        );
      }
      assert.ok(handlers.filter((h) => h.calls.length > 0).length >= 2, "more than one node took rows");
      assert.equal(Number((await app`SELECT count(*) AS n FROM anycable_broadcasts`)[0].n), 0);
    } finally {
      for (const n of nodes) await n.shutdown(AbortSignal.timeout(3000));
      await app.end();
    }
  });

  it("claims the rows of a node that died once its claim timed out, in order", async () => {
    const url = await freshDb();
    const app = pgClient(url);
    const handler = new RecordingHandler();
    const b = broadcaster(options(url, { claimTimeoutSec: 1 }), handler);
    try {
      await b.start(() => {});
      // A node claimed the first two rows, then was killed.
      await app.begin(async (tx) => {
        for (let i = 1; i <= 3; i++) await tx`SELECT anycable_publish('s', ${pub("s", String(i))})`;
        await tx`UPDATE anycable_broadcasts SET claimed_by = 'dead', claimed_at = now(), attempts = 1
                 WHERE "offset" <= 2`;
      });
      await b.settled();
      assert.deepEqual(datas(handler.calls), [], "row 3 waits behind the claimed ones");
      await handler.atLeast(3, "the reclaimed rows");
      assert.deepEqual(datas(handler.calls), ["1", "2", "3"]);
    } finally {
      await b.shutdown(AbortSignal.timeout(3000));
      await app.end();
    }
  });

  it("retries a failed row, then marks it exhausted; skip lets the stream go on, block holds it", async () => {
    for (const policy of ["skip", "block"] as const) {
      const url = await freshDb();
      const app = pgClient(url);
      const seen: string[] = [];
      let attempts = 0;
      const b = broadcaster(options(url, { maxAttempts: 2, exhaustedPolicy: policy }), {
        handle(p) {
          const d = p.kind === "broadcast" ? p.publications[0].dataJson : "";
          if (d === '"poison"') {
            attempts++;
            throw new Error("broker unavailable");
          }
          seen.push(d);
        },
        handleInvalid() {},
      });
      try {
        await b.start(() => {});
        await app`SELECT anycable_publish('s', ${pub("s", '"poison"')})`;
        await app`SELECT anycable_publish('s', ${pub("s", '"after"')})`;
        await waitFor(() => attempts >= 2, "two attempts");
        const [row] = await app`SELECT attempts, last_error, exhausted_at IS NOT NULL AS exhausted, claimed_by
                                FROM anycable_broadcasts WHERE "offset" = 1`;
        await waitFor(
          async () =>
            (await app`SELECT 1 FROM anycable_broadcasts WHERE "offset" = 1 AND exhausted_at IS NOT NULL`)
              .length === 1,
          "exhausted",
        );
        if (policy === "skip") {
          await waitFor(() => seen.length === 1, "the later row");
          assert.deepEqual(seen, ['"after"']);
        } else {
          await b.settled();
          await b.settled();
          assert.deepEqual(seen, [], "blocked behind the exhausted row");
          await app`DELETE FROM anycable_broadcasts WHERE "offset" = 1`;
          await waitFor(() => seen.length === 1, "the later row once the exhausted one is removed");
        }
        assert.equal(attempts, 2);
        assert.ok(row.attempts >= 1);
        const [kept] =
          await app`SELECT attempts, last_error, claimed_by FROM anycable_broadcasts WHERE "offset" = 1`;
        if (policy === "skip") {
          assert.equal(kept.attempts, 2);
          assert.equal(kept.last_error, "broker unavailable");
          assert.ok(kept.claimed_by, "inspection data kept");
        }
      } finally {
        await b.shutdown(AbortSignal.timeout(3000));
        await app.end();
      }
    }
  });

  it("counts rows that are not publications, deletes them and goes on", async () => {
    const url = await freshDb();
    const app = pgClient(url);
    const handler = new RecordingHandler();
    const b = broadcaster(options(url), handler);
    try {
      await b.start(() => {});
      await psql(
        url,
        `SELECT anycable_publish('s', '{oops'); SELECT anycable_publish('s', '{"data":"no stream"}');
                       SELECT anycable_publish('s', '${pub("s", "3")}')`,
      );
      await handler.atLeast(3, "three rows");
      assert.deepEqual(
        handler.calls.map((c) => c.kind),
        ["invalid", "invalid", "handle"],
      );
      await waitFor(
        async () => Number((await app`SELECT count(*) AS n FROM anycable_broadcasts`)[0].n) === 0,
        "deleted",
      );
    } finally {
      await b.shutdown(AbortSignal.timeout(3000));
      await app.end();
    }
  });

  it("catches up after a PostgreSQL restart, without calling fatal", { timeout: 30_000 }, async () => {
    let own = await startPostgres();
    const url = own.url;
    const handler = new RecordingHandler();
    const fatals: Error[] = [];
    const b = broadcaster(options(url), handler);
    try {
      await b.start((e) => fatals.push(e));
      await psql(url, `SELECT anycable_publish('s', '${pub("s", "1")}')`);
      await handler.atLeast(1, "before the restart");
      await own.stop("immediate");
      own = await own.restart();
      // Committed before the node noticed it was back.
      await psql(url, `SELECT anycable_publish('s', '${pub("s", "2")}')`);
      await handler.atLeast(2, "the row committed after the restart");
      await psql(url, `SELECT anycable_publish('s', '${pub("s", "3")}')`);
      await handler.atLeast(3, "a later row");
      assert.deepEqual(datas(handler.calls), ["1", "2", "3"]);
      assert.deepEqual(fatals, []);
    } finally {
      await b.shutdown(AbortSignal.timeout(3000));
      await own.destroy();
    }
  });
});
