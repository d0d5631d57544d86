// Metrics sinks: where the registry's values go (Prometheus scrapes; StatsD and log are written every rotate interval).
import type { Service } from "../app/service.ts";

export interface MetricValue {
  readonly name: string;
  readonly description: string;
  readonly value: number;
}

/** The registry's values at one moment, with the tags every metric carries. */
export interface MetricsSnapshot {
  readonly counters: readonly MetricValue[];
  readonly gauges: readonly MetricValue[];
  readonly tags: Readonly<Record<string, string>>;
}

export interface MetricsSink extends Service {
  /**
   * Takes a snapshot. Push sinks (StatsD, log) get one every rotate interval; the pull sink
   * (Prometheus) gets one per scrape and renders it for that request.
   */
  write(snapshot: MetricsSnapshot): void;
}
