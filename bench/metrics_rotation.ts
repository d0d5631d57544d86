// The whole per-interval cost of the push metrics, in process and free of load-generator noise:
// one rotation (interval snapshot of a registry the size of a server with RPC, the StatsD sink's
// lines and packets sent over UDP to a local listener, the log sink's line formatted and written
// to a null sink), timed over many rotations. Divided by the rotate interval it is the share of
// one core the sinks take; the hot path (a counter increment per message) is the same with and
// without sinks.
//   bun bench/metrics_rotation.ts [--rotations 2000]
//   deno run -A bench/metrics_rotation.ts
import { createSocket } from "node:dgram";
import { parseArgs } from "node:util";
import { Logger } from "../src/log/logger.ts";
import { MetricsLogSink } from "../src/metrics/log_sink.ts";
import { processMetrics } from "../src/metrics/process.ts";
import { rotation } from "../src/metrics/push.ts";
import { Metrics } from "../src/metrics/registry.ts";
import { StatsdSink } from "../src/metrics/statsd.ts";

const { values } = parseArgs({ options: { rotations: { type: "string", default: "2000" } } });
const rotations = Number(values.rotations);

const udp = createSocket("udp4");
let received = 0;
udp.on("message", () => received++);
await new Promise<void>((resolve) => udp.bind(0, "127.0.0.1", () => resolve()));
const port = udp.address().port;

const tags = { env: "bench", node: "n1" };
const metrics = new Metrics(tags);
// ~40 metrics, as a server with gRPC RPC and the heap gauges registers
for (let i = 0; i < 30; i++) metrics.counter(`bench_counter_${i}_total`, "a counter").inc(i * 1000);
for (let i = 0; i < 10; i++) metrics.gauge(`bench_gauge_${i}_num`, "a gauge").set(i);
processMetrics(metrics, { refreshSec: 5, detailed: true })?.run(0);
const logger = new Logger("info", "text", { nodeid: "bench" }, { write() {} });
const statsd = new StatsdSink(
  {
    address: `127.0.0.1:${port}`,
    host: "127.0.0.1",
    port,
    prefix: "anycable_go.",
    maxPacketSize: 1400,
    tagsFormat: "datadog",
    intervalSec: 1,
    tags,
  },
  logger,
);
const log = new MetricsLogSink({ filter: [], intervalSec: 1 }, logger);
await statsd.start();
await log.start();
const task = rotation(metrics, [statsd, log], 1000, logger);
task.run(0);

const counters = [...metrics.eachCounter()];
let syncNs = 0;
let totalNs = 0;
for (let i = 0; i < rotations; i++) {
  for (const c of counters) c.inc(7);
  const t0 = performance.now();
  task.run(i);
  const t1 = performance.now();
  await statsd.idle();
  const t2 = performance.now();
  syncNs += (t1 - t0) * 1e6;
  totalNs += (t2 - t0) * 1e6;
}
await statsd.shutdown(AbortSignal.timeout(1000));
// the listener reads what its socket buffer kept (thousands of packets arrive at once)
for (let i = 0; i < 100 && received === 0; i++) await new Promise((r) => setTimeout(r, 20));
udp.close();
const runtime = "Bun" in globalThis ? "bun" : "deno";
const syncUs = syncNs / rotations / 1000;
const totalUs = totalNs / rotations / 1000;
console.log(
  `${runtime}: ${rotations} rotations, ${statsd.packetsSent} StatsD packets (the listener got packets: ${received > 0}): ` +
    `${syncUs.toFixed(1)} µs on the ticker per rotation, ${totalUs.toFixed(1)} µs until sent; ` +
    `at --metrics_rotate_interval=1 that is ${(totalUs / 1e4).toFixed(3)}% of a core (default 15 s: ${(totalUs / 15e4).toFixed(4)}%)`,
);
