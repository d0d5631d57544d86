// Cost of the PostgreSQL broker (--broker=postgres) on a private PostgreSQL: publications per
// second through the broker (batched numbering), the latency of one publication and of a history
// read, and the disk each kept message, session and presence record takes (pg_total_relation_size
// of its tables, indexes included, after VACUUM).
//   bun bench/broker_postgres.ts [--streams 100] [--messages 20000] [--limit 100] [--message 100]
//                                [--sessions 10000] [--presence 10000]
import { parseArgs } from "node:util";
import type { StreamMessage } from "../src/broadcast/publication.ts";
import { PostgresBroker } from "../src/broker/postgres.ts";
import { Logger } from "../src/log/logger.ts";
import { defaults } from "../src/postgres/options.ts";
import type { PubSub } from "../src/pubsub/pubsub.ts";
import { pgClient } from "../test/support/pg_probe.ts";
import { startPostgres } from "../test/support/services.ts";

const { values } = parseArgs({
  options: {
    streams: { type: "string", default: "100" },
    messages: { type: "string", default: "20000" },
    limit: { type: "string", default: "100" },
    message: { type: "string", default: "100" },
    sessions: { type: "string", default: "10000" },
    presence: { type: "string", default: "10000" },
  },
});
const streams = Number(values.streams);
const messages = Number(values.messages);
const limit = Number(values.limit);
const messageBytes = Number(values.message);
const sessions = Number(values.sessions);
const presence = Number(values.presence);

const pg = await startPostgres();
let delivered = 0;
let waiter: { n: number; resolve: () => void } | undefined;
const pubsub: PubSub = {
  name: "pubsub (counting)",
  multiNode: false,
  async start() {},
  async shutdown() {},
  subscribe() {},
  unsubscribe() {},
  broadcast(_m: StreamMessage) {
    delivered++;
    if (waiter && delivered >= waiter.n) {
      waiter.resolve();
      waiter = undefined;
    }
  },
  broadcastCommand() {},
};
const until = (n: number) =>
  delivered >= n ? Promise.resolve() : new Promise<void>((resolve) => (waiter = { n, resolve }));

const broker = new PostgresBroker(
  {
    postgres: defaults(pg.url),
    pubsub,
    historyLimit: limit,
    historyTtlSec: 3600,
    sessionsTtlSec: 3600,
    presenceTtlSec: 3600,
  },
  new Logger("error", "text", {}, { write() {} }),
);
await broker.start(() => {});
const sql = pgClient(pg.url);
const size = async (table: string) => {
  await sql.unsafe(`VACUUM ${table}`);
  const [row] = await sql.unsafe(`SELECT pg_total_relation_size('${table}')::bigint AS n`);
  return Number(row!.n);
};
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) * p)]!;
const data = JSON.stringify("x".repeat(Math.max(0, messageBytes - 2)));

// Warm-up (JIT, connections)
for (let i = 0; i < 200; i++) broker.handleBroadcast({ stream: "warm", dataJson: data });
await until(200);

// Throughput: publications handed in at once, numbered in batches of --postgres_batch_size (100)
// (handed in 5,000 at a time: beyond 10,000 waiting the broker sends them on unnumbered)
let started = performance.now();
for (let i = 0; i < messages; i++) {
  broker.handleBroadcast({ stream: `s${i % streams}`, dataJson: data });
  if ((i + 1) % 5000 === 0) await until(200 + i + 1);
}
await until(200 + messages);
const burstMs = performance.now() - started;

// Latency of one publication (nothing else in flight), and of a history read of `limit` messages
const one: number[] = [];
for (let i = 0; i < 300; i++) {
  const t0 = performance.now();
  broker.handleBroadcast({ stream: "lat", dataJson: data });
  await until(200 + messages + i + 1);
  one.push(performance.now() - t0);
}
const reads: number[] = [];
const epoch = (await broker.epoch())!;
for (let i = 0; i < 300; i++) {
  const t0 = performance.now();
  const got = await broker.historyFrom("s0", epoch, Math.floor(messages / streams) - limit + 1);
  reads.push(performance.now() - t0);
  if (!Array.isArray(got) || got.length !== limit - 1) throw new Error(`history: ${JSON.stringify(got)}`);
}

const historyBytes = await size("anycable_broker_history");
const historyRows = Number((await sql`SELECT count(*)::int AS n FROM anycable_broker_history`)[0]!.n);

const snapshot = JSON.stringify({
  id: '{"user_id":"42"}',
  subscriptions: { '{"channel":"ChatChannel","room":"42"}': ["chat_42"] },
  istate: {},
  cstate: {},
});
started = performance.now();
await Promise.all(Array.from({ length: sessions }, (_, i) => broker.commitSession(`sid-${i}`, snapshot)));
const commitMs = performance.now() - started;
const sessionBytes = await size("anycable_broker_sessions");

started = performance.now();
for (let i = 0; i < presence; i += 100) {
  await Promise.all(
    Array.from({ length: Math.min(100, presence - i) }, (_, j) =>
      broker.presenceAdd(`room-${(i + j) % 100}`, `sid-${i + j}`, `user-${i + j}`, { name: `User ${i + j}` }),
    ),
  );
}
const presenceMs = performance.now() - started;
const presenceBytes =
  (await size("anycable_broker_presence")) + (await size("anycable_broker_presence_sessions"));

await broker.shutdown();
await sql.end();
await pg.destroy();

const f = (n: number) => n.toFixed(2);
console.log(
  `PostgreSQL broker (${messages} publications over ${streams} streams, ${messageBytes}-byte data, history limit ${limit})`,
);
console.log(`burst: ${Math.round((messages / burstMs) * 1000)} publications/s numbered and kept`);
console.log(`one publication alone: p50 ${f(pct(one, 0.5))} ms, p99 ${f(pct(one, 0.99))} ms`);
console.log(
  `historyFrom (${limit - 1} messages): p50 ${f(pct(reads, 0.5))} ms, p99 ${f(pct(reads, 0.99))} ms`,
);
console.log(
  `history: ${Math.round(historyBytes / historyRows)} bytes per kept message (${historyRows} rows)`,
);
console.log(
  `sessions: ${Math.round(sessionBytes / sessions)} bytes per session (${snapshot.length}-byte snapshot), ${Math.round((sessions / commitMs) * 1000)} commits/s`,
);
console.log(
  `presence: ${Math.round(presenceBytes / presence)} bytes per record, ${Math.round((presence / presenceMs) * 1000)} adds/s (100 at a time)`,
);
