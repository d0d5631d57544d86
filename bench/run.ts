// `npm run bench`: anycable-ts under Bun and Deno against the raw Bun.serve and Deno.serve baselines
// (and anycable-go when ANYCABLE_GO_BIN names its binary), side by side in one invocation.
// Scenarios: connect (RSS per 1k idle subscribed clients, connect rate), idle CPU with pings,
// broadcast to N subscribers of one stream and of 100 streams (time until every subscriber has a
// publication, server CPU per delivered message), connect/disconnect memory cycle, RPC. Writes
// bench/results/<date>.json, .md and, with 3 sizes or more, the cost curve as .svg. The targets
// ts-bun-ext / ts-deno-ext run anycable-ts with --broker=memory and extended-protocol clients with
// reliable streams (history, a session snapshot per client), compared to raw Bun / raw Deno.
//   bun bench/run.ts [--sizes 1000,5000,10000] [--runs 3] [--targets raw-bun,raw-deno,ts-bun,ts-deno,anycable-go,ts-bun-ext,ts-deno-ext]
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { broadcastPhase, type LatencyStats, startWorker } from "./lib/fanout.ts";
import { cpuMs, median, memoryAfterGc } from "./lib/proc.ts";
import { costCurveSvg } from "./lib/svg.ts";
import { availableTargets, clientTransport, collectsOnSignal, freePort, startTarget } from "./lib/targets.ts";

const ROOT = join(import.meta.dir, "..");
const BIN = join(ROOT, "node_modules", ".bin");

const { values } = parseArgs({
  options: {
    sizes: { type: "string", default: "1000,5000,10000" },
    runs: { type: "string", default: "3" },
    targets: { type: "string", default: "raw-bun,raw-deno,ts-bun,ts-deno,anycable-go" },
    "idle-seconds": { type: "string", default: "9" },
    workers: { type: "string", default: "2" },
    samples: { type: "string", default: "40" },
    out: { type: "string", default: join(ROOT, "bench", "results") },
    "rpc-seconds": { type: "string", default: "8" },
    "rpc-clients": { type: "string", default: "100" },
    scenarios: { type: "string", default: "fanout,rpc" },
  },
});
const scenarios = new Set(values.scenarios!.split(","));
const sizes = values.sizes!.split(",").map(Number);
const runs = Number(values.runs);
const targets = availableTargets(values.targets!.split(","));
const idleSeconds = Number(values["idle-seconds"]);
const workerCount = Number(values.workers);
const samples = Number(values.samples);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const now = () => performance.timeOrigin + performance.now();

/**
 * A few clients connect, subscribe, get a broadcast and leave before "idle" is read, so the idle
 * figure is that of a server that has served, with its code paths paged in and its pools made.
 */
async function warmUp(port: number, pid: number, url: string, transport: "ws" | "ext"): Promise<void> {
  const workers = [startWorker(url, 100, 0, 1, transport)];
  await Promise.all(workers.map((w) => w.next("ready", 60_000)));
  await broadcastPhase(`http://127.0.0.1:${port}/_broadcast`, [pid], workers, 100, 1, 3);
  for (const w of workers) w.send("close");
  await Promise.all(workers.map((w) => w.next("closed")));
}

interface RunResult {
  target: string;
  n: number;
  run: number;
  connectMs: number;
  connectRate: number;
  failures: number;
  /** Extended-protocol clients with a session id (a session snapshot each in the broker). */
  sessions?: number;
  rssIdle: number;
  anonIdle: number;
  rssConnected: number;
  rssPer1kMiB: number;
  /** Server CPU per second of wall time with N idle clients and pings every 3 s (ms/s). */
  idleCpuMsPerSec: number;
  oneStream: LatencyStats;
  hundredStreams: LatencyStats;
  rssAfterClose: number;
  anonAfterClose: number;
  /** RSS after both connect/disconnect cycles vs the idle server. */
  cycleGrowthPct: number;
  /** The same difference in MiB (the runtime itself keeps some memory after many sockets). */
  cycleRetainedMiB: number;
  /** The same for anonymous memory only (heap, no binary or library pages). */
  anonCycleGrowthPct: number;
  /** RSS after the second cycle vs after the first: growth here points at a leak, not warm-up. */
  secondCycleGrowthPct: number;
}

