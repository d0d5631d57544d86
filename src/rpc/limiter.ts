// `--rpc_concurrency`: at most N calls in flight; the rest wait in arrival order. anycable-go uses a
// buffered channel as a semaphore (Go wakes blocked senders FIFO); a plain queue of resolvers gives
// the same fairness without timers or polling.

export class Limiter {
  private active = 0;
  private readonly waiting: Array<() => void> = [];
  private head = 0;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity <= 0) throw new Error("RPC concurrency must be > 0");
  }

  /** Calls currently holding a slot (anycable-go's BusyCount). */
  get busy(): number {
    return this.active;
  }

  /** Calls waiting for a slot (the `rpc_pending_num` gauge). */
  get pending(): number {
    return this.waiting.length - this.head;
  }

  /** Resolves once a slot is held; every acquire must be paired with exactly one release. */
  acquire(): Promise<void> {
    if (this.active < this.capacity && this.pending === 0) {
      this.active++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  release(): void {
    if (this.pending > 0) {
      // The slot passes straight to the oldest waiter, so a burst of new arrivals cannot overtake it.
      const next = this.waiting[this.head]!;
      this.waiting[this.head++] = noop;
      if (this.head > 1024 && this.head * 2 > this.waiting.length) {
        this.waiting.splice(0, this.head);
        this.head = 0;
      }
      next();
      return;
    }
    if (this.active > 0) this.active--;
  }

  /** Runs `fn` inside a slot. */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    await this.acquire();
    try {
      return await fn();
    } finally {
      this.release();
    }
  }
}

function noop(): void {}
