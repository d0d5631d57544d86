// The cluster scenario (issue 12): N subscribers of one stream split across two anycable-ts nodes,
// publications made over HTTP to node A, timed until every subscriber on both nodes has each one;
// through Redis pub/sub (also with the Redis broker: redis-broker), NATS pub/sub and embedded
// NATS, beside one node holding all N in the
// same run. Also RSS per connection per node, against one node holding half the clients (the same
// count per node: a server's first connections cost more than later ones, so per-connection
// figures are only comparable at equal counts). Redis and NATS are real servers on free ports.
//   bun bench/cluster.ts [--runtime bun|deno] [--clients 5000] [--samples 40] [--modes single,redis,nats,enats]
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { broadcastPhase, type LatencyStats, startWorker } from "./lib/fanout.ts";
import { memoryAfterGc } from "./lib/proc.ts";
import { freePort } from "./lib/targets.ts";

const ROOT = join(import.meta.dir, "..");
const BIN = join(ROOT, "node_modules", ".bin");
const { values } = parseArgs({
  options: {
    runtime: { type: "string", default: "bun" },
    clients: { type: "string", default: "5000" },
    samples: { type: "string", default: "40" },
    modes: { type: "string", default: "single,single-half,redis,nats,enats" },
    out: { type: "string", default: join(ROOT, "bench", "results") },
  },
});
const runtime = values.runtime!;
const clients = Number(values.clients);
const samples = Number(values.samples);
const modes = values.modes!.split(",");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function untilOpen(url: string, what: string, proc: ChildProcess): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (proc.exitCode !== null) throw new Error(`${what} exited with ${proc.exitCode}`);
    try {
      if ((await fetch(url)).ok) return;
    } catch {}
    await sleep(50);
  }
  throw new Error(`${what} did not start`);
}

/** A server process inside gc_host (memory read after a full collection). */
async function node(port: number, args: string[]): Promise<ChildProcess> {
  const host = join(ROOT, "bench", "lib", "gc_host.ts");
  const base =
    runtime === "deno"
      ? [join(BIN, "deno"), "run", "-A", "--v8-flags=--expose-gc", host]
      : [join(BIN, "bun"), host];
  const all = [
    `--port=${port}`,
    "--host=127.0.0.1",
    "--public",
    "--norpc",
    "--broadcast_adapter=http",
    `--http_broadcast_port=${port}`,
    "--log_level=error",
    ...args,
  ];
  const proc = spawn(base[0]!, [...base.slice(1), ...all], {
    stdio: ["ignore", "ignore", "inherit"],
    env: { ...process.env, BENCH_SERVER_MODULE: join(ROOT, "src", "main.ts") },
  });
  await untilOpen(`http://127.0.0.1:${port}/health`, `node on ${port}`, proc);
  return proc;
}

