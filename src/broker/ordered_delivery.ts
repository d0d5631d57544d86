// What the Redis and NATS brokers share on the way out: publications wait for the offset their
// engine gives them and reach pub/sub in the order they came in; one the engine cannot number in
// time goes without an offset (live delivery never stalls behind the engine). Plus the bounded
// wait every socket-path call of those brokers goes through.
import type { StreamMessage, StreamPublication } from "../broadcast/publication.ts";

export interface Slot {
  readonly publication: StreamPublication;
  /** performance.now() when handed in: a broker's own clock may be moved by tests. */
  readonly at: number;
  message?: StreamMessage;
}

export class OrderedDelivery {
  private readonly pending: Slot[] = [];
  private head = 0;

  constructor(
    private readonly deliver: (message: StreamMessage) => void,
    private readonly timeoutMs: number,
  ) {}

  /** Queues a publication; `settle` gives it its final form (with or without an offset). */
  add(publication: StreamPublication): Slot {
    const slot: Slot = { publication, at: performance.now() };
    this.pending.push(slot);
    return slot;
  }

  /** The first settlement wins (a late answer after a give-up changes nothing). */
  settle(slot: Slot, message: StreamMessage): void {
    slot.message ??= message;
    this.drain();
  }

  /** Everything still waiting goes out without offsets (shutdown). */
  flushAll(): void {
    for (let i = this.head; i < this.pending.length; i++) {
      const slot = this.pending[i]!;
      slot.message ??= slot.publication;
    }
    this.drain();
  }

  /** Gives up on the slots older than the timeout (run by the ticker); how many went unnumbered. */
  expireSlow(nowMonotonicMs: number): number {
    let gaveUp = 0;
    for (let i = this.head; i < this.pending.length; i++) {
      const slot = this.pending[i]!;
      if (slot.message) continue;
      if (nowMonotonicMs - slot.at < this.timeoutMs) break;
      slot.message = slot.publication;
      gaveUp++;
    }
    if (gaveUp > 0) this.drain();
    return gaveUp;
  }

  private drain(): void {
    const { pending } = this;
    while (this.head < pending.length) {
      const message = pending[this.head]!.message;
      if (!message) break;
      this.head++;
      this.deliver(message);
    }
    if (this.head === pending.length) {
      pending.length = 0;
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= pending.length) {
      pending.splice(0, this.head);
      this.head = 0;
    }
  }
}

/** A broker call that took longer than its bound. */
export class BrokerTimeout extends Error {}

/** `p`, or a BrokerTimeout after `ms`: one timer per call, not per connection. */
export function withTimeout<T>(p: Promise<T>, ms: number, engine: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new BrokerTimeout(`${engine} did not answer in ${ms}ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
