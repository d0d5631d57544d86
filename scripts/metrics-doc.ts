// Prints README's metrics table (rendered from src/metrics/catalog.ts), or with --write <file>
// replaces the text between <!-- metrics:begin --> and <!-- metrics:end --> in that file.
//   bun scripts/metrics-doc.ts --write README.md
import { readFileSync, writeFileSync } from "node:fs";
import { renderMetricsTable } from "../src/metrics/catalog.ts";

export const METRICS_BEGIN = "<!-- metrics:begin -->";
export const METRICS_END = "<!-- metrics:end -->";

export function withMetricsTable(text: string): string | null {
  const start = text.indexOf(METRICS_BEGIN);
  const end = text.indexOf(METRICS_END, start + METRICS_BEGIN.length);
  if (start < 0 || end < 0) return null;
  return `${text.slice(0, start + METRICS_BEGIN.length)}\n${renderMetricsTable()}\n${text.slice(end)}`;
}

if (import.meta.main) {
  const at = process.argv.indexOf("--write");
  if (at < 0) {
    process.stdout.write(`${renderMetricsTable()}\n`);
  } else {
    const file = process.argv[at + 1] ?? "README.md";
    const updated = withMetricsTable(readFileSync(file, "utf8"));
    if (updated === null) {
      console.error(`${file} has no ${METRICS_BEGIN} ... ${METRICS_END} markers`);
      process.exit(1);
    }
    writeFileSync(file, updated);
  }
}
