// The cost curve of bench/run.ts as one SVG: memory per connection, connect rate and server CPU
// per delivered message against the number of connections, one line per target, three charts
// stacked (issue 19: per-connection cost must be flat or falling as N grows).
import { renderSvg, type Series } from "./plot.ts";

export interface CurvePoint {
  n: number;
  rssPerConnKiB: number;
  connectRate: number;
  serverUsPerMsg: number;
}

const WIDTH = 720;
const HEIGHT = 260;

export function costCurveSvg(series: Array<{ target: string; points: CurvePoint[] }>, date: string): string {
  const sizes = [...new Set(series.flatMap((s) => s.points.map((p) => p.n)))].sort((a, b) => a - b);
  const chart = (title: string, pick: (p: CurvePoint) => number, digits: number) => {
    const lines: Series[] = series.map((s) => ({
      name: s.target,
      values: s.points.filter((p) => Number.isFinite(pick(p))).map((p) => [p.n, pick(p)] as [number, number]),
    }));
    return renderSvg(title, lines, WIDTH, HEIGHT, {
      xTicks: sizes,
      xLabel: (v) => (v >= 1000 ? `${v / 1000}k` : String(v)),
      yLabel: (v) => v.toFixed(digits),
    });
  };
  const charts = [
    chart(`Memory per idle subscribed connection (KiB), ${date.slice(0, 10)}`, (p) => p.rssPerConnKiB, 1),
    chart("Connect rate (connections/s)", (p) => p.connectRate, 0),
    chart("Server CPU per delivered message (µs), 1 stream", (p) => p.serverUsPerMsg, 1),
  ];
  const inner = charts.map((c, i) => c.replace("<svg ", `<svg y="${i * HEIGHT}" `)).join("\n");
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT * charts.length}">\n${inner}</svg>\n`;
}
