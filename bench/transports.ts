// Other transports and protocols beside Action Cable over WebSocket, in one invocation: SSE (issue
// 15's performance part) and Pusher (issue 16's). Per target (anycable-ts under Bun, under Deno)
// and per N, a fresh server for each kind of client, all started with the same flags: N idle
// subscribed clients (RSS per 1k after a forced collection, connect rate), then fan-out of 40
// publications to all of them (p50/p99 of the time until every client has one). The clients are
// bench/loadgen.ts workers: Action Cable WebSockets as in `npm run bench`, SSE fetch streams
// (--transport sse), Pusher-protocol WebSockets subscribed to the public channel of the same name
// (--transport pusher).
//   bun bench/transports.ts [--vs sse,pusher] [--sizes 1000,5000] [--runs 3] [--targets ts-bun,ts-deno] [--workers 2]
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { broadcastPhase, startWorker, type Worker } from "./lib/fanout.ts";
import { median, memoryAfterGc } from "./lib/proc.ts";
import { startTarget } from "./lib/targets.ts";

const { values } = parseArgs({
  options: {
    sizes: { type: "string", default: "1000,5000" },
    runs: { type: "string", default: "3" },
    targets: { type: "string", default: "ts-bun,ts-deno" },
    workers: { type: "string", default: "2" },
    samples: { type: "string", default: "40" },
    vs: { type: "string", default: "sse,pusher" },
  },
});
const sizes = values.sizes.split(",").map(Number);
const runs = Number(values.runs);
const targets = values.targets.split(",");
const workerCount = Number(values.workers);
const samples = Number(values.samples);
const others = values.vs.split(",") as Transport[];
// Bun's fetch runs at most 256 requests at once unless told otherwise: every SSE client is one.
process.env.BUN_CONFIG_MAX_HTTP_REQUESTS = "65000";

type Transport = "ws" | "sse" | "pusher";
const LABEL: Record<Transport, string> = { ws: "WS", sse: "SSE", pusher: "Pusher" };
const PUSHER_KEY = "bench-key";
// Every client kind gets the same publications; Pusher clients need an event name in them.
const EVENT = "bench";
// Every server gets the same flags, whichever clients it serves.
const SERVER_ARGS = [
  "--sse",
  "--pusher_app_id=bench",
  `--pusher_app_key=${PUSHER_KEY}`,
  "--pusher_secret=bench-secret",
];

function clientUrl(transport: Transport, port: number): string {
  if (transport === "sse") return `http://127.0.0.1:${port}/events`;
  if (transport === "pusher") return `ws://127.0.0.1:${port}/app/${PUSHER_KEY}`;
  return `ws://127.0.0.1:${port}/cable`;
}
const MIB = 1024 * 1024;

interface Run {
  target: string;
  transport: Transport;
  n: number;
  run: number;
  connectRate: number;
  failures: number;
  rssIdle: number;
  rssConnected: number;
  rssPer1kMiB: number;
  p50: number;
  p99: number;
  serverCpuMs: number;
}

async function closeAll(workers: Worker[]): Promise<void> {
  for (const w of workers) w.send("close");
  await Promise.all(workers.map((w) => w.next("closed")));
}

