// anycable-go's disconnect queue as a Controller wrapper: Disconnect calls of closed sessions are
// made one at a time at no more than --disconnect_rate per second, so a mass reconnect does not
// hammer the application with cleanup calls; on shutdown whatever is left is flushed within
// --shutdown_timeout. Everything else passes straight through.

import { BurstLog } from "../log/burst_log.ts";
import type { Logger } from "../log/logger.ts";
import type { Metrics } from "../metrics/registry.ts";
import type { ConnectionContext, Controller } from "../node/controller.ts";
import { ForwardingController } from "../node/forwarding_controller.ts";

export interface DisconnectQueueOptions {
  /** Calls per second (anycable-go: a ticker of 1000/rate ms, integer division). */
  rate: number;
  /** Queue length beyond which a warning is logged. */
  backlog: number;
  shutdownTimeoutMs: number;
  /** How many remaining calls run at once while flushing on shutdown. */
  flushConcurrency: number;
  metrics: Metrics;
  logger: Logger;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

interface Job {
  ctx: ConnectionContext;
  subscriptions: string[];
}

const realSleep = (ms: number) =>
  new Promise<void>((resolve) => {
    // never keeps the process alive on its own: shutdown cuts the pacing short anyway
    const timer = setTimeout(resolve, ms) as { unref?: () => void };
    timer.unref?.();
  });

export class DisconnectQueue extends ForwardingController {
  private readonly jobs: Job[] = [];
  private head = 0;
  private readonly intervalMs: number;
  private nextAt = 0;
  private worker: Promise<void> | undefined;
  private stopped = false;
  /** Resolves when shutdown begins, cutting the worker's pacing sleep short. */
  private readonly stopping: Promise<void>;
  private signalStop: () => void = () => {};
  private overflowWarned = false;
  private readonly log: Logger;
  private readonly failures: BurstLog;
  private readonly now: () => number;
  private readonly sleep: (ms: number) => Promise<void>;

  constructor(
    inner: Controller,
    private readonly opts: DisconnectQueueOptions,
  ) {
    super(inner);
    this.intervalMs = opts.rate > 0 ? Math.floor(1000 / opts.rate) : 0;
    this.log = opts.logger.with({ context: "disconnector" });
    this.failures = new BurstLog(this.log);
    this.now = opts.now ?? Date.now;
    this.sleep = opts.sleep ?? realSleep;
    this.stopping = new Promise<void>((resolve) => {
      this.signalStop = resolve;
    });
    const gauge = opts.metrics.gauge("disconnect_queue_size", "The size of delayed disconnect");
    opts.metrics.onCollect(() => gauge.set(this.size));
    this.log.debug("calls rate", { rate: `${this.intervalMs}ms` });
  }

  get size(): number {
    return this.jobs.length - this.head;
  }

  /** Queues the call; resolves at once (the session is gone, nobody waits for the outcome). */
  override async disconnect(ctx: ConnectionContext, subscriptions: string[]): Promise<void> {
    if (this.stopped) {
      // after shutdown began anycable-go calls Disconnect directly
      await this.call({ ctx, subscriptions });
      return;
    }
    this.jobs.push({ ctx, subscriptions });
    if (this.size > this.opts.backlog && !this.overflowWarned) {
      // anycable-go blocks the closing session here; nothing is dropped in either
      this.overflowWarned = true;
      this.log.warn("disconnect queue is full, calls are delayed", { backlog: this.opts.backlog });
    }
    this.worker ??= this.drain();
  }

  private async drain(): Promise<void> {
    while (!this.stopped && this.size > 0) {
      const wait = this.nextAt - this.now();
      if (wait > 0) {
        await Promise.race([this.sleep(wait), this.stopping]);
        if (this.stopped) break;
      }
      const job = this.take();
      if (!job) break;
      this.nextAt = Math.max(this.now(), this.nextAt) + this.intervalMs;
      await this.call(job);
    }
    this.worker = undefined;
  }

  private take(): Job | undefined {
    if (this.size === 0) return undefined;
    const job = this.jobs[this.head]!;
    this.head++;
    if (this.head > 1024 && this.head * 2 > this.jobs.length) {
      this.jobs.splice(0, this.head);
      this.head = 0;
    }
    if (this.size <= this.opts.backlog) this.overflowWarned = false;
    return job;
  }

  private async call(job: Job): Promise<void> {
    try {
      await this.inner.disconnect(job.ctx, job.subscriptions);
      this.failures.success();
    } catch (err) {
      this.failures.failure("controller disconnect failed", { sid: job.ctx.sid, error: err });
    }
  }

  /** Stops pacing, makes the remaining calls within the shutdown timeout, then stops the inner controller. */
  override async shutdown(): Promise<void> {
    if (!this.stopped) {
      this.stopped = true;
      this.signalStop();
      await this.flush();
    }
    await this.inner.shutdown?.();
  }

  private async flush(): Promise<void> {
    // the paced worker may be in the middle of one call: let it finish first
    const current = this.worker;
    const left = this.size;
    if (left === 0) {
      await current;
      return;
    }
    const deadline = this.now() + this.opts.shutdownTimeoutMs;
    this.log.info("invoking remaining disconnects", {
      interval: this.opts.shutdownTimeoutMs / 1000,
      num: left,
    });
    let done = 0;
    const workers = Array.from(
      { length: Math.max(1, Math.min(this.opts.flushConcurrency, left)) },
      async () => {
        for (;;) {
          if (this.now() >= deadline) return;
          const job = this.take();
          if (!job) return;
          await this.call(job);
          done++;
        }
      },
    );
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.all([...workers, current]),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, Math.max(0, deadline - this.now()));
      }),
    ]);
    clearTimeout(timer);
    this.log.info("disconnected sessions", { num: done });
    if (this.size > 0) this.log.warn(`had no time to invoke Disconnect calls: ~${this.size}`);
  }
}
