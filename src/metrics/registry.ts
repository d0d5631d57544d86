// Counters and gauges named exactly as anycable-go's, so dashboards keep working after the swap.
import type { MetricsSnapshot, MetricValue } from "./sink.ts";

export type Tags = Readonly<Record<string, string>>;

export class Counter {
  value = 0;
  /** The value at the last rotation (see Metrics.intervalSnapshot). */
  private rotated = 0;
  constructor(
    readonly name: string,
    readonly description: string,
  ) {}
  inc(by = 1): void {
    this.value += by;
  }
  /** How much the counter grew since the previous rotation (the first: since start), and rotate. */
  rotate(): number {
    const delta = this.value - this.rotated;
    this.rotated = this.value;
    return delta;
  }
}

export class Gauge {
  value = 0;
  constructor(
    readonly name: string,
    readonly description: string,
  ) {}
  set(value: number): void {
    this.value = value;
  }
}

export class Metrics {
  private readonly counters = new Map<string, Counter>();
  private readonly gauges = new Map<string, Gauge>();
  private readonly collectors: Array<() => void> = [];

  /** @param tags `--metrics_tags`: carried by every snapshot, so every sink applies them. */
  constructor(readonly tags: Tags = {}) {}

  counter(name: string, description: string): Counter {
    let c = this.counters.get(name);
    if (!c) {
      c = new Counter(name, description);
      this.counters.set(name, c);
    }
    return c;
  }

  gauge(name: string, description: string): Gauge {
    let g = this.gauges.get(name);
    if (!g) {
      g = new Gauge(name, description);
      this.gauges.set(name, g);
    }
    return g;
  }

  /** Gauges derived from live state are refreshed on read instead of on every change. */
  onCollect(fn: () => void): void {
    this.collectors.push(fn);
  }

  collect(): void {
    for (const fn of this.collectors) fn();
  }

  counterValue(name: string): number {
    return this.counters.get(name)?.value ?? 0;
  }

  gaugeValue(name: string): number {
    return this.gauges.get(name)?.value ?? 0;
  }

  /** Current values after refreshing the live gauges: what the Prometheus sink is written. */
  snapshot(tags: Tags = this.tags): MetricsSnapshot {
    this.collect();
    const read = (m: Counter | Gauge): MetricValue => ({
      name: m.name,
      description: m.description,
      value: m.value,
    });
    return {
      counters: [...this.counters.values()].map(read),
      gauges: [...this.gauges.values()].map(read),
      tags,
    };
  }

  /**
   * What the push sinks (StatsD, log) are written every rotate interval, as anycable-go's
   * rotate + IntervalSnapshot: each counter as its growth since the previous call (the first
   * call: since start), gauges as they are now. Each call starts a new interval, so call it
   * once per rotation and hand the same snapshot to every push sink.
   */
  intervalSnapshot(tags: Tags = this.tags): MetricsSnapshot {
    this.collect();
    return {
      counters: [...this.counters.values()].map((c) => ({
        name: c.name,
        description: c.description,
        value: c.rotate(),
      })),
      gauges: [...this.gauges.values()].map((g) => ({
        name: g.name,
        description: g.description,
        value: g.value,
      })),
      tags,
    };
  }

  /** Whether a metric of that name is registered (counter or gauge). */
  has(name: string): boolean {
    return this.counters.has(name) || this.gauges.has(name);
  }

  eachCounter(): IterableIterator<Counter> {
    return this.counters.values();
  }

  eachGauge(): IterableIterator<Gauge> {
    return this.gauges.values();
  }
}
