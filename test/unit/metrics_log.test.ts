// The MetricsSink contract on the log sink (--metrics_log), its line (anycable-go's BasePrinter:
// an empty INFO message, metrics sorted by name), the filter and its warning, the interval
// snapshot the push sinks get, the rotation task, the process gauges and the tag checks.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { withMetricsTable } from "../../scripts/metrics-doc.ts";
import { composeCable } from "../../src/app/cable.ts";
import { loadConfig } from "../../src/config/index.ts";
import { Logger } from "../../src/log/logger.ts";
import { METRICS_CATALOG, renderMetricsTable } from "../../src/metrics/catalog.ts";
import { MetricsLogSink } from "../../src/metrics/log_sink.ts";
import { fromConfig } from "../../src/metrics/options.ts";
import { processMetrics } from "../../src/metrics/process.ts";
import { pushMetrics, rotation } from "../../src/metrics/push.ts";
import { Metrics } from "../../src/metrics/registry.ts";
import type { MetricsSink, MetricsSnapshot } from "../../src/metrics/sink.ts";
import type { Runtime } from "../../src/runtime/types.ts";
import { metricsSinkContract, type SinkReading } from "./contracts/metrics_sink_contract.ts";

const TIME = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} /;

function capture(format: "text" | "json" = "text") {
  const lines: string[] = [];
  const logger = new Logger("info", format, {}, { write: (l) => lines.push(l) });
  return { lines, logger };
}

/**
 * Reads a metrics line back. The log carries no types: anycable-go names its counters *_total
 * (and the contract's gauges are not), so that is how the harness tells them apart.
 */
function parseMetricsLine(line: string): SinkReading[] {
  const m = /^(\S+ \S+) INF {2}(.*)$/.exec(line);
  assert.ok(m && TIME.test(`${m[1]} `), `a metrics line: ${line}`);
  const readings: SinkReading[] = [];
  let tags: Record<string, string> = {};
  for (const pair of m[2]!.split(" ")) {
    const [key, value] = pair.split("=") as [string, string];
    if (key === "context") {
      assert.equal(value, "metrics");
      continue;
    }
    if (key === "tags") {
      tags = Object.fromEntries(value.split(",").map((kv) => kv.split(":") as [string, string]));
      continue;
    }
    assert.match(value, /^\d+$/, `${key} has a number`);
    readings.push({
      name: key,
      type: key.endsWith("_total") ? "counter" : "gauge",
      value: Number(value),
      tags,
    });
  }
  return readings.map((r) => ({ ...r, tags }));
}

metricsSinkContract(
  "log",
  async () => {
    const { lines, logger } = capture();
    const sink = new MetricsLogSink({ filter: [], intervalSec: 15 }, logger);
    return {
      sink,
      async read() {
        return parseMetricsLine(lines.at(-1)!);
      },
      async close() {},
    };
  },
  { descriptions: false },
);

const SNAP: MetricsSnapshot = {
  counters: [
    { name: "rpc_call_total", description: "", value: 4 },
    { name: "broadcast_msg_total", description: "", value: 3 },
  ],
  gauges: [
    { name: "clients_num", description: "", value: 2 },
    { name: "broadcast_streams_num", description: "", value: 1 },
  ],
  tags: {},
};

