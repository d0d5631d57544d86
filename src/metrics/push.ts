// The push side of metrics, built from the options: the log and StatsD sinks, the rotation that
// writes them one interval snapshot every --metrics_rotate_interval, and the process gauges
// sampled every --stats_refresh_interval. Both run as tasks of the node's one ticker.
import type { Logger } from "../log/logger.ts";
import { MetricsLogSink } from "./log_sink.ts";
import type { Options } from "./options.ts";
import { processMetrics } from "./process.ts";
import type { Metrics } from "./registry.ts";
import type { MetricsSink } from "./sink.ts";
import { StatsdSink } from "./statsd.ts";

export interface MetricsTask {
  readonly everyMs: number;
  run(nowMs: number): void;
}

export interface PushMetrics {
  /** Services to start before the ticker runs (and stop after it). */
  readonly sinks: readonly MetricsSink[];
  readonly tasks: readonly MetricsTask[];
}

export function pushMetrics(o: Options, metrics: Metrics, logger: Logger): PushMetrics {
  const sinks: MetricsSink[] = [];
  const tasks: MetricsTask[] = [];
  if (o.log) {
    const filter = { filter: o.logFilter, intervalSec: o.rotateIntervalSec };
    sinks.push(new MetricsLogSink(filter, logger, (n) => metrics.has(n)));
  }
  if (o.statsd) {
    sinks.push(new StatsdSink({ ...o.statsd, intervalSec: o.rotateIntervalSec, tags: o.tags }, logger));
  }
  if (sinks.length > 0) tasks.push(rotation(metrics, sinks, o.rotateIntervalSec * 1000, logger));
  const sampling = processMetrics(metrics, { refreshSec: o.statsRefreshSec, detailed: o.memoryMetrics });
  if (sampling) tasks.push(sampling);
  return { sinks, tasks };
}

/**
 * Every interval, one interval snapshot (counters as their growth since the last one) to every
 * push sink. The ticker runs a task on its first tick: that run only starts the clock, so the
 * first write comes one interval after start, as in anycable-go.
 */
export function rotation(
  metrics: Metrics,
  sinks: readonly MetricsSink[],
  everyMs: number,
  logger: Logger,
): MetricsTask {
  const log = logger.with({ context: "metrics" });
  let started = false;
  return {
    everyMs,
    run() {
      if (!started) {
        started = true;
        return;
      }
      const snapshot = metrics.intervalSnapshot();
      for (const sink of sinks) {
        try {
          sink.write(snapshot);
        } catch (err) {
          log.error("metrics writer failed to write", { sink: sink.name, error: err });
        }
      }
    },
  };
}
