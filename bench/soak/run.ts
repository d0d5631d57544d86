import { randomBytes } from "node:crypto";
import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { type JsonChild, jsonChild } from "../lib/child.ts";
import { renderSvg, type Series } from "../lib/plot.ts";
import { memoryAfterGc, memoryOf } from "../lib/proc.ts";
import { startTarget } from "../lib/targets.ts";

const ROOT = join(import.meta.dir, "..", "..");
const BIN = join(ROOT, "node_modules", ".bin");
const { values } = parseArgs({
  options: {
    target: { type: "string", default: "ts-bun" },
    minutes: { type: "string", default: "30" },
    clients: { type: "string", default: "5000" },
    workers: { type: "string", default: "2" },
    streams: { type: "string", default: "50" },
    rate: { type: "string", default: "50" },
    out: { type: "string", default: join(ROOT, "bench", "results") },
  },
});
const target = values.target!;
const minutes = Number(values.minutes);
const clients = Number(values.clients);
const streams = Number(values.streams);
const rate = Number(values.rate);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A bench/soak/client.ts process. */
function startWorker(url: string, count: number, offset: number): JsonChild {
  return jsonChild(join(BIN, "bun"), [
    join(import.meta.dir, "client.ts"),
    `--url=${url}`,
    `--count=${count}`,
    `--offset=${offset}`,
    `--streams=${streams}`,
  ]);
}

/** A client that upgrades, subscribes to the heavy stream and then never reads. */
function slowReader(port: number): Promise<void> {
  return new Promise((resolve) => {
    const sock = connect(port, "127.0.0.1");
    sock.on("error", () => resolve());
    sock.on("connect", () => {
      sock.write(
        `GET /cable HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${randomBytes(16).toString("base64")}\r\n` +
          "Sec-WebSocket-Protocol: actioncable-v1-json\r\n\r\n",
      );
      const cmd = JSON.stringify({
        command: "subscribe",
        identifier: JSON.stringify({ channel: "$pubsub", stream_name: "soak-heavy" }),
      });
      sock.write(maskedText(cmd));
      // stop reading: the server's send buffer for this client only grows
      sock.pause();
      resolve();
    });
  });
}

function maskedText(text: string): Buffer {
  const payload = Buffer.from(text);
  const mask = randomBytes(4);
  const head =
    payload.length < 126
      ? Buffer.from([0x81, 0x80 | payload.length])
      : Buffer.from([0x81, 0x80 | 126, payload.length >> 8, payload.length & 255]);
  const body = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!));
  return Buffer.concat([head, mask, body]);
}

async function metric(url: string, name: string): Promise<number> {
  const text = await (await fetch(url)).text();
  const m = text.match(new RegExp(`^anycable_go_${name}(?:\\{[^}]*\\})? (\\d+)$`, "m"));
  return m ? Number(m[1]) : Number.NaN;
}

const fds = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;

const { proc: server, port } = await startTarget(target, ["--metrics_http=/metrics"]);
const pid = server.pid!;
const base = `http://127.0.0.1:${port}`;
const workerCount = Number(values.workers);
const per = Math.ceil(clients / workerCount);
const workers = Array.from({ length: workerCount }, (_, w) =>
  startWorker(`ws://127.0.0.1:${port}/cable`, Math.min(per, clients - w * per), w * per),
);
await Promise.all(workers.map((w) => w.next("ready", 300_000)));
console.log(`${target}: ${clients} clients connected; soaking for ${minutes} min`);

// Broadcasts: `rate` per second round-robin over the streams, each with its stream's next number;
// one heavy (256 KiB) publication per second to the slow readers' stream.
const seq = new Array<number>(streams).fill(0);
let published = 0;
let publishFailures = 0;
/** What failed publications got (a status or an error), to tell the server's refusals from the network's. */
const failureReasons = new Map<string, number>();
const failed = (reason: string) => {
  publishFailures++;
  failureReasons.set(reason, (failureReasons.get(reason) ?? 0) + 1);
};
let k = 0;
const heavy = JSON.stringify({ pad: "x".repeat(256 * 1024) });
const publisher = setInterval(() => {
  const s = k++ % streams;
  const body = JSON.stringify({ stream: `soak-${s}`, data: JSON.stringify({ seq: seq[s]++, s }) });
  fetch(`${base}/_broadcast`, { method: "POST", body }).then(
    (r) => (r.status === 201 ? published++ : failed(`status ${r.status}`)),
    (e: Error) => failed(`${e.name}: ${e.message}`),
  );
}, 1000 / rate);
const heavyPublisher = setInterval(() => {
  fetch(`${base}/_broadcast`, {
    method: "POST",
    body: JSON.stringify({ stream: "soak-heavy", data: heavy }),
  }).catch(() => {});
}, 1000);

