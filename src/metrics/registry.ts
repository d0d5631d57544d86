// Counters and gauges named exactly as anycable-go's, so dashboards keep working after the swap.
import type { MetricsSnapshot } from "./sink.ts";

export class Counter {
  value = 0;
  constructor(
    readonly name: string,
    readonly description: string,
  ) {}
  inc(by = 1): void {
    this.value += by;
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

  /** Current values after refreshing the live gauges; what every sink is written. */
  snapshot(tags: Readonly<Record<string, string>> = {}): MetricsSnapshot {
    this.collect();
    const read = (m: Counter | Gauge) => ({ name: m.name, description: m.description, value: m.value });
    return {
      counters: [...this.counters.values()].map(read),
      gauges: [...this.gauges.values()].map(read),
      tags,
    };
  }

  eachCounter(): IterableIterator<Counter> {
    return this.counters.values();
  }

  eachGauge(): IterableIterator<Gauge> {
    return this.gauges.values();
  }
}
