// A small SVG line chart (one line per series), so the benches' figures need no library: the
// soak's (time on x) and the cost curve's (connections on x, bench/lib/svg.ts).
export interface Series {
  name: string;
  values: Array<[number, number]>;
}

const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"];

export interface Axis {
  /** x-axis tick positions (default: 7 evenly spaced from 0). */
  xTicks?: number[];
  /** x tick text (default: seconds shown as minutes, the soak's axis). */
  xLabel?: (v: number) => string;
  /** y tick text (default: whole numbers). */
  yLabel?: (v: number) => string;
}

export function renderSvg(
  title: string,
  series: Series[],
  width = 720,
  height = 320,
  axis: Axis = {},
): string {
  const pad = { left: 50, right: 140, top: 30, bottom: 35 };
  const all = series.flatMap((s) => s.values);
  const maxX = Math.max(1, ...all.map(([x]) => x));
  const maxY = Math.max(1, ...all.map(([, y]) => y)) * 1.1;
  const x = (v: number) => pad.left + (v / maxX) * (width - pad.left - pad.right);
  const y = (v: number) => height - pad.bottom - (v / maxY) * (height - pad.top - pad.bottom);
  const lines = series.map((s, i) => {
    const d = s.values.map(([a, b], j) => `${j ? "L" : "M"}${x(a).toFixed(1)},${y(b).toFixed(1)}`).join(" ");
    const color = COLORS[i % COLORS.length];
    const ly = pad.top + 16 * i;
    return `<path d="${d}" fill="none" stroke="${color}" stroke-width="1.5"/>
<text x="${width - pad.right + 10}" y="${ly + 4}" font-size="12" fill="${color}">${s.name}</text>`;
  });
  const yLabel = axis.yLabel ?? ((v: number) => v.toFixed(0));
  const xLabel = axis.xLabel ?? ((v: number) => `${(v / 60).toFixed(0)} min`);
  const ticks = Array.from({ length: 5 }, (_, i) => (maxY * i) / 4).map(
    (v) => `<text x="${pad.left - 6}" y="${y(v) + 4}" font-size="10" text-anchor="end">${yLabel(v)}</text>`,
  );
  const xTicks = (axis.xTicks ?? Array.from({ length: 7 }, (_, i) => (maxX * i) / 6)).map(
    (v) =>
      `<text x="${x(v)}" y="${height - pad.bottom + 14}" font-size="10" text-anchor="middle">${xLabel(v)}</text>`,
  );
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="${pad.left}" y="18" font-size="13">${title}</text>
<line x1="${pad.left}" y1="${height - pad.bottom}" x2="${width - pad.right}" y2="${height - pad.bottom}" stroke="#999"/>
<line x1="${pad.left}" y1="${pad.top}" x2="${pad.left}" y2="${height - pad.bottom}" stroke="#999"/>
${ticks.join("\n")}
${xTicks.join("\n")}
${lines.join("\n")}
</svg>
`;
}
