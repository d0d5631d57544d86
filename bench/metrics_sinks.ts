// What the push metrics cost (issue 17's budget: at most 5% of fan-out throughput or connect rate):
// anycable-ts with no metrics sinks vs with StatsD + log + Prometheus on (rotating every second,
// 15x the default rate, tags and the heap gauges on), side by side in one invocation, alternating
// the order per run. Per target: connect rate of N clients, then a burst of publications to all of
// them sent back to back: deliveries/s from the first send to the last arrival, and server CPU per
// delivered message (from /proc/<pid>/stat, not client-bound). A UDP listener here is the StatsD
// server (its packet count shows the sink was on).
//   bun bench/metrics_sinks.ts [--n 5000] [--runs 5] [--bursts 100] [--runtimes bun,deno]
import { createSocket } from "node:dgram";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { startWorker, type Worker } from "./lib/fanout.ts";
import { cpuMs, median } from "./lib/proc.ts";
import { startTarget } from "./lib/targets.ts";

const ROOT = join(import.meta.dir, "..");
const { values } = parseArgs({
  options: {
    n: { type: "string", default: "5000" },
    runs: { type: "string", default: "5" },
    bursts: { type: "string", default: "100" },
    runtimes: { type: "string", default: "bun,deno" },
    workers: { type: "string", default: "2" },
    out: { type: "string", default: join(ROOT, "bench", "results") },
  },
});
const n = Number(values.n);
const runs = Number(values.runs);
const bursts = Number(values.bursts);
const runtimes = values.runtimes!.split(",");
const workerCount = Number(values.workers);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const now = () => performance.timeOrigin + performance.now();

const udp = createSocket("udp4");
let packets = 0;
udp.on("message", () => packets++);
await new Promise<void>((resolve) => udp.bind(0, "127.0.0.1", () => resolve()));
const statsdPort = udp.address().port;

// Both modes log at info (the metrics log needs it), so the only difference is the sinks.
const COMMON = ["--log_level=info"];
const SINKS = [
  `--statsd_host=127.0.0.1:${statsdPort}`,
  "--metrics_log",
  "--metrics_rotate_interval=1",
  "--metrics_http=/metrics",
  "--metrics_tags=env:bench,node:n1",
  "--memory_metrics",
];

interface Result {
  runtime: string;
  mode: "off" | "on";
  run: number;
  connectRate: number;
  deliveriesPerSec: number;
  serverUsPerDelivery: number;
  statsdPackets: number;
}

async function report(workers: Worker[]): Promise<Map<number, [number, number]>> {
  const merged = new Map<number, [number, number]>();
  for (const w of workers) w.send("report");
  for (const w of workers) {
    const rep = (await w.next("report")) as { received: Array<[number, [number, number]]> };
    for (const [s, [count, max]] of rep.received) {
      const m = merged.get(s);
      if (m) {
        m[0] += count;
        m[1] = Math.max(m[1], max);
      } else merged.set(s, [count, max]);
    }
  }
  return merged;
}

async function runOnce(runtime: string, mode: "off" | "on", run: number): Promise<Result> {
  const { proc, port } = await startTarget(`ts-${runtime}`, [...COMMON, ...(mode === "on" ? SINKS : [])]);
  const pid = proc.pid!;
  const packets0 = packets;
  try {
    const url = `ws://127.0.0.1:${port}/cable`;
    const publishUrl = `http://127.0.0.1:${port}/_broadcast`;
    // warm-up: a few clients connect, get publications and leave
    const warm = [startWorker(url, 100, 0, 1)];
    await Promise.all(warm.map((w) => w.next("ready", 60_000)));
    for (let i = 0; i < 5; i++) {
      await fetch(publishUrl, { method: "POST", body: JSON.stringify({ stream: "bench-0", data: "{}" }) });
    }
    for (const w of warm) w.send("close");
    await Promise.all(warm.map((w) => w.next("closed")));

    const per = Math.ceil(n / workerCount);
    const started = now();
    const workers = Array.from({ length: workerCount }, (_, i) =>
      startWorker(url, Math.min(per, n - i * per), i * per, 1),
    );
    await Promise.all(workers.map((w) => w.next("ready", 300_000)));
    const connectRate = (n / (now() - started)) * 1000;
    for (const w of workers) w.send("reset");
    // let a rotation or two happen with the clients connected
    await sleep(1500);

    const cpu0 = cpuMs(pid);
    const sentAt: number[] = [];
    for (let seq = 0; seq < bursts; seq++) {
      const t = now();
      sentAt.push(t);
      const res = await fetch(publishUrl, {
        method: "POST",
        body: JSON.stringify({ stream: "bench-0", data: JSON.stringify({ seq, t }) }),
      });
      if (res.status !== 201) throw new Error(`broadcast status ${res.status}`);
    }
    let merged = new Map<number, [number, number]>();
    for (let attempt = 0; attempt < 300; attempt++) {
      merged = await report(workers);
      const done = [...merged.values()].filter(([count]) => count >= n).length;
      if (done === bursts) break;
      await sleep(50);
    }
    const cpu = cpuMs(pid) - cpu0;
    let delivered = 0;
    let last = 0;
    for (const [seq, [count, max]] of merged) {
      delivered += count;
      last = Math.max(last, sentAt[seq]! + max);
    }
    for (const w of workers) w.send("close");
    await Promise.all(workers.map((w) => w.next("closed")));
    return {
      runtime,
      mode,
      run,
      connectRate,
      deliveriesPerSec: (delivered / (last - sentAt[0]!)) * 1000,
      // CPU from the first publication until every delivery was reported (includes the polls)
      serverUsPerDelivery: (cpu * 1000) / delivered,
      statsdPackets: packets - packets0,
    };
  } finally {
    proc.kill("SIGKILL");
    await sleep(300);
  }
}