describe("metrics log line", () => {
  it("is anycable-go's: INFO, empty message, every metric sorted by name, context=metrics", async () => {
    const { lines, logger } = capture();
    const sink = new MetricsLogSink({ filter: [], intervalSec: 15 }, logger.with({ nodeid: "n1" }));
    await sink.start(() => {});
    assert.match(lines[0]!, /^\S+ \S+ INF log metrics interval=15 nodeid=n1 context=metrics$/);
    sink.write(SNAP);
    assert.match(
      lines[1]!,
      /^\S+ \S+ INF {2}broadcast_msg_total=3 broadcast_streams_num=1 clients_num=2 rpc_call_total=4 nodeid=n1 context=metrics$/,
    );
  });

  it("keeps only the filtered metrics and names the filter at start", async () => {
    const { lines, logger } = capture();
    const sink = new MetricsLogSink({ filter: ["rpc_call_total", "clients_num"], intervalSec: 5 }, logger);
    await sink.start(() => {});
    assert.match(lines[0]!, /INF log metrics interval=5 fields=rpc_call_total,clients_num context=metrics$/);
    sink.write(SNAP);
    assert.match(lines[1]!, /INF {2}clients_num=2 rpc_call_total=4 context=metrics$/);
  });

  it("adds --metrics_tags as one tags= attribute; JSON lines carry the same keys", () => {
    const { lines, logger } = capture("json");
    const sink = new MetricsLogSink({ filter: [], intervalSec: 15 }, logger);
    sink.write({ ...SNAP, tags: { env: "prod", dc: "one" } });
    const rec = JSON.parse(lines[0]!);
    assert.equal(rec.level, "INFO");
    assert.equal(rec.msg, "");
    assert.equal(rec.context, "metrics");
    assert.equal(rec.clients_num, 2);
    assert.equal(rec.rpc_call_total, 4);
    assert.equal(rec.tags, "env:prod,dc:one");
  });

  it("warns once, at start, about filter names this server does not report, saying why", async () => {
    const { lines, logger } = capture();
    const metrics = new Metrics();
    metrics.gauge("clients_num", "");
    const filter = ["clients_num", "no_such_metric", "goroutines_num", "rpc_call_total"];
    const sink = new MetricsLogSink({ filter, intervalSec: 15 }, logger, (n) => metrics.has(n));
    await sink.start(() => {});
    const warns = lines.filter((l) => l.includes(" WRN "));
    assert.equal(warns.length, 1, lines.join("\n"));
    assert.match(warns[0]!, /metrics_log_filter names metrics this server does not report: /);
    assert.match(warns[0]!, /no_such_metric \(unknown metric\)/);
    assert.match(warns[0]!, /goroutines_num \(not served by anycable-ts: no: a Go runtime figure/);
    assert.match(warns[0]!, /rpc_call_total \(not registered in this configuration: with RPC\)/);
    assert.doesNotMatch(warns[0]!, /clients_num/);
    sink.write(metrics.intervalSnapshot());
    sink.write(metrics.intervalSnapshot());
    assert.equal(lines.filter((l) => l.includes(" WRN ")).length, 1, "once");
  });

  it("without a registry, checks the filter against the first snapshot", () => {
    const { lines, logger } = capture();
    const sink = new MetricsLogSink({ filter: ["clients_num", "bogus_total"], intervalSec: 15 }, logger);
    sink.write(SNAP);
    sink.write(SNAP);
    const warns = lines.filter((l) => l.includes(" WRN "));
    assert.equal(warns.length, 1);
    assert.match(warns[0]!, /bogus_total \(unknown metric\)/);
  });
});

describe("interval snapshots (what the push sinks get)", () => {
  it("give each counter's growth since the previous one and gauges as they are", () => {
    const metrics = new Metrics({ env: "test" });
    const sent = metrics.counter("server_msg_total", "");
    const clients = metrics.gauge("clients_num", "");
    sent.inc(5);
    clients.set(3);
    const first = metrics.intervalSnapshot();
    assert.deepEqual(
      first.counters.map((c) => c.value),
      [5],
    );
    assert.deepEqual(first.tags, { env: "test" });
    sent.inc(2);
    const second = metrics.intervalSnapshot();
    assert.equal(second.counters[0]!.value, 2);
    assert.equal(second.gauges[0]!.value, 3, "gauges are not deltas");
    assert.equal(metrics.intervalSnapshot().counters[0]!.value, 0, "nothing happened");
    // Prometheus keeps the cumulative value
    assert.equal(metrics.snapshot().counters[0]!.value, 7);
    assert.deepEqual(metrics.snapshot().tags, { env: "test" });
  });

  it("are written to every push sink by the rotation task, from its second run", () => {
    const metrics = new Metrics();
    const c = metrics.counter("client_msg_total", "");
    const got: Array<[string, number]> = [];
    const sink = (name: string): MetricsSink => ({
      name,
      start: async () => {},
      shutdown: async () => {},
      write: (s) => got.push([name, s.counters[0]!.value]),
    });
    const { logger } = capture();
    const task = rotation(metrics, [sink("a"), sink("b")], 1000, logger);
    assert.equal(task.everyMs, 1000);
    c.inc(1);
    task.run(0); // the ticker's first tick: starts the clock
    assert.deepEqual(got, []);
    c.inc(2);
    task.run(1000);
    c.inc(4);
    task.run(2000);
    assert.deepEqual(got, [
      ["a", 3],
      ["b", 3],
      ["a", 4],
      ["b", 4],
    ]);
  });

  it("a sink that throws is logged and does not stop the others", () => {
    const metrics = new Metrics();
    const { lines, logger } = capture();
    let written = 0;
    const bad: MetricsSink = {
      name: "bad",
      start: async () => {},
      shutdown: async () => {},
      write: () => {
        throw new Error("boom");
      },
    };
    const good: MetricsSink = { ...bad, name: "good", write: () => void written++ };
    const task = rotation(metrics, [bad, good], 1000, logger);
    task.run(0);
    task.run(1000);
    assert.equal(written, 1);
    assert.match(lines.join("\n"), /ERR metrics writer failed to write sink=bad error=boom context=metrics/);
  });
});

describe("process gauges", () => {
  it("mem_sys_bytes (RSS) every --stats_refresh_interval; heap gauges with ANYCABLE_MEMORY_METRICS", () => {
    const plain = new Metrics();
    const task = processMetrics(plain, { refreshSec: 5, detailed: false });
    assert.equal(task?.everyMs, 5000);
    assert.equal(plain.gaugeValue("mem_sys_bytes"), 0);
    task!.run(0);
    assert.ok(plain.gaugeValue("mem_sys_bytes") > 1024 * 1024, "a plausible RSS");
    assert.ok(!plain.has("heap_sys_bytes"));

    const detailed = new Metrics();
    processMetrics(detailed, { refreshSec: 1, detailed: true })!.run(0);
    const sys = detailed.gaugeValue("heap_sys_bytes");
    const alloc = detailed.gaugeValue("heap_alloc_total");
    assert.ok(sys > 0 && alloc > 0 && alloc <= sys, `${alloc} <= ${sys}`);
    assert.equal(detailed.gaugeValue("heap_idle_bytes"), sys - alloc);
    for (const n of ["goroutines_num", "stack_sys_bytes", "heap_released_bytes"]) assert.ok(!detailed.has(n));
  });

  it("are not registered with --stats_refresh_interval=0", () => {
    const metrics = new Metrics();
    assert.equal(processMetrics(metrics, { refreshSec: 0, detailed: true }), undefined);
    assert.ok(!metrics.has("mem_sys_bytes"));
  });
});

function config(argv: string[], env: Record<string, string> = {}) {
  const r = loadConfig({ argv, env, readFile: () => undefined });
  if (r.kind !== "run") throw new Error(r.kind === "error" ? r.message : "exit");
  return r.config;
}

function configError(argv: string[], file?: string): string {
  const r = loadConfig({
    argv: file ? ["--config-path=/x.toml", ...argv] : argv,
    env: {},
    readFile: () => file,
  });
  assert.equal(r.kind, "error", `${argv.join(" ")} is refused`);
  return r.kind === "error" ? r.message : "";
}

describe("metrics options", () => {
  it("build the sinks the flags ask for", async () => {
    const { logger } = capture();
    const none = pushMetrics(fromConfig(config([])), new Metrics(), logger);
    assert.deepEqual(
      none.sinks.map((s) => s.name),
      [],
    );
    assert.equal(none.tasks.length, 1, "only the process gauges");
    const both = pushMetrics(
      fromConfig(config(["--metrics_log", "--statsd_host=localhost:8125", "--metrics_rotate_interval=0"])),
      new Metrics(),
      logger,
    );
    assert.deepEqual(
      both.sinks.map((s) => s.name),
      ["metrics (log)", "metrics (statsd)"],
    );
    assert.deepEqual(
      both.tasks.map((t) => t.everyMs),
      [15_000, 5_000],
      "rotate interval 0 means 15 s",
    );
    for (const s of both.sinks) await s.shutdown(AbortSignal.timeout(100));
  });

  it("read tags, the StatsD settings and ANYCABLE_MEMORY_METRICS", () => {
    const o = fromConfig(
      config(
        [
          "--metrics_tags=env:prod,node-id:a1",
          "--statsd_host=[::1]:9125",
          "--statsd_prefix=x.",
          "--statsd_tags_format=graphite",
          "--statsd_max_packet_size=512",
          "--metrics_log_interval=7",
          "--metrics_rotate_interval=0",
        ],
        { ANYCABLE_MEMORY_METRICS: "1" },
      ),
    );
    assert.deepEqual(o.tags, { env: "prod", "node-id": "a1" });
    assert.deepEqual(o.statsd, {
      address: "[::1]:9125",
      host: "::1",
      port: 9125,
      prefix: "x.",
      maxPacketSize: 512,
      tagsFormat: "graphite",
    });
    assert.equal(o.rotateIntervalSec, 7, "the deprecated metrics_log_interval");
    assert.equal(o.memoryMetrics, true);
  });

  it("refuse malformed tags and StatsD hosts with one line naming the option", () => {
    assert.match(configError(["--metrics_tags=env"]), /metrics_tags.*key:value/);
    assert.match(configError(["--metrics_tags=:prod"]), /metrics_tags.*empty name/);
    assert.match(configError(["--metrics_tags=a:b:c"]), /metrics_tags.*cannot contain/);
    assert.match(configError(["--metrics_tags=env:pr|od"]), /metrics_tags.*cannot contain/);
    assert.match(configError(["--metrics_tags=env:a b"]), /metrics_tags.*cannot contain/);
    assert.match(configError([], '[metrics.tags]\nenv = "a=b"\n'), /metrics\.tags|metrics_tags/);
    assert.match(configError(["--statsd_host=localhost"]), /statsd_host.*host:port/);
    assert.match(configError(["--statsd_host=localhost:0"]), /statsd_host.*out of range/);
    assert.match(configError(["--statsd_tags_format=json"]), /statsd_tags_format/);
    assert.match(configError(["--metrics_rotate_interval=-1"]), /metrics_rotate_interval/);
    assert.match(configError(["--stats_refresh_interval=-1"]), /stats_refresh_interval/);
    for (const m of [configError(["--metrics_tags=env"]), configError(["--statsd_host=x"])]) {
      assert.equal(m.split("\n").length, 1, m);
    }
  });
});

describe("metrics catalog", () => {
  it("lists each name once, anycable-go's help texts for what anycable-ts registers", () => {
    const names = METRICS_CATALOG.map((m) => m.name);
    assert.equal(new Set(names).size, names.length);
    assert.ok(names.includes("rpc_timeout_total") && !names.includes("rpc_timeouts_total"));
    const table = renderMetricsTable();
    const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
    assert.equal(
      withMetricsTable(readme),
      readme,
      "README's table (bun scripts/metrics-doc.ts --write README.md)",
    );
    for (const n of names) assert.match(table, new RegExp(`\\| \`${n}\` \\|`));
  });
});

describe("metrics a cable registers", () => {
  const noRuntime = { name: "bun", http2MaxStreamsPerSession: 0 } as unknown as Runtime;
  const registered = async (argv: string[], env: Record<string, string> = {}) => {
    const { logger } = capture();
    const cable = await composeCable({
      config: config(argv, env),
      runtime: noRuntime,
      logger,
      embedded: true,
    });
    return [
      ...[...cable.metrics.eachCounter()].map((c) => ({
        name: c.name,
        type: "counter",
        description: c.description,
      })),
      ...[...cable.metrics.eachGauge()].map((g) => ({
        name: g.name,
        type: "gauge",
        description: g.description,
      })),
    ];
  };

  it("are catalogued with their type and anycable-go's help text, and none the catalog says is not served", async () => {
    const configs: Array<[string[], Record<string, string>?]> = [
      [["--norpc"]],
      [["--rpc_host=localhost:50051"], { ANYCABLE_MEMORY_METRICS: "1" }],
      [["--rpc_host=http://localhost:3000/_anycable", "--rpc_concurrency=0"]],
      [["--norpc", "--broker=redis", "--pubsub=redis"]],
      [["--norpc", "--broker=nats", "--pubsub=nats"]],
      [["--norpc", "--sse"]],
      [["--norpc", "--ds", "--broker=memory", "--poll"]],
    ];
    const seen = new Set<string>();
    for (const [argv, env] of configs) {
      for (const m of await registered(argv, env)) {
        seen.add(m.name);
        const info = METRICS_CATALOG.find((i) => i.name === m.name);
        assert.ok(info, `${m.name} (${argv.join(" ")}) is in src/metrics/catalog.ts`);
        assert.equal(info.type, m.type, m.name);
        assert.equal(info.description, m.description, m.name);
        assert.equal(info.served, true, `${m.name} is registered, so it is served`);
      }
    }
    for (const name of [
      "clients_num",
      "rpc_timeout_total",
      "grpc_active_conn_num",
      "mem_sys_bytes",
      "heap_idle_bytes",
    ]) {
      assert.ok(seen.has(name), name);
    }
    // what the catalog calls served is registered by one of these configurations
    for (const m of METRICS_CATALOG.filter((i) => i.served === true)) assert.ok(seen.has(m.name), m.name);
  });
});