async function runOnce(target: string, n: number, run: number): Promise<RunResult> {
  // the raw baselines send the same pings anycable-ts and anycable-go send by default
  const { proc, port } = await startTarget(target, [], { pings: true });
  const pid = proc.pid!;
  const collects = collectsOnSignal(target);
  try {
    const per = Math.ceil(n / workerCount);
    const url = `ws://127.0.0.1:${port}/cable`;
    const transport = clientTransport(target);
    await warmUp(port, pid, url, transport);
    const idle = await memoryAfterGc(pid, collects);
    // 1 stream: every client on bench-0
    const started = now();
    const workers = Array.from({ length: workerCount }, (_, i) =>
      startWorker(url, Math.min(per, n - i * per), i * per, 1, transport),
    );
    const ready = await Promise.all(workers.map((w) => w.next("ready", 300_000)));
    const connectMs = now() - started;
    const failures = ready.reduce((s, r) => s + Number(r.failures), 0);
    const sessions = transport === "ext" ? ready.reduce((s, r) => s + Number(r.sids), 0) : undefined;
    const { rss: rssConnected } = await memoryAfterGc(pid, collects);
    const idleCpu0 = cpuMs(pid);
    await sleep(idleSeconds * 1000);
    const idleCpuMsPerSec = (cpuMs(pid) - idleCpu0) / idleSeconds;
    const oneStream = await broadcastPhase(
      `http://127.0.0.1:${port}/_broadcast`,
      [pid],
      workers,
      n,
      1,
      samples,
    );
    for (const w of workers) w.send("close");
    await Promise.all(workers.map((w) => w.next("closed")));
    const { rss: rssAfterFirstCycle } = await memoryAfterGc(pid, collects);
    // 100 streams: a second set of clients spread round-robin
    const workers100 = Array.from({ length: workerCount }, (_, i) =>
      startWorker(url, Math.min(per, n - i * per), i * per, 100, transport),
    );
    await Promise.all(workers100.map((w) => w.next("ready", 300_000)));
    const hundredStreams = await broadcastPhase(
      `http://127.0.0.1:${port}/_broadcast`,
      [pid],
      workers100,
      n,
      100,
      Math.max(5, Math.floor(samples / 4)),
    );
    for (const w of workers100) w.send("close");
    await Promise.all(workers100.map((w) => w.next("closed")));
    const afterClose = await memoryAfterGc(pid, collects);
    return {
      target,
      n,
      run,
      connectMs,
      connectRate: (n / connectMs) * 1000,
      failures,
      sessions,
      rssIdle: idle.rss,
      anonIdle: idle.anon,
      rssConnected,
      rssPer1kMiB: (rssConnected - idle.rss) / (n / 1000) / 1048576,
      idleCpuMsPerSec,
      oneStream,
      hundredStreams,
      rssAfterClose: afterClose.rss,
      anonAfterClose: afterClose.anon,
      cycleGrowthPct: ((afterClose.rss - idle.rss) / idle.rss) * 100,
      cycleRetainedMiB: (afterClose.rss - idle.rss) / 1048576,
      anonCycleGrowthPct: ((afterClose.anon - idle.anon) / idle.anon) * 100,
      secondCycleGrowthPct: ((afterClose.rss - rssAfterFirstCycle) / rssAfterFirstCycle) * 100,
    };
  } finally {
    proc.kill("SIGKILL");
    await sleep(300);
  }
}

const results: RunResult[] = [];
for (const n of scenarios.has("fanout") ? sizes : []) {
  for (let run = 1; run <= runs; run++) {
    for (const target of targets) {
      const r = await runOnce(target, n, run);
      results.push(r);
      console.log(
        `${target} n=${n} run=${run}: connect ${r.connectRate.toFixed(0)}/s, ${r.rssPer1kMiB.toFixed(2)} MiB/1k, ` +
          `idle CPU ${r.idleCpuMsPerSec.toFixed(1)} ms/s, ` +
          `1 stream p50/p99 ${r.oneStream.p50.toFixed(1)}/${r.oneStream.p99.toFixed(1)} ms, ` +
          `server ${r.oneStream.serverCpuUsPerMsg.toFixed(2)} µs/msg, ` +
          `100 streams p99 ${r.hundredStreams.p99.toFixed(1)} ms, client CPU ${r.oneStream.clientCpuUsPerMsg.toFixed(1)} µs/msg, ` +
          `cycle ${r.cycleGrowthPct.toFixed(1)}% (anon ${r.anonCycleGrowthPct.toFixed(1)}%, 2nd ${r.secondCycleGrowthPct.toFixed(1)}%)${r.failures ? `, ${r.failures} failed connects` : ""}` +
          (r.sessions === undefined
            ? ""
            : `, ext: ${r.sessions} sessions, ${r.oneStream.positioned} clients with epoch+offset`),
      );
    }
  }
}

