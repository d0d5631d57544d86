// Reads a process's memory and CPU time from /proc (Linux), as the benchmark conventions ask.
import { readFileSync } from "node:fs";

/** Resident memory in bytes: all of it, and the anonymous part (heaps, not mapped files). */
export function memoryOf(pid: number): { rss: number; anon: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (field: string) => {
    const m = status.match(new RegExp(`^${field}:\\s+(\\d+) kB$`, "m"));
    return m ? Number(m[1]) * 1024 : 0;
  };
  return { rss: kb("VmRSS"), anon: kb("RssAnon") };
}

const TICKS_PER_SECOND = 100;

/** User + system CPU time of the process in milliseconds. */
export function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // fields after the command name (which may contain spaces) start after the last ')'
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return ((utime + stime) * 1000) / TICKS_PER_SECOND;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Memory after a full collection (SIGUSR2 to gc_host), the lowest of a few readings; `signal`
 * false for a process that cannot be asked (anycable-go: its own collector, read as it stands).
 */
export async function memoryAfterGc(pid: number, signal = true): Promise<{ rss: number; anon: number }> {
  if (signal) process.kill(pid, "SIGUSR2");
  await sleep(1000);
  const best = { rss: Number.POSITIVE_INFINITY, anon: Number.POSITIVE_INFINITY };
  for (let i = 0; i < 4; i++) {
    const m = memoryOf(pid);
    best.rss = Math.min(best.rss, m.rss);
    best.anon = Math.min(best.anon, m.anon);
    await sleep(250);
  }
  return best;
}
