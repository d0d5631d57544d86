// The fan-out measurement shared by bench/run.ts and bench/cluster.ts: load-generator workers
// (bench/loadgen.ts, separate processes) and one broadcast phase timed until every subscriber has
// every publication.
import { join } from "node:path";
import { type JsonChild, jsonChild } from "./child.ts";
import { cpuMs, percentile } from "./proc.ts";

const ROOT = join(import.meta.dir, "..", "..");
const BIN = join(ROOT, "node_modules", ".bin");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const now = () => performance.timeOrigin + performance.now();

/** A bench/loadgen.ts process. */
export type Worker = JsonChild;

export function startWorker(
  url: string,
  count: number,
  offset: number,
  streams: number,
  transport: "ws" | "sse" | "pusher" | "ext" = "ws",
): Worker {
  return jsonChild(join(BIN, "bun"), [
    join(ROOT, "bench", "loadgen.ts"),
    `--url=${url}`,
    `--count=${count}`,
    `--offset=${offset}`,
    `--streams=${streams}`,
    `--transport=${transport}`,
  ]);
}

export interface LatencyStats {
  p50: number;
  p95: number;
  p99: number;
  max: number;
  complete: number;
  publications: number;
  clientCpuUsPerMsg: number;
  serverCpuMs: number;
  /** Messages received by all clients over the phase. */
  delivered: number;
  /** Server CPU time per delivered message: the figure that is not bound by the clients. */
  serverCpuUsPerMsg: number;
  /** Extended-protocol clients that got an epoch and offset with their messages (else undefined). */
  positioned?: number;
}

/**
 * `rounds` publications per stream to `url` (one HTTP batch per round), then the time until each
 * reached all its subscribers in `workers`. Server CPU is summed over `serverPids`.
 */
export async function broadcastPhase(
  url: string,
  serverPids: number[],
  workers: Worker[],
  n: number,
  streams: number,
  rounds: number,
  /** Sends one body (default: POST to `url`); the postgres-sql cluster mode sends it through SQL. */
  send?: (body: string) => Promise<void>,
  /** An `event` field in every publication (what a Pusher client needs to get it as an event). */
  event?: string,
): Promise<LatencyStats> {
  for (const w of workers) w.send("reset");
  const perStream = n / streams;
  const interval = Math.max(50, Math.ceil(n / 50));
  const clientCpu0 = workers.reduce((s, w) => s + cpuMs(w.proc.pid!), 0);
  const serverCpu = () => serverPids.reduce((sum, pid) => sum + cpuMs(pid), 0);
  const serverCpu0 = serverCpu();
  let seq = 0;
  for (let r = 0; r < rounds; r++) {
    const batch = [];
    for (let s = 0; s < streams; s++) {
      const data = event ? { event, seq: seq++, t: now() } : { seq: seq++, t: now() };
      batch.push({ stream: `bench-${s}`, data: JSON.stringify(data) });
    }
    const body = streams === 1 ? batch[0] : batch;
    if (send) await send(JSON.stringify(body));
    else {
      const res = await fetch(url, { method: "POST", body: JSON.stringify(body) });
      if (res.status !== 201) throw new Error(`broadcast status ${res.status}`);
    }
    await sleep(interval);
  }
  // wait until every publication reached all its subscribers (or give up after a while)
  const total = seq;
  let merged = new Map<number, [number, number]>();
  let positioned: number | undefined;
  for (let attempt = 0; attempt < 100; attempt++) {
    merged = new Map();
    positioned = undefined;
    for (const w of workers) w.send("report");
    for (const w of workers) {
      const rep = (await w.next("report")) as {
        received: Array<[number, [number, number]]>;
        positioned?: number;
      };
      if (rep.positioned !== undefined) positioned = (positioned ?? 0) + rep.positioned;
      for (const [s, [count, max]] of rep.received) {
        const m = merged.get(s);
        if (m) {
          m[0] += count;
          m[1] = Math.max(m[1], max);
        } else merged.set(s, [count, max]);
      }
    }
    const done = [...merged.values()].filter(([count]) => count >= perStream).length;
    if (done === total) break;
    await sleep(100);
  }
  const clientCpu = workers.reduce((s, w) => s + cpuMs(w.proc.pid!), 0) - clientCpu0;
  const serverCpuMs = serverCpu() - serverCpu0;
  const complete = [...merged.values()].filter(([count]) => count >= perStream);
  const latencies = complete.map(([, max]) => max).sort((a, b) => a - b);
  const delivered = [...merged.values()].reduce((s, [count]) => s + count, 0);
  return {
    p50: percentile(latencies, 50),
    p95: percentile(latencies, 95),
    p99: percentile(latencies, 99),
    max: latencies.at(-1) ?? Number.NaN,
    complete: complete.length,
    publications: total,
    clientCpuUsPerMsg: delivered ? (clientCpu * 1000) / delivered : Number.NaN,
    serverCpuMs,
    delivered,
    serverCpuUsPerMsg: delivered ? (serverCpuMs * 1000) / delivered : Number.NaN,
    positioned,
  };
}