async function runOnce(target: string, transport: Transport, n: number, run: number): Promise<Run> {
  const { proc, port } = await startTarget(target, SERVER_ARGS);
  const pid = proc.pid!;
  const url = clientUrl(transport, port);
  const broadcastUrl = `http://127.0.0.1:${port}/_broadcast`;
  try {
    // warm-up: 100 clients of this transport connect, get 3 broadcasts and leave
    const warm = [startWorker(url, 100, 0, 1, transport)];
    await Promise.all(warm.map((w) => w.next("ready", 60_000)));
    await broadcastPhase(broadcastUrl, [pid], warm, 100, 1, 3, undefined, EVENT);
    await closeAll(warm);
    const idle = await memoryAfterGc(pid);
    const per = Math.ceil(n / workerCount);
    const started = performance.now();
    const workers = Array.from({ length: workerCount }, (_, i) =>
      startWorker(url, Math.min(per, n - i * per), i * per, 1, transport),
    );
    const ready = await Promise.all(workers.map((w) => w.next("ready", 300_000)));
    const connectMs = performance.now() - started;
    const failures = ready.reduce((s, r) => s + Number(r.failures), 0);
    const connected = await memoryAfterGc(pid);
    const fan = await broadcastPhase(broadcastUrl, [pid], workers, n, 1, samples, undefined, EVENT);
    await closeAll(workers);
    return {
      target,
      transport,
      n,
      run,
      connectRate: (n / connectMs) * 1000,
      failures,
      rssIdle: idle.rss,
      rssConnected: connected.rss,
      rssPer1kMiB: (connected.rss - idle.rss) / MIB / (n / 1000),
      p50: fan.p50,
      p99: fan.p99,
      serverCpuMs: fan.serverCpuMs,
    };
  } finally {
    proc.kill("SIGKILL");
  }
}

const results: Run[] = [];
for (const n of sizes) {
  for (let run = 1; run <= runs; run++) {
    for (const target of targets) {
      for (const transport of ["ws", ...others] as Transport[]) {
        const r = await runOnce(target, transport, n, run);
        results.push(r);
        console.log(
          `${target} ${transport} n=${n} run=${run}: ${r.rssPer1kMiB.toFixed(2)} MiB/1k, connect ${r.connectRate.toFixed(0)}/s, ` +
            `p50 ${r.p50.toFixed(1)} ms, p99 ${r.p99.toFixed(1)} ms${r.failures ? `, ${r.failures} failed connects` : ""}`,
        );
      }
    }
  }
}

const fmt = (v: number, d = 1) => (Number.isFinite(v) ? v.toFixed(d) : "–");
const lines: string[] = [];
for (const t of others) {
  const x = LABEL[t];
  lines.push(
    `| target | N | WS MiB/1k | ${x} MiB/1k | ${x}/WS memory | WS p99 ms | ${x} p99 ms | ${x}/WS p99 | WS connect/s | ${x} connect/s |`,
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
  );
  for (const target of targets) {
    for (const n of sizes) {
      const of = (k: Transport) =>
        results.filter((r) => r.target === target && r.n === n && r.transport === k);
      const ws = of("ws");
      const other = of(t);
      // ratios per run (the servers of a run ran back to back), then their median
      const ratio = (f: (r: Run) => number) => median(other.map((s, i) => f(s) / f(ws[i]!)));
      const med = (rs: Run[], f: (r: Run) => number) => median(rs.map(f));
      lines.push(
        `| ${target} | ${n} | ${fmt(
          med(ws, (r) => r.rssPer1kMiB),
          2,
        )} | ${fmt(
          med(other, (r) => r.rssPer1kMiB),
          2,
        )} | ` +
          `${fmt(
            ratio((r) => r.rssPer1kMiB),
            2,
          )} | ${fmt(med(ws, (r) => r.p99))} | ${fmt(med(other, (r) => r.p99))} | ` +
          `${fmt(
            ratio((r) => r.p99),
            2,
          )} | ${fmt(
            med(ws, (r) => r.connectRate),
            0,
          )} | ${fmt(
            med(other, (r) => r.connectRate),
            0,
          )} |`,
      );
    }
  }
  lines.push("");
}
const table = lines.join("\n");
console.log(`\n${table}`);
const dir = join(import.meta.dir, "results");
mkdirSync(dir, { recursive: true });
const stamp = new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19);
writeFileSync(
  join(dir, `transports-${stamp}.json`),
  JSON.stringify({ sizes, runs, targets, others, results }, null, 2),
);
writeFileSync(join(dir, `transports-${stamp}.md`), `${table}\n`);
