// The behaviour every MetricsSink (prometheus, later statsd / log) must show, written against the
// interface only: the harness parses the sink's own output back into readings.
import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import { Metrics } from "../../../src/metrics/registry.ts";
import type { MetricsSink, MetricsSnapshot } from "../../../src/metrics/sink.ts";

/** One metric as the sink's output states it. */
export interface SinkReading {
  name: string;
  type: "counter" | "gauge";
  value: number;
  /** Absent when the format carries no descriptions (StatsD). */
  description?: string;
  tags: Record<string, string>;
}

export interface MetricsSinkHarness {
  /** The sink under test; the suite starts and stops it. */
  readonly sink: MetricsSink;
  /** What the sink's output says after the last write, one reading per metric, in output order. */
  read(): Promise<SinkReading[]>;
  close(): Promise<void>;
}

export type MakeMetricsSinkHarness = () => Promise<MetricsSinkHarness>;

export interface MetricsSinkCapabilities {
  /** Whether the output carries each metric's description (Prometheus HELP lines). */
  descriptions: boolean;
}

function snapshot(
  counters: Array<[string, string, number]>,
  gauges: Array<[string, string, number]>,
  tags: Record<string, string> = {},
): MetricsSnapshot {
  const values = (list: Array<[string, string, number]>) =>
    list.map(([name, description, value]) => ({ name, description, value }));
  return { counters: values(counters), gauges: values(gauges), tags };
}

const COUNTERS: Array<[string, string, number]> = [
  ["broadcast_msg_total", "The total number of messages received through PubSub (for broadcast)", 42],
  ["failed_broadcast_msg_total", "The total number of unrecognized messages received through PubSub", 0],
  ["client_msg_total", "The total number of received messages from clients", 1234567],
];
const GAUGES: Array<[string, string, number]> = [
  ["clients_num", "The number of active clients", 17],
  ["broadcast_streams_num", "The number of active broadcasting streams", 3],
];

export function metricsSinkContract(
  name: string,
  makeHarness: MakeMetricsSinkHarness,
  caps: MetricsSinkCapabilities,
): void {
  describe(`MetricsSink contract: ${name}`, () => {
    let h: MetricsSinkHarness | undefined;
    const fatals: Error[] = [];

    async function started(): Promise<MetricsSinkHarness> {
      fatals.length = 0;
      h = await makeHarness();
      await h.sink.start((e) => fatals.push(e));
      return h;
    }

    afterEach(async () => {
      if (!h) return;
      await h.sink.shutdown(AbortSignal.timeout(2000));
      await h.close();
      h = undefined;
      assert.deepEqual(
        fatals.map((e) => e.message),
        [],
        "no fatal error",
      );
    });

    const expected = (snap: MetricsSnapshot): SinkReading[] =>
      [
        ...snap.counters.map((c) => ({ type: "counter" as const, ...c })),
        ...snap.gauges.map((g) => ({ type: "gauge" as const, ...g })),
      ].map(({ name, type, value, description }) => ({
        name,
        type,
        value,
        ...(caps.descriptions ? { description } : {}),
        tags: { ...snap.tags },
      }));

    /** Readings compared by name, so a sink may order its output its own way. */
    const byName = (r: SinkReading[]) => [...r].sort((a, b) => a.name.localeCompare(b.name));

    it("outputs every counter and gauge with its type, value and description", async () => {
      const { sink, read } = await started();
      const snap = snapshot(COUNTERS, GAUGES);
      sink.write(snap);
      assert.deepEqual(byName(await read()), byName(expected(snap)));
    });

    it("applies the snapshot's tags to every metric", async () => {
      const { sink, read } = await started();
      const snap = snapshot(COUNTERS, GAUGES, { host: "node-1", env: "prod" });
      sink.write(snap);
      const readings = await read();
      assert.equal(readings.length, COUNTERS.length + GAUGES.length);
      for (const r of readings) assert.deepEqual(r.tags, { host: "node-1", env: "prod" }, r.name);
    });

    it("reflects the latest snapshot when written twice", async () => {
      const { sink, read } = await started();
      sink.write(snapshot(COUNTERS, GAUGES, { host: "a" }));
      const second = snapshot(
        COUNTERS.map(([n, d, v]) => [n, d, v + 10]),
        [...GAUGES.map(([n, d]): [string, string, number] => [n, d, 1]), ["goroutines_num", "Goroutines", 9]],
        { host: "b" },
      );
      sink.write(second);
      assert.deepEqual(byName(await read()), byName(expected(second)));
    });

    it("outputs what Metrics.snapshot() gives, gauges refreshed on collect", async () => {
      const { sink, read } = await started();
      const metrics = new Metrics();
      metrics.counter("server_msg_total", "The total number of messages sent to clients").inc(5);
      const streams = metrics.gauge("broadcast_streams_num", "The number of active broadcasting streams");
      let live = 0;
      metrics.onCollect(() => streams.set(live));
      live = 7;
      sink.write(metrics.snapshot({ nodeid: "n1" }));
      const readings = await read();
      const get = (n: string) => readings.find((r) => r.name === n);
      assert.equal(get("server_msg_total")?.value, 5);
      assert.equal(get("server_msg_total")?.type, "counter");
      assert.equal(get("broadcast_streams_num")?.value, 7, "the collector ran before the snapshot");
      assert.equal(get("broadcast_streams_num")?.type, "gauge");
      assert.deepEqual(get("broadcast_streams_num")?.tags, { nodeid: "n1" });
    });

    it("starts and shuts down (twice) without error", async () => {
      const { sink } = await started();
      await sink.shutdown(AbortSignal.timeout(2000));
      await sink.shutdown(AbortSignal.timeout(2000));
      assert.ok(sink.name.length > 0, "a service name for the logs");
    });
  });
}
