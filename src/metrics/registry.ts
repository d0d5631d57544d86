// Counters and gauges named exactly as anycable-go's, so dashboards keep working after the swap.
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

  eachCounter(): IterableIterator<Counter> {
    return this.counters.values();
  }

  eachGauge(): IterableIterator<Gauge> {
    return this.gauges.values();
  }
}

const NAMESPACE = "anycable_go";

/** Prometheus text exposition in anycable-go's layout (same names, `anycable_go_` prefix). */
export function prometheusText(metrics: Metrics, tags: Record<string, string> = {}): string {
  metrics.collect();
  const entries = Object.entries(tags);
  const labels = entries.length ? `{${entries.map(([k, v]) => `${k}="${v}"`).join(", ")}}` : "";
  let out = "";
  for (const c of metrics.eachCounter()) {
    const name = `${NAMESPACE}_${c.name}`;
    out += `\n# HELP ${name} ${c.description}\n# TYPE ${name} counter\n${name}${labels} ${c.value}\n`;
  }
  for (const g of metrics.eachGauge()) {
    const name = `${NAMESPACE}_${g.name}`;
    out += `\n# HELP ${name} ${g.description}\n# TYPE ${name} gauge\n${name}${labels} ${g.value}\n`;
  }
  return out;
}
