import type { MetricsSink, MetricsSnapshot } from "./sink.ts";

const NAMESPACE = "anycable_go";

/**
 * A tag name as a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*): anycable-go writes tag names
 * as they are, so a tag like `node-id` makes its whole exposition unparsable; here it is `node_id`.
 */
function labelName(tag: string): string {
  const name = tag.replace(/[^a-zA-Z0-9_]/g, "_");
  return /^[0-9]/.test(name) ? `_${name}` : name;
}

/** Prometheus text exposition in anycable-go's layout (same names, `anycable_go_` prefix). */
export function prometheusText(snapshot: MetricsSnapshot): string {
  const entries = Object.entries(snapshot.tags);
  const labels = entries.length ? `{${entries.map(([k, v]) => `${labelName(k)}="${v}"`).join(", ")}}` : "";
  let out = "";
  for (const c of snapshot.counters) {
    const name = `${NAMESPACE}_${c.name}`;
    out += `\n# HELP ${name} ${c.description}\n# TYPE ${name} counter\n${name}${labels} ${c.value}\n`;
  }
  for (const g of snapshot.gauges) {
    const name = `${NAMESPACE}_${g.name}`;
    out += `\n# HELP ${name} ${g.description}\n# TYPE ${name} gauge\n${name}${labels} ${g.value}\n`;
  }
  return out;
}

/** The pull sink: each scrape writes a fresh snapshot and reads `body`. */
export class PrometheusSink implements MetricsSink {
  readonly name = "metrics (prometheus)";
  private text = "";

  async start(): Promise<void> {}
  async shutdown(): Promise<void> {}

  write(snapshot: MetricsSnapshot): void {
    this.text = prometheusText(snapshot);
  }

  /** The exposition of the last snapshot written. */
  get body(): string {
    return this.text;
  }
}
