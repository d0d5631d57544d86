// `--rpc_concurrency`: at most N calls in flight; the rest wait in arrival order. anycable-go uses a
// buffered channel as a semaphore (Go wakes blocked senders FIFO); a plain queue of waiters gives
// the same fairness without timers or polling. A waiter whose session closed leaves the queue
// without ever holding a slot (anycable-go checks the session's context once it gets the slot and
// gives it straight back; dropping it earlier keeps `rpc_pending_num` honest).

interface Waiter {
  grant: (granted: boolean) => void;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  cancelled: boolean;
}

const DONE: Waiter = { grant: () => {}, signal: undefined, onAbort: undefined, cancelled: true };

export class Limiter {
  private active = 0;
  private readonly waiting: Waiter[] = [];
  private head = 0;
  /** Cancelled waiters still in `waiting` (skipped when their turn comes). */
  private cancelled = 0;

  private cap: number;

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity <= 0) throw new Error("RPC concurrency must be > 0");
    this.cap = capacity;
  }

  get capacity(): number {
    return this.cap;
  }

  /**
   * Changes the limit (adaptive concurrency): a higher one hands the new slots to waiters at once;
   * a lower one takes effect as calls finish (nothing in flight is interrupted).
   */
  setCapacity(capacity: number): void {
    if (!Number.isInteger(capacity) || capacity <= 0) throw new Error("RPC concurrency must be > 0");
    this.cap = capacity;
    while (this.active < this.cap && this.grantNext()) this.active++;
  }

  /** Calls currently holding a slot (anycable-go's BusyCount). */
  get busy(): number {
    return this.active;
  }

  /** Calls waiting for a slot (the `rpc_pending_num` gauge). */
  get pending(): number {
    return this.waiting.length - this.head - this.cancelled;
  }

  /**
   * Resolves `true` once a slot is held, `false` (holding nothing) when `signal` is or becomes
   * aborted first. Every `true` must be paired with exactly one release.
   */
  acquire(signal?: AbortSignal): Promise<boolean> {
    if (signal?.aborted) return Promise.resolve(false);
    if (this.active < this.cap && this.pending === 0) {
      this.active++;
      return Promise.resolve(true);
    }
    return new Promise((grant) => {
      const waiter: Waiter = { grant, signal, onAbort: undefined, cancelled: false };
      if (signal) {
        waiter.onAbort = () => {
          waiter.cancelled = true;
          this.cancelled++;
          grant(false);
        };
        signal.addEventListener("abort", waiter.onAbort, { once: true });
      }
      this.waiting.push(waiter);
    });
  }

  release(): void {
    // Above a lowered limit the slot is retired instead of passed on.
    if (this.active <= this.cap && this.grantNext()) return;
    if (this.active > 0) this.active--;
  }

  /** Hands a slot to the oldest live waiter (new arrivals cannot overtake it); false when none. */
  private grantNext(): boolean {
    while (this.head < this.waiting.length) {
      const next = this.waiting[this.head]!;
      this.waiting[this.head++] = DONE;
      if (next.cancelled) {
        this.cancelled--;
        continue;
      }
      if (next.onAbort) next.signal?.removeEventListener("abort", next.onAbort);
      this.compact();
      next.grant(true);
      return true;
    }
    this.compact();
    return false;
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

  private compact(): void {
    if (this.head === this.waiting.length) {
      this.waiting.length = 0;
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.waiting.length) {
      this.waiting.splice(0, this.head);
      this.head = 0;
    }
  }
}
