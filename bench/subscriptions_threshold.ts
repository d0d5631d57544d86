// Where a session's subscriptions should switch from the flat array to a Map (FLAT_LIMIT in
// src/node/subscriptions.ts), and what each layout costs in heap per session. Not part of
// `npm run bench` (issue 10).
//   bun bench/subscriptions_threshold.ts
//   deno run -A --v8-flags=--expose-gc bench/subscriptions_threshold.ts
//   bun bench/subscriptions_threshold.ts --baseline /path/to/old/src/node/subscriptions.ts
// 1. lookup: has() of an identifier equal to, but not the same string as, a stored one (a decoded
//    frame's identifier is a fresh string), flat scan vs Map, per subscription count;
// 3. with --baseline: the same heap figure for another version of the class (e.g. the flat-only
//    one before issue 10, whose API was set(id, streams)), each built the way its node built it.
// 2. heap: bytes per session of the real Subscriptions class, of a bare flat array and of a bare
//    Map holding the same entries (each in a one-field object, as in a Session), from heap deltas
//    over 50k instances after a full collection (Bun: bun:jsc heapStats; Deno: heapUsed).
import { FLAT_LIMIT, Subscriptions } from "../src/node/subscriptions.ts";

declare const Bun: { gc(force: boolean): void } | undefined;
const gc = (): void => {
  if (typeof Bun !== "undefined") Bun.gc(true);
  else (globalThis as { gc?: () => void }).gc?.();
};
const jsc = typeof Bun !== "undefined" ? await import("bun:jsc") : undefined;
const heapUsed = (): number => {
  gc();
  gc();
  return jsc ? jsc.heapStats().heapSize : process.memoryUsage().heapUsed;
};

const id = (i: number) => JSON.stringify({ channel: "$pubsub", stream_name: `room-${1000 + i}` });
/** The same text as id(i), built anew so it is a different string object (as a decoded frame's). */
const fresh = (i: number) => JSON.parse(JSON.stringify({ v: id(i) })).v as string;

function flatHas(entries: Array<string | string[]>, identifier: string): boolean {
  for (let i = 0; i < entries.length; i += 2) if (entries[i] === identifier) return true;
  return false;
}

function lookup(size: number): { flatNs: number; mapNs: number } {
  const flat: Array<string | string[]> = [];
  const map = new Map<string, string[]>();
  for (let i = 0; i < size; i++) {
    flat.push(id(i), [`s${i}`]);
    map.set(id(i), [`s${i}`]);
  }
  // probes: every stored identifier (hits) and as many misses, as fresh strings
  const probes: string[] = [];
  for (let i = 0; i < size; i++) probes.push(fresh(i), fresh(size + i));
  const rounds = Math.max(2000, Math.floor(400_000 / probes.length));
  let sink = 0;
  const time = (fn: (p: string) => boolean): number => {
    for (let r = 0; r < 200; r++) for (const p of probes) if (fn(p)) sink++;
    const t0 = performance.now();
    for (let r = 0; r < rounds; r++) for (const p of probes) if (fn(p)) sink++;
    return ((performance.now() - t0) * 1e6) / (rounds * probes.length);
  };
  const flatNs = time((p) => flatHas(flat, p));
  const mapNs = time((p) => map.has(p));
  if (sink < 0) console.log(sink);
  return { flatNs, mapNs };
}

const COUNT = 50_000;
/**
 * Heap bytes per instance that `make` builds for `size` subscriptions (one stream each, a fresh
 * one-element array per subscription as the node makes it; identifier and stream strings shared).
 */
function heapPer(size: number, make: (ids: string[], stream: string) => unknown): number {
  const ids = Array.from({ length: size }, (_, i) => id(i));
  const keep: unknown[] = new Array(COUNT).fill(undefined);
  const before = heapUsed();
  for (let i = 0; i < COUNT; i++) keep[i] = make(ids, "stream");
  const after = heapUsed();
  // released explicitly: JSC scans the stack conservatively and may keep this array alive
  keep.fill(undefined);
  return Math.round((after - before) / COUNT);
}

const real = (ids: string[], stream: string) => {
  const s = new Subscriptions();
  for (const i of ids) s.addStream(i, stream);
  return s;
};
const plainMap = (ids: string[], stream: string) => {
  const m = new Map<string, string[]>();
  for (const i of ids) m.set(i, [stream]);
  return { entries: m };
};
const flatArray = (ids: string[], stream: string) => {
  const a: Array<string | string[]> = [];
  for (const i of ids) a.push(i, [stream]);
  return { entries: a };
};

const runtime = typeof Bun !== "undefined" ? "bun" : "deno";
console.log(`# ${runtime}; FLAT_LIMIT = ${FLAT_LIMIT}`);
console.log(
  "| subscriptions | flat has() ns | Map has() ns | Subscriptions B/session | flat array B | Map B |",
);
console.log("| ---: | ---: | ---: | ---: | ---: | ---: |");
for (const size of [1, 2, 4, 8, 12, 16, 24, 32, 64]) {
  const { flatNs, mapNs } = lookup(size);
  const heap = size <= 32 ? [heapPer(size, real), heapPer(size, flatArray), heapPer(size, plainMap)] : [];
  console.log(
    `| ${size} | ${flatNs.toFixed(1)} | ${mapNs.toFixed(1)} | ${heap.map((b) => String(b)).join(" | ") || " |  | "} |`,
  );
}

const at = process.argv.indexOf("--baseline");
if (at >= 0) {
  type Old = { set(id: string, s: string[]): void; get(id: string): string[] | undefined };
  const Baseline = (await import(process.argv[at + 1]!)).Subscriptions as new () => Old;
  // the node's own paths: before, set(id, []) then push onto get(id); now add(id) then addStream
  const before = (ids: string[], stream: string) => {
    const s = new Baseline();
    for (const i of ids) {
      s.set(i, []);
      s.get(i)!.push(stream);
    }
    return s;
  };
  const now = (ids: string[], stream: string) => {
    const s = new Subscriptions();
    for (const i of ids) {
      s.add(i);
      s.addStream(i, stream);
    }
    return s;
  };
  console.log("");
  console.log("| subscriptions | baseline B/session | this B/session |");
  console.log("| ---: | ---: | ---: |");
  for (const size of [0, 1, 2, 4, 8]) {
    console.log(`| ${size} | ${heapPer(size, before)} | ${heapPer(size, now)} |`);
  }
}
