// Per-session outbound queue of the long polling transport: server messages wait here between
// poll requests. Bounded by count and bytes; an overflow is reported (the caller closes the
// session) rather than growing memory for a client that never polls. No timers: the server's
// ticker asks `expired()` and `due()`.

export interface QueueLimits {
  maxMessages: number;
  maxBytes: number;
}

export class PollQueue {
  private items: string[] = [];
  private bytes = 0;
  private firstAt = 0;
  overflowed = false;

  constructor(
    private readonly limits: QueueLimits,
    /** Milliseconds of the last poll request (or of creation). */
    public lastSeenAt: number,
  ) {}

  /** Queues one encoded message; false (and `overflowed`) when the bounds would be exceeded. */
  push(msg: string, now: number): boolean {
    if (this.overflowed) return false;
    if (this.items.length + 1 > this.limits.maxMessages || this.bytes + msg.length > this.limits.maxBytes) {
      this.overflowed = true;
      return false;
    }
    if (this.items.length === 0) this.firstAt = now;
    this.items.push(msg);
    this.bytes += msg.length;
    return true;
  }

  get size(): number {
    return this.items.length;
  }

  /** Takes every queued message, leaving the queue empty. */
  drain(): string[] {
    const out = this.items;
    this.items = [];
    this.bytes = 0;
    return out;
  }

  /** Drops everything queued and the overflow mark (the session is being let go as too slow). */
  reset(): void {
    this.drain();
    this.overflowed = false;
  }

  /** A poll request arrived, or was answered. */
  touch(now: number): void {
    this.lastSeenAt = now;
  }

  /** No poll request for longer than the keepalive timeout. */
  expired(now: number, keepaliveMs: number): boolean {
    return now - this.lastSeenAt > keepaliveMs;
  }

  /** The oldest queued message has waited the flush interval: a waiting poll should be answered. */
  due(now: number, flushMs: number): boolean {
    return this.items.length > 0 && now - this.firstAt >= flushMs;
  }
}
