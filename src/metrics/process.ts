// The process gauges anycable-go's node samples every --stats_refresh_interval (runtime.MemStats),
// from what the JavaScript runtimes report (process.memoryUsage(), the same on Bun and Deno):
//   mem_sys_bytes     resident set size (memory obtained from the OS)
// and with ANYCABLE_MEMORY_METRICS=1 (anycable-go's switch):
//   heap_sys_bytes    the JavaScript heap's size
//   heap_alloc_total  heap bytes in use (Go's HeapAlloc counts bytes too, despite its help text)
//   heap_idle_bytes   heap size minus heap in use
// goroutines_num, stack_sys_bytes and heap_released_bytes have no JavaScript counterpart and are
// not registered (see catalog.ts).
import { memoryUsage } from "node:process";
import type { Metrics } from "./registry.ts";

export interface ProcessMetricsOptions {
  /**
   * --stats_refresh_interval in seconds. 0: anycable-go registers the gauges and never sets them;
   * anycable-ts does not register them at all (a metric that is never updated is not reported).
   */
  readonly refreshSec: number;
  /** ANYCABLE_MEMORY_METRICS=1 */
  readonly detailed: boolean;
}

/** A task for the node's ticker. */
export interface SamplingTask {
  readonly everyMs: number;
  run(nowMs: number): void;
}

/** Registers the gauges; returns the ticker task that samples them (undefined when never). */
export function processMetrics(metrics: Metrics, opts: ProcessMetricsOptions): SamplingTask | undefined {
  if (opts.refreshSec <= 0) return undefined;
  const memSys = metrics.gauge("mem_sys_bytes", "The total bytes of memory obtained from the OS");
  const heap = opts.detailed
    ? {
        sys: metrics.gauge("heap_sys_bytes", "The total bytes of heap memory obtained from the OS"),
        alloc: metrics.gauge("heap_alloc_total", "The number of allocated heap objects"),
        idle: metrics.gauge("heap_idle_bytes", "The total bytes of idle heap memory"),
      }
    : undefined;
  const sample = () => {
    if (!heap) {
      memSys.set(memoryUsage.rss());
      return;
    }
    const m = memoryUsage();
    memSys.set(m.rss);
    heap.sys.set(m.heapTotal);
    heap.alloc.set(m.heapUsed);
    heap.idle.set(Math.max(0, m.heapTotal - m.heapUsed));
  };
  return { everyMs: opts.refreshSec * 1000, run: sample };
}
