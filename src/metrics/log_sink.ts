// The log sink (--metrics_log): every rotate interval one INFO line with an empty message and
// every metric as key=value, sorted by name, as anycable-go's BasePrinter writes it:
//   2026-01-05 10:00:15.002 INF  broadcast_msg_total=3 clients_num=2 ... nodeid=... context=metrics
// Counters show their growth over the interval, gauges their value. --metrics_log_filter keeps
// only the named metrics; --metrics_tags, which anycable-go leaves out of the line, are added as
// one `tags=k1:v1,k2:v2` attribute.
import type { Service } from "../app/service.ts";
import type { LogAttrs, Logger } from "../log/logger.ts";
import { metricInfo } from "./catalog.ts";
import type { MetricsSink, MetricsSnapshot } from "./sink.ts";

export interface MetricsLogOptions {
  /** Metric names to print (all when empty). */
  readonly filter: readonly string[];
  /** The rotate interval, for the start-up line. */
  readonly intervalSec: number;
}

export class MetricsLogSink implements MetricsSink, Service {
  readonly name = "metrics (log)";
  private readonly log: Logger;
  private readonly filter: ReadonlySet<string> | undefined;
  private filterChecked = false;

  /**
   * @param registered tells whether a metric exists, so a filter naming others is reported at
   *   start; without it the first snapshot is checked instead.
   */
  constructor(
    private readonly opts: MetricsLogOptions,
    logger: Logger,
    private readonly registered?: (name: string) => boolean,
  ) {
    this.log = logger.with({ context: "metrics" });
    this.filter = opts.filter.length > 0 ? new Set(opts.filter) : undefined;
  }

  async start(_fatal?: (err: Error) => void): Promise<void> {
    if (this.filter) {
      this.log.info("log metrics", { interval: this.opts.intervalSec, fields: [...this.filter].join(",") });
    } else {
      this.log.info("log metrics", { interval: this.opts.intervalSec });
    }
    if (this.registered) this.checkFilter(this.registered);
  }

  async shutdown(): Promise<void> {}

  write(snapshot: MetricsSnapshot): void {
    if (!this.filterChecked) {
      const names = new Set([...snapshot.counters, ...snapshot.gauges].map((m) => m.name));
      this.checkFilter((n) => names.has(n));
    }
    const values = new Map<string, number>();
    for (const m of snapshot.counters) values.set(m.name, m.value);
    for (const m of snapshot.gauges) values.set(m.name, m.value);
    const attrs: LogAttrs = {};
    for (const name of [...values.keys()].sort()) {
      if (this.filter && !this.filter.has(name)) continue;
      attrs[name] = values.get(name);
    }
    const tags = Object.entries(snapshot.tags);
    if (tags.length > 0) attrs.tags = tags.map(([k, v]) => `${k}:${v}`).join(",");
    this.log.info("", attrs);
  }

  /** Warns once about filter entries that name no metric of this server, saying why. */
  private checkFilter(registered: (name: string) => boolean): void {
    this.filterChecked = true;
    if (!this.filter) return;
    const missing = [...this.filter].filter((n) => !registered(n));
    if (missing.length === 0) return;
    const why = (n: string) => {
      const info = metricInfo(n);
      if (!info) return `${n} (unknown metric)`;
      if (info.served !== true) return `${n} (not served by anycable-ts: ${info.served})`;
      return `${n} (not registered in this configuration${info.note ? `: ${info.note}` : ""})`;
    };
    this.log.warn(
      `metrics_log_filter names metrics this server does not report: ${missing.map(why).join(", ")}`,
    );
  }
}