interface Sample {
  t: number;
  rssMiB: number;
  anonMiB: number;
  fds: number;
  clients: number;
  delivered: number;
  gaps: number;
  slowDropped: number;
  /** Once a minute: RSS right after a full collection (bench/lib/gc_host.ts), the live memory. */
  rssAfterGcMiB?: number;
}
const samples: Sample[] = [];
const started = Date.now();
const totalMs = minutes * 60_000;
let nextChurn = started + 60_000;
while (Date.now() - started < totalMs) {
  await sleep(10_000);
  // the minute's live-memory reading comes before its churn
  const gcReading = Date.now() >= nextChurn ? (await memoryAfterGc(pid)).rss / 2 ** 20 : undefined;
  if (Date.now() >= nextChurn) {
    nextChurn += 60_000;
    for (const w of workers) w.send("churn 0.1");
    await Promise.all(workers.map((w) => w.next("churned")));
    for (const w of workers) w.send("move 0.05");
    await Promise.all(workers.map((w) => w.next("moved")));
    await slowReader(port);
  }
  for (const w of workers) w.send("report");
  const reports = await Promise.all(workers.map((w) => w.next("report")));
  const mem = memoryOf(pid);
  const sample: Sample = {
    t: Math.round((Date.now() - started) / 1000),
    rssMiB: mem.rss / 2 ** 20,
    anonMiB: mem.anon / 2 ** 20,
    fds: fds(pid),
    clients: await metric(`${base}/metrics`, "clients_num"),
    delivered: reports.reduce((a, r) => a + Number(r.delivered), 0),
    gaps: reports.reduce((a, r) => a + Number(r.gaps), 0),
    slowDropped: await metric(`${base}/metrics`, "disconnected_slow_clients_total"),
  };
  if (gcReading !== undefined) sample.rssAfterGcMiB = gcReading;
  samples.push(sample);
  console.log(
    `t=${sample.t}s rss=${sample.rssMiB.toFixed(1)} MiB anon=${sample.anonMiB.toFixed(1)} fds=${sample.fds} clients=${sample.clients} delivered=${sample.delivered} gaps=${sample.gaps} slow-dropped=${sample.slowDropped}`,
  );
}
clearInterval(publisher);
clearInterval(heavyPublisher);
for (const w of workers) w.send("close");
server.kill("SIGTERM");

// RSS swings by a quarter with each major collection (V8 under Deno most), so one sample against
// another measures the collector, not a trend: compare the mean (and the floor, the post-collection
// minimum) of minutes 5-10 with those of the last five minutes.
const window = (from: number, to: number) =>
  samples.filter((s) => s.t >= from && s.t < to).map((s) => s.rssMiB);
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const endT = samples[samples.length - 1]!.t;
const early = window(300, 600);
const late = window(Math.max(600, endT - 300), endT + 1);
const at5 = samples.find((s) => s.t >= 300) ?? samples[0]!;
const last = samples[samples.length - 1]!;
// After a full collection RSS is the live memory (plus what the allocator keeps): comparable
// minute to minute whatever the collector did in between. The budget is judged on it.
const gcSamples = samples.filter((s) => s.rssAfterGcMiB !== undefined);
const gcAt5 = gcSamples.find((s) => s.t >= 300) ?? gcSamples[0];
const gcLast = gcSamples[gcSamples.length - 1];
const verdict = {
  rssAfterGcMiB: { at5: gcAt5?.rssAfterGcMiB, end: gcLast?.rssAfterGcMiB },
  rssAfterGcGrowthPct:
    gcAt5 && gcLast ? ((gcLast.rssAfterGcMiB! - gcAt5.rssAfterGcMiB!) / gcAt5.rssAfterGcMiB!) * 100 : null,
  rssMeanGrowthPct: ((mean(late) - mean(early)) / mean(early)) * 100,
  rssFloorGrowthPct: ((Math.min(...late) - Math.min(...early)) / Math.min(...early)) * 100,
  rssMeanMiB: { minutes5to10: mean(early), last5: mean(late) },
  fdGrowthAfter5Min: last.fds - at5.fds,
  gaps: last.gaps,
  slowReadersDropped: last.slowDropped,
  slowReadersStarted: Math.floor(samples.length / 6),
  published,
  publishFailures,
  failureReasons: Object.fromEntries(failureReasons),
};
console.log(JSON.stringify(verdict));
const stamp = new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19);
mkdirSync(values.out!, { recursive: true });
const file = join(values.out!, `soak-${target}-${stamp}`);
writeFileSync(
  `${file}.json`,
  JSON.stringify({ target, minutes, clients, streams, rate, samples, verdict }, null, 2),
);
const series: Series[] = [
  { name: "RSS MiB", values: samples.map((s) => [s.t, s.rssMiB]) },
  { name: "anon MiB", values: samples.map((s) => [s.t, s.anonMiB]) },
  { name: "RSS after GC MiB", values: gcSamples.map((s) => [s.t, s.rssAfterGcMiB!]) },
  { name: "fds / 100", values: samples.map((s) => [s.t, s.fds / 100]) },
];
writeFileSync(`${file}.svg`, renderSvg(`${target}: ${clients} clients, ${minutes} min of churn`, series));
console.log(`wrote ${file}.json and .svg`);
process.exit(0);