// --- rpc: commands/s through our server vs a direct grpc-js client on the same backend
interface RpcRun {
  target: string;
  transport: "grpc" | "http";
  run: number;
  commandsPerSec: number;
  p50: number;
  p99: number;
  failures: number;
}

function spawnJson(
  cmd: string,
  args: string[],
): { proc: ChildProcess; line: Promise<Record<string, unknown>> } {
  const proc = spawn(cmd, args, { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  const line = new Promise<Record<string, unknown>>((resolve, reject) => {
    proc.stdout!.on("data", (d) => {
      out += d.toString();
      const l = out.split("\n").find((x) => x.startsWith("{"));
      if (l) resolve(JSON.parse(l));
    });
    proc.on("exit", (code) => reject(new Error(`${cmd} ${args.join(" ")} exited ${code}: ${out}`)));
  });
  return { proc, line };
}

async function rpcOnce(target: string, transport: "grpc" | "http", run: number): Promise<RpcRun> {
  const seconds = values["rpc-seconds"]!;
  const backend =
    transport === "grpc"
      ? spawnJson("node", [join(ROOT, "bench", "backends", "grpc_backend.mjs")])
      : spawnJson(join(BIN, "bun"), [join(ROOT, "bench", "backends", "http_backend.ts")]);
  const { port: backendPort } = (await backend.line) as { port: number };
  try {
    if (target === "grpc-js-direct") {
      const direct = spawnJson("node", [
        join(ROOT, "bench", "rpc_direct.mjs"),
        `--port=${backendPort}`,
        "--concurrency=28",
        `--seconds=${seconds}`,
      ]);
      const r = (await direct.line) as { calls: number; ms: number; p99: number };
      return {
        target,
        transport,
        run,
        commandsPerSec: (r.calls / r.ms) * 1000,
        p50: Number.NaN,
        p99: r.p99,
        failures: 0,
      };
    }
    const port = await freePort();
    const rpcHost = transport === "grpc" ? `127.0.0.1:${backendPort}` : `http://127.0.0.1:${backendPort}/`;
    const tsArgs = [
      `--port=${port}`,
      "--host=127.0.0.1",
      `--rpc_host=${rpcHost}`,
      "--broadcast_adapter=http",
      "--log_level=error",
    ];
    const [cmd, args] =
      target === "anycable-go"
        ? [process.env.ANYCABLE_GO_BIN!, tsArgs]
        : target === "ts-bun"
          ? [join(BIN, "bun"), [join(ROOT, "src", "main.ts"), ...tsArgs]]
          : [join(BIN, "deno"), ["run", "-A", join(ROOT, "src", "main.ts"), ...tsArgs]];
    const server = spawn(cmd, args, { stdio: ["ignore", "ignore", "inherit"] });
    try {
      for (let i = 0; i < 200; i++) {
        try {
          if ((await fetch(`http://127.0.0.1:${port}/health`)).ok) break;
        } catch {
          // not up yet
        }
        await sleep(50);
      }
      const load = spawnJson(join(BIN, "bun"), [
        join(ROOT, "bench", "rpc_loadgen.ts"),
        `--url=ws://127.0.0.1:${port}/cable`,
        `--clients=${values["rpc-clients"]}`,
        `--seconds=${seconds}`,
      ]);
      const r = (await load.line) as {
        commands: number;
        ms: number;
        p50: number;
        p99: number;
        failures: number;
      };
      return {
        target,
        transport,
        run,
        commandsPerSec: (r.commands / r.ms) * 1000,
        p50: r.p50,
        p99: r.p99,
        failures: r.failures,
      };
    } finally {
      server.kill("SIGKILL");
    }
  } finally {
    backend.proc.kill("SIGKILL");
    await sleep(300);
  }
}

const rpcResults: RpcRun[] = [];
if (scenarios.has("rpc")) {
  const withGo = targets.includes("anycable-go");
  const go: Array<[string, "grpc" | "http"]> = withGo ? [["anycable-go", "grpc"]] : [];
  const goHttp: Array<[string, "grpc" | "http"]> = withGo ? [["anycable-go", "http"]] : [];
  const rpcTargets: Array<[string, "grpc" | "http"]> = [
    ["grpc-js-direct", "grpc"],
    ["ts-bun", "grpc"],
    ["ts-deno", "grpc"],
    ...go,
    ["ts-bun", "http"],
    ["ts-deno", "http"],
    ...goHttp,
  ];
  for (let run = 1; run <= runs; run++) {
    for (const [target, transport] of rpcTargets) {
      const r = await rpcOnce(target, transport, run);
      rpcResults.push(r);
      console.log(
        `rpc ${target} ${transport} run=${run}: ${r.commandsPerSec.toFixed(0)} commands/s, p50 ${r.p50.toFixed(1)} ms, p99 ${r.p99.toFixed(1)} ms`,
      );
    }
  }
}

// --- summary: medians per (target, n); ratios per run to the baseline of the same run, then their
// median. A Deno target's baseline is raw Deno.serve, every other one's raw Bun.serve.
const fmt = (v: number, d = 1) => (Number.isFinite(v) ? v.toFixed(d) : "–");
const baselineOf = (target: string) =>
  /-deno(-ext)?$/.test(target) && targets.includes("raw-deno") ? "raw-deno" : "raw-bun";
function ratioTo(base: string, target: string, n: number, pick: (r: RunResult) => number): number {
  return median(
    results
      .filter((r) => r.target === target && r.n === n)
      .map((r) => {
        const b = results.find((x) => x.target === base && x.n === n && x.run === r.run);
        return b ? pick(r) / pick(b) : Number.NaN;
      })
      .filter(Number.isFinite),
  );
}
const rows: string[] = [];
rows.push(
  "Ratios (×base) are to raw-bun, or to raw-deno for Deno targets, per run, then the median.",
  "",
  "| target | N | RSS MiB/1k | ×base | connect/s | ×base | idle CPU ms/s | ×base | 1-stream p50 ms | p95 | p99 | ×base p99 | max | server µs/msg | ×base | 100-stream p99 ms | client µs/msg | RSS after cycles vs idle | MiB kept | anon after cycles vs idle | 2nd cycle vs 1st |",
  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
);
const summary: Record<string, unknown>[] = [];
for (const n of sizes) {
  const medianOf = (target: string, pick: (r: RunResult) => number) =>
    median(results.filter((r) => r.target === target && r.n === n).map(pick));
  for (const target of targets) {
    const base = baselineOf(target);
    const m = {
      target,
      n,
      base,
      rssPer1kMiB: medianOf(target, (r) => r.rssPer1kMiB),
      connectRate: medianOf(target, (r) => r.connectRate),
      idleCpu: medianOf(target, (r) => r.idleCpuMsPerSec),
      p50: medianOf(target, (r) => r.oneStream.p50),
      p95: medianOf(target, (r) => r.oneStream.p95),
      p99: medianOf(target, (r) => r.oneStream.p99),
      max: medianOf(target, (r) => r.oneStream.max),
      serverUs: medianOf(target, (r) => r.oneStream.serverCpuUsPerMsg),
      p99Hundred: medianOf(target, (r) => r.hundredStreams.p99),
      clientUs: medianOf(target, (r) => r.oneStream.clientCpuUsPerMsg),
      cycle: medianOf(target, (r) => r.cycleGrowthPct),
      cycleMiB: medianOf(target, (r) => r.cycleRetainedMiB),
      anonCycle: medianOf(target, (r) => r.anonCycleGrowthPct),
      secondCycle: medianOf(target, (r) => r.secondCycleGrowthPct),
      rssRatio: ratioTo(base, target, n, (r) => r.rssPer1kMiB),
      connectRatio: ratioTo(base, target, n, (r) => r.connectRate),
      idleCpuRatio: ratioTo(base, target, n, (r) => r.idleCpuMsPerSec),
      p99Ratio: ratioTo(base, target, n, (r) => r.oneStream.p99),
      serverUsRatio: ratioTo(base, target, n, (r) => r.oneStream.serverCpuUsPerMsg),
      // run-to-run spread of the two budget ratios (min–max over runs)
      rssRatios: spread(base, target, n, (r) => r.rssPer1kMiB),
      p99Ratios: spread(base, target, n, (r) => r.oneStream.p99),
    };
    summary.push(m);
    rows.push(
      `| ${target} | ${n} | ${fmt(m.rssPer1kMiB, 2)} | ${fmt(m.rssRatio, 2)} | ${fmt(m.connectRate, 0)} | ${fmt(m.connectRatio, 2)} | ${fmt(m.idleCpu)} | ${fmt(m.idleCpuRatio, 2)} | ${fmt(m.p50)} | ${fmt(m.p95)} | ${fmt(m.p99)} | ${fmt(m.p99Ratio, 2)} | ${fmt(m.max)} | ${fmt(m.serverUs, 2)} | ${fmt(m.serverUsRatio, 2)} | ${fmt(m.p99Hundred)} | ${fmt(m.clientUs)} | ${fmt(m.cycle)}% | ${fmt(m.cycleMiB)} | ${fmt(m.anonCycle)}% | ${fmt(m.secondCycle)}% |`,
    );
  }
}
function spread(base: string, target: string, n: number, pick: (r: RunResult) => number): string {
  const all = results
    .filter((r) => r.target === target && r.n === n)
    .map((r) => {
      const b = results.find((x) => x.target === base && x.n === n && x.run === r.run);
      return b ? pick(r) / pick(b) : Number.NaN;
    })
    .filter(Number.isFinite);
  return all.length ? `${fmt(Math.min(...all), 2)}–${fmt(Math.max(...all), 2)}` : "–";
}
if (targets.includes("anycable-go")) {
  rows.push(
    "",
    "anycable-ts / anycable-go (per run, then the median; memory and latency: lower is better, rates: higher)",
    "",
    "| target | N | RSS/1k ×go | connect/s ×go | idle CPU ×go | 1-stream p99 ×go | server µs/msg ×go |",
    "|---|---|---|---|---|---|---|",
  );
  for (const n of sizes) {
    for (const target of targets.filter((t) => t.startsWith("ts-"))) {
      const go = (pick: (r: RunResult) => number) => fmt(ratioTo("anycable-go", target, n, pick), 2);
      rows.push(
        `| ${target} | ${n} | ${go((r) => r.rssPer1kMiB)} | ${go((r) => r.connectRate)} | ${go((r) => r.idleCpuMsPerSec)} | ${go((r) => r.oneStream.p99)} | ${go((r) => r.oneStream.serverCpuUsPerMsg)} |`,
      );
    }
  }
}
if (rpcResults.length) {
  rows.push(
    "",
    `RPC: ${values["rpc-clients"]} clients performing in a closed loop for ${values["rpc-seconds"]} s (server at --rpc_concurrency 28); grpc-js-direct = 28 calls in flight from a plain client`,
    "",
    "| target | transport | commands/s | ×direct | p50 ms | p99 ms |",
    "|---|---|---|---|---|---|",
  );
  for (const key of [
    "grpc-js-direct/grpc",
    "ts-bun/grpc",
    "ts-deno/grpc",
    "anycable-go/grpc",
    "ts-bun/http",
    "ts-deno/http",
    "anycable-go/http",
  ]) {
    const [target, transport] = key.split("/");
    const mine = rpcResults.filter((r) => r.target === target && r.transport === transport);
    if (!mine.length) continue;
    const ratio = median(
      mine.map(
        (r) =>
          r.commandsPerSec /
          (rpcResults.find((d) => d.target === "grpc-js-direct" && d.run === r.run)?.commandsPerSec ??
            Number.NaN),
      ),
    );
    const m = {
      target,
      transport,
      commandsPerSec: median(mine.map((r) => r.commandsPerSec)),
      ratio,
      p50: median(mine.map((r) => r.p50)),
      p99: median(mine.map((r) => r.p99)),
    };
    summary.push({ scenario: "rpc", ...m });
    rows.push(
      `| ${target} | ${transport} | ${fmt(m.commandsPerSec, 0)} | ${fmt(ratio, 2)} | ${fmt(m.p50)} | ${fmt(m.p99)} |`,
    );
  }
}
const table = rows.join("\n");
console.log(`\n${table}`);
mkdirSync(values.out!, { recursive: true });
const stamp = new Date().toISOString().replace(/[:]/g, "-").replace(/\..+/, "");
const meta = {
  date: new Date().toISOString(),
  sizes,
  runs,
  workers: workerCount,
  samples,
  bun: Bun.version,
  cpus: (await import("node:os")).cpus().length,
};
writeFileSync(
  join(values.out!, `${stamp}.json`),
  JSON.stringify({ meta, summary, results, rpcResults }, null, 2),
);
writeFileSync(join(values.out!, `${stamp}.md`), `# Benchmark ${meta.date}\n\n${table}\n`);
if (sizes.length >= 3 && results.length) {
  const series = targets.map((target) => ({
    target,
    points: sizes.map((n) => {
      const mine = results.filter((r) => r.target === target && r.n === n);
      return {
        n,
        rssPerConnKiB: (median(mine.map((r) => r.rssPer1kMiB)) * 1024) / 1000,
        connectRate: median(mine.map((r) => r.connectRate)),
        serverUsPerMsg: median(mine.map((r) => r.oneStream.serverCpuUsPerMsg)),
      };
    }),
  }));
  writeFileSync(join(values.out!, `${stamp}.svg`), costCurveSvg(series, meta.date));
}
console.log(`\nwrote ${join(values.out!, stamp)}.json and .md`);