/** A private redis-server or nats-server; resolves once it accepts connections. */
async function engine(kind: "redis" | "nats"): Promise<{ url: string; proc: ChildProcess }> {
  const port = await freePort();
  const proc =
    kind === "redis"
      ? spawn(
          "redis-server",
          [
            "--port",
            String(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            mkdtempSync(join(tmpdir(), "bench-redis-")),
          ],
          { stdio: "ignore" },
        )
      : spawn("nats-server", ["-a", "127.0.0.1", "-p", String(port)], { stdio: "ignore" });
  const { connect } = await import("node:net");
  for (let i = 0; i < 100; i++) {
    const open = await new Promise<boolean>((resolve) => {
      const s = connect(port, "127.0.0.1");
      s.on("connect", () => {
        s.destroy();
        resolve(true);
      });
      s.on("error", () => resolve(false));
    });
    if (open) return { url: `${kind}://127.0.0.1:${port}`, proc };
    await sleep(50);
  }
  throw new Error(`${kind} did not start`);
}

interface ModeResult {
  mode: string;
  nodes: number;
  clients: number;
  connectMs: number;
  oneStream: LatencyStats;
  /** RSS per 1k connections, per node. */
  rssPer1kMiB: number[];
}

async function runMode(mode: string): Promise<ModeResult> {
  const procs: ChildProcess[] = [];
  try {
    const single = mode === "single" || mode === "single-half";
    const total = mode === "single-half" ? Math.ceil(clients / 2) : clients;
    const ports = single ? [await freePort()] : [await freePort(), await freePort()];
    let argsFor: (i: number) => string[] = () => [];
    if (mode === "redis" || mode === "redis-broker") {
      const redis = await engine("redis");
      procs.push(redis.proc);
      // redis-broker (issue 14): every publication also takes its offset in Redis
      const broker = mode === "redis-broker" ? ["--broker=redis"] : [];
      argsFor = () => ["--pubsub=redis", `--redis_url=${redis.url}`, ...broker];
    } else if (mode === "nats") {
      const nats = await engine("nats");
      procs.push(nats.proc);
      argsFor = () => ["--pubsub=nats", `--nats_servers=${nats.url}`];
    } else if (mode === "enats") {
      const clientPorts = [await freePort(), await freePort()];
      const clusterPorts = [await freePort(), await freePort()];
      const routes = clusterPorts.map((p) => `nats://127.0.0.1:${p}`).join(",");
      argsFor = (i) => [
        "--embed_nats",
        "--pubsub=nats",
        `--enats_addr=nats://127.0.0.1:${clientPorts[i]}`,
        `--enats_cluster=nats://127.0.0.1:${clusterPorts[i]}`,
        `--enats_cluster_routes=${routes}`,
        "--enats_cluster_name=bench",
        `--enats_server_name=bench-${i}`,
      ];
    }
    const nodes: ChildProcess[] = [];
    for (let i = 0; i < ports.length; i++) nodes.push(await node(ports[i]!, argsFor(i)));
    procs.push(...nodes);
    // embedded servers need a moment to see each other through their routes
    if (mode === "enats") await sleep(3000);
    const idle = await Promise.all(nodes.map((p) => memoryAfterGc(p.pid!)));
    const per = Math.ceil(total / nodes.length);
    const started = performance.now();
    const workers = ports.map((port, i) =>
      startWorker(`ws://127.0.0.1:${port}/cable`, Math.min(per, total - i * per), i * per, 1),
    );
    await Promise.all(workers.map((w) => w.next("ready", 300_000)));
    const connectMs = performance.now() - started;
    const connected = await Promise.all(nodes.map((p) => memoryAfterGc(p.pid!)));
    const oneStream = await broadcastPhase(
      `http://127.0.0.1:${ports[0]}/_broadcast`,
      nodes.map((p) => p.pid!),
      workers,
      total,
      1,
      samples,
    );
    for (const w of workers) w.send("close");
    await Promise.all(workers.map((w) => w.next("closed")));
    const rssPer1kMiB = nodes.map(
      (_, i) => (connected[i]!.rss - idle[i]!.rss) / (Math.min(per, total - i * per) / 1000) / 1048576,
    );
    return { mode, nodes: nodes.length, clients: total, connectMs, oneStream, rssPer1kMiB };
  } finally {
    for (const p of procs.reverse()) p.kill("SIGKILL");
    await sleep(300);
  }
}

const results: ModeResult[] = [];
for (const mode of modes) {
  const r = await runMode(mode);
  results.push(r);
  console.log(
    `${runtime} ${mode} (${r.nodes} node${r.nodes > 1 ? "s" : ""}, ${clients} clients): p50/p99 ${r.oneStream.p50.toFixed(1)}/${r.oneStream.p99.toFixed(1)} ms, ` +
      `complete ${r.oneStream.complete}/${r.oneStream.publications}, RSS/1k ${r.rssPer1kMiB.map((x) => x.toFixed(2)).join(" + ")} MiB`,
  );
}
// latency against one node with every client; memory against one node with as many per node
const single = results.find((r) => r.mode === "single");
const half = results.find((r) => r.mode === "single-half");
const table = [
  "| mode | nodes | clients | p50 ms | p99 ms | ×single p99 | complete | server CPU µs/delivery | RSS MiB/1k per node | ×single-half |",
  "|---|---|---|---|---|---|---|---|---|---|",
  ...results.map((r) => {
    const p99x = single ? (r.oneStream.p99 / single.oneStream.p99).toFixed(2) : "";
    const rssx = half ? (Math.max(...r.rssPer1kMiB) / half.rssPer1kMiB[0]!).toFixed(2) : "";
    const cpu = (
      (r.oneStream.serverCpuMs * 1000) /
      Math.max(1, r.oneStream.publications * r.clients)
    ).toFixed(2);
    return `| ${r.mode} | ${r.nodes} | ${r.clients} | ${r.oneStream.p50.toFixed(1)} | ${r.oneStream.p99.toFixed(1)} | ${p99x} | ${r.oneStream.complete}/${r.oneStream.publications} | ${cpu} | ${r.rssPer1kMiB.map((x) => x.toFixed(2)).join(", ")} | ${rssx} |`;
  }),
].join("\n");
console.log(`\n${table}`);
const stamp = new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19);
mkdirSync(values.out!, { recursive: true });
const file = join(values.out!, `cluster-${runtime}-${stamp}`);
writeFileSync(`${file}.json`, `${JSON.stringify({ runtime, clients, samples, results }, null, 2)}\n`);
writeFileSync(`${file}.md`, `${table}\n`);
console.log(`wrote ${file}.json and .md`);
process.exit(0);
