// What the status page plots: one sample a second, taken by a task on the cable's ticker from the
// metrics registry, kept in a fixed-size ring (bounded memory however long the server runs).
import { memoryUsage } from "node:process";
import type { Metrics } from "../metrics/registry.ts";

/** One second of the cable, as the page plots it. Rates are per second over the elapsed time. */
export interface StatusSample {
  /** Unix time in ms. */
  t: number;
  /** clients_num */
  clients: number;
  /** clients_uniq_num */
  uniqClients: number;
  /** broadcast_streams_num: streams with at least one subscriber on this node */
  streams: number;
  /** broadcast_msg_total per second: publications received for delivery */
  broadcastsPerSec: number;
  /** server_msg_total per second: messages sent to clients */
  deliveredPerSec: number;
  /** client_msg_total per second: messages received from clients */
  clientMsgsPerSec: number;
  /** rpc_call_total per second (0 without RPC) */
  rpcCallsPerSec: number;
  /** rpc_pending_num */
  rpcPending: number;
  /** rpc_error_total + rpc_timeout_total per second */
  rpcErrorsPerSec: number;
  /** disconnected_slow_clients_total since start */
  slowDisconnects: number;
  /** mem_sys_bytes (the process's resident set size) */
  memBytes: number;
}

/** A fixed-capacity ring: pushing beyond the capacity drops the oldest entry. */
export class Ring<T> {
  private readonly items: (T | undefined)[];
  private start = 0;
  private count = 0;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1)
      throw new RangeError("capacity must be a positive integer");
    this.items = new Array<T | undefined>(capacity);
  }

  get size(): number {
    return this.count;
  }

  push(item: T): void {
    if (this.count < this.capacity) {
      this.items[(this.start + this.count) % this.capacity] = item;
      this.count++;
    } else {
      this.items[this.start] = item;
      this.start = (this.start + 1) % this.capacity;
    }
  }

  /** Oldest first. */
  toArray(): T[] {
    const out: T[] = [];
    for (let i = 0; i < this.count; i++) out.push(this.items[(this.start + i) % this.capacity] as T);
    return out;
  }

  last(): T | undefined {
    return this.count === 0 ? undefined : this.items[(this.start + this.count - 1) % this.capacity];
  }
}

/** Five minutes at one sample a second. */
export const DEFAULT_CAPACITY = 300;
export const SAMPLE_EVERY_MS = 1000;

const RATE_COUNTERS = {
  broadcastsPerSec: ["broadcast_msg_total"],
  deliveredPerSec: ["server_msg_total"],
  clientMsgsPerSec: ["client_msg_total"],
  rpcCallsPerSec: ["rpc_call_total"],
  rpcErrorsPerSec: ["rpc_error_total", "rpc_timeout_total"],
} as const;
type RateKey = keyof typeof RATE_COUNTERS;

export interface SamplerOptions {
  capacity?: number;
  /** The resident set size when mem_sys_bytes is not sampled (--stats_refresh_interval=0). */
  rss?: () => number;
}

export class StatusSampler {
  readonly ring: Ring<StatusSample>;
  private readonly rss: () => number;
  private prev: { t: number; totals: Record<RateKey, number> } | undefined;

  constructor(
    private readonly metrics: Metrics,
    opts: SamplerOptions = {},
  ) {
    this.ring = new Ring(opts.capacity ?? DEFAULT_CAPACITY);
    this.rss = opts.rss ?? (() => memoryUsage.rss());
  }

  /** The ticker task: one sample every second. */
  task(): { everyMs: number; run(nowMs: number): void } {
    return { everyMs: SAMPLE_EVERY_MS, run: (now) => this.sample(now) };
  }

  sample(now: number): StatusSample {
    const m = this.metrics;
    m.collect();
    const totals = {} as Record<RateKey, number>;
    for (const key of Object.keys(RATE_COUNTERS) as RateKey[]) {
      totals[key] = RATE_COUNTERS[key].reduce((sum, name) => sum + m.counterValue(name), 0);
    }
    const prev = this.prev;
    const elapsedSec = prev ? Math.max(0.001, (now - prev.t) / 1000) : 0;
    // The first sample has no interval behind it: its rates are 0.
    const rate = (key: RateKey) => (prev ? round2((totals[key] - prev.totals[key]) / elapsedSec) : 0);
    this.prev = { t: now, totals };
    const sample: StatusSample = {
      t: now,
      clients: m.gaugeValue("clients_num"),
      uniqClients: m.gaugeValue("clients_uniq_num"),
      streams: m.gaugeValue("broadcast_streams_num"),
      broadcastsPerSec: rate("broadcastsPerSec"),
      deliveredPerSec: rate("deliveredPerSec"),
      clientMsgsPerSec: rate("clientMsgsPerSec"),
      rpcCallsPerSec: rate("rpcCallsPerSec"),
      rpcPending: m.gaugeValue("rpc_pending_num"),
      rpcErrorsPerSec: rate("rpcErrorsPerSec"),
      slowDisconnects: m.counterValue("disconnected_slow_clients_total"),
      memBytes: m.has("mem_sys_bytes") ? m.gaugeValue("mem_sys_bytes") || this.rss() : this.rss(),
    };
    this.ring.push(sample);
    return sample;
  }
}

function round2(n: number): number {
  return Math.round(n * 100) / 100;
}
