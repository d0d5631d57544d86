// One connection subscribes to N unique public streams in one burst while a second client keeps
// measuring a broadcast round trip and /health. Reports how long the burst took, the worst probe
// latencies during it, and the server's CPU time. Not part of `npm run bench` (issue 10).
//   bun bench/subscribe_burst.ts [--runtime bun|deno] [--n 30000] [--root DIR] [-- server args]
// --root runs another checkout's server (e.g. an export of the commit before a fix) with this
// script, so before/after numbers come from the same load generator.
import { type ChildProcess, spawn } from "node:child_process";
import { createServer } from "node:net";
import { join } from "node:path";
import WebSocket from "ws";
import { cpuMs, memoryOf, percentile } from "./lib/proc.ts";

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

const HERE = join(import.meta.dir, "..");
const runtime = arg("runtime", "bun");
const n = Number(arg("n", "30000"));
const root = arg("root", HERE);
const dashdash = process.argv.indexOf("--");
const extra = dashdash >= 0 ? process.argv.slice(dashdash + 1) : [];

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === "object" && addr ? resolve(addr.port) : reject(new Error("port"))));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function startServer(port: number): Promise<ChildProcess> {
  const bin = join(HERE, "node_modules", ".bin");
  const main = join(root, "src", "main.ts");
  const args = [`--port=${port}`, "--host=127.0.0.1", "--public", `--http_broadcast_port=${port}`, ...extra];
  const [cmd, base] =
    runtime === "deno" ? [join(bin, "deno"), ["run", "-A", main]] : [join(bin, "bun"), [main]];
  const proc = spawn(cmd, [...base, ...args], { cwd: root, stdio: ["ignore", "ignore", "inherit"] });
  for (let i = 0; i < 300; i++) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}/health`)).ok) return proc;
    } catch {}
    await sleep(100);
  }
  proc.kill("SIGKILL");
  throw new Error("server did not start");
}

function open(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, "actioncable-v1-json");
    ws.once("open", () => resolve(ws));
    ws.once("error", reject);
  });
}

const identifier = (stream: string) => JSON.stringify({ channel: "$pubsub", stream_name: stream });

async function main(): Promise<void> {
  const port = await freePort();
  const server = await startServer(port);
  const pid = server.pid!;
  const url = `ws://127.0.0.1:${port}/cable`;
  try {
    // the probe: subscribed to one stream, answers every broadcast on it
    const probe = await open(url);
    let probeSeen = -1;
    probe.on("message", (d) => {
      const m = JSON.parse(d.toString());
      if (m.type === "confirm_subscription") probeSeen = 0;
      if (m.message?.seq !== undefined) probeSeen = m.message.seq;
    });
    probe.send(JSON.stringify({ command: "subscribe", identifier: identifier("probe") }));
    while (probeSeen < 0) await sleep(5);

    const flooder = await open(url);
    let answered = 0;
    let confirmed = 0;
    let firstAt = 0;
    let doneAt = 0;
    flooder.on("message", (d) => {
      const m = JSON.parse(d.toString());
      if (m.type === "confirm_subscription" || m.type === "reject_subscription") {
        answered++;
        if (m.type === "confirm_subscription") confirmed++;
        if (answered === 1) firstAt = performance.now();
        if (answered === n) doneAt = performance.now();
      }
    });
    let closed = "";
    flooder.on("close", (code, reason) => {
      closed = `${code} ${reason.toString()}`;
      if (doneAt === 0) doneAt = performance.now();
    });
    await sleep(50);
    const cpu0 = cpuMs(pid);
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      flooder.send(JSON.stringify({ command: "subscribe", identifier: identifier(`s${i}`) }));
    }
    const sentAt = performance.now();
    while (answered === 0) await sleep(1);

    // probes until the burst is answered: a broadcast round trip, then a /health request
    const rtts: number[] = [];
    const health: number[] = [];
    const errors: string[] = [];
    let seq = 0;
    while (doneAt === 0) {
      seq++;
      const b0 = performance.now();
      try {
        await fetch(`http://127.0.0.1:${port}/_broadcast`, {
          method: "POST",
          body: JSON.stringify({ stream: "probe", data: JSON.stringify({ seq }) }),
        });
        while (probeSeen < seq && doneAt === 0) await sleep(1);
        if (probeSeen >= seq) rtts.push(performance.now() - b0);
        const h0 = performance.now();
        await fetch(`http://127.0.0.1:${port}/health`);
        health.push(performance.now() - h0);
      } catch (err) {
        // a request the stalled server dropped (seen on Deno before the fix): counted, not fatal
        errors.push(`${(err as Error).message} after ${Math.round(performance.now() - b0)} ms`);
      }
      await sleep(10);
    }
    const cpu = cpuMs(pid) - cpu0;
    const mem = memoryOf(pid);
    rtts.sort((a, b) => a - b);
    health.sort((a, b) => a - b);
    const r = (x: number) => Math.round(x);
    console.log(
      JSON.stringify({
        runtime,
        n,
        confirmed,
        answered,
        flooder_closed: closed || undefined,
        burst_ms: r(doneAt - t0),
        send_ms: r(sentAt - t0),
        first_answer_ms: r(firstAt - t0),
        server_cpu_ms: r(cpu),
        probes: rtts.length,
        broadcast_rtt_ms: { p50: r(percentile(rtts, 50)), max: r(rtts.at(-1) ?? Number.NaN) },
        health_ms: { p50: r(percentile(health, 50)), max: r(health.at(-1) ?? Number.NaN) },
        server_rss_mb: r(mem.rss / 1048576),
        probe_errors: errors,
      }),
    );
    flooder.close();
    probe.close();
  } finally {
    server.kill("SIGKILL");
  }
}

await main();
process.exit(0);