const results: Result[] = [];
for (let run = 1; run <= runs; run++) {
  for (const runtime of runtimes) {
    const order: Array<"off" | "on"> = run % 2 === 1 ? ["off", "on"] : ["on", "off"];
    for (const mode of order) {
      const r = await runOnce(runtime, mode, run);
      results.push(r);
      console.log(
        `${runtime} sinks ${mode} run ${run}: connect ${r.connectRate.toFixed(0)}/s, ` +
          `${r.deliveriesPerSec.toFixed(0)} deliveries/s, server ${r.serverUsPerDelivery.toFixed(2)} µs/delivery, ` +
          `${r.statsdPackets} StatsD packets`,
      );
    }
  }
}
udp.close();

const fmt = (v: number, d = 0) => (Number.isFinite(v) ? v.toFixed(d) : "–");
const rows = [
  `Metrics sinks off vs on (StatsD + log + Prometheus, rotate 1 s), N=${n}, ${bursts} publications back to back, ${runs} runs; on/off = median of per-run ratios`,
  "",
  "| runtime | sinks | connect/s | on/off | deliveries/s | on/off | server µs/delivery | on/off | StatsD packets |",
  "|---|---|---|---|---|---|---|---|---|",
];
const summary: Record<string, unknown>[] = [];
for (const runtime of runtimes) {
  for (const mode of ["off", "on"] as const) {
    const mine = results.filter((r) => r.runtime === runtime && r.mode === mode);
    const ratio = (pick: (r: Result) => number) =>
      median(
        mine.map((r) => {
          const off = results.find((o) => o.runtime === runtime && o.mode === "off" && o.run === r.run);
          return off ? pick(r) / pick(off) : Number.NaN;
        }),
      );
    const m = {
      runtime,
      mode,
      connectRate: median(mine.map((r) => r.connectRate)),
      connectRatio: ratio((r) => r.connectRate),
      deliveriesPerSec: median(mine.map((r) => r.deliveriesPerSec)),
      deliveriesRatio: ratio((r) => r.deliveriesPerSec),
      serverUs: median(mine.map((r) => r.serverUsPerDelivery)),
      serverUsRatio: ratio((r) => r.serverUsPerDelivery),
      statsdPackets: median(mine.map((r) => r.statsdPackets)),
    };
    summary.push(m);
    rows.push(
      `| ${runtime} | ${mode} | ${fmt(m.connectRate)} | ${fmt(m.connectRatio, 3)} | ${fmt(m.deliveriesPerSec)} | ${fmt(m.deliveriesRatio, 3)} | ${fmt(m.serverUs, 2)} | ${fmt(m.serverUsRatio, 3)} | ${fmt(m.statsdPackets)} |`,
    );
  }
}
const table = rows.join("\n");
console.log(`\n${table}`);
mkdirSync(values.out!, { recursive: true });
const stamp = new Date().toISOString().replace(/[:]/g, "-").replace(/\..+/, "");
writeFileSync(
  join(values.out!, `${stamp}-metrics-sinks.json`),
  JSON.stringify({ meta: { date: new Date().toISOString(), n, runs, bursts }, summary, results }, null, 2),
);
writeFileSync(join(values.out!, `${stamp}-metrics-sinks.md`), `# Metrics sinks ${stamp}\n\n${table}\n`);
console.log(`\nwrote ${join(values.out!, stamp)}-metrics-sinks.json and .md`);
