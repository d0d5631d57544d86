// Poll sessions of one node, keyed by the X-Anycable-Poll-ID the first response hands out.
// Bounded: a create beyond `capacity` (the --max-conn share) is refused, so idle sessions cannot
// grow memory. No timers: the server's ticker calls `sweep()`, which removes (and returns) every
// session whose client has not polled within the keepalive timeout.

import { PollQueue, type QueueLimits } from "./queue.ts";

export interface PollSession<T> {
  id: string;
  queue: PollQueue;
  /** The transport's per-session state (the node session, a held response...). */
  data: T;
}

export type CreateResult<T> =
  | { ok: true; session: PollSession<T> }
  | { ok: false; reason: "capacity" | "collision" };

export class PollSessions<T> {
  private readonly byId = new Map<string, PollSession<T>>();

  constructor(
    private readonly capacity: number,
    private readonly limits: QueueLimits,
    private readonly newId: () => string = () => crypto.randomUUID(),
    /** A session with a poll in progress is not stale, however long that poll is held. */
    private readonly busy: (data: T) => boolean = () => false,
  ) {}

  get size(): number {
    return this.byId.size;
  }

  create(data: T, now: number): CreateResult<T> {
    if (this.capacity > 0 && this.byId.size >= this.capacity) return { ok: false, reason: "capacity" };
    let id = this.newId();
    for (let i = 0; this.byId.has(id) && i < 4; i++) id = this.newId();
    if (this.byId.has(id)) return { ok: false, reason: "collision" };
    const session: PollSession<T> = { id, queue: new PollQueue(this.limits, now), data };
    this.byId.set(id, session);
    return { ok: true, session };
  }

  /** The live session for an id and marks it seen; undefined for unknown or expired ids (→ 401). */
  take(id: string, now: number, keepaliveMs: number): PollSession<T> | undefined {
    const s = this.byId.get(id);
    if (!s) return undefined;
    if (!this.busy(s.data) && s.queue.expired(now, keepaliveMs)) {
      this.byId.delete(id);
      return undefined;
    }
    s.queue.touch(now);
    return s;
  }

  remove(id: string): PollSession<T> | undefined {
    const s = this.byId.get(id);
    if (s) this.byId.delete(id);
    return s;
  }

  /** Removes and returns the sessions not polled within the keepalive timeout. */
  sweep(now: number, keepaliveMs: number): PollSession<T>[] {
    const out: PollSession<T>[] = [];
    for (const s of this.byId.values())
      if (!this.busy(s.data) && s.queue.expired(now, keepaliveMs)) out.push(s);
    for (const s of out) this.byId.delete(s.id);
    return out;
  }

  /** Sessions whose queued messages waited the flush interval (a held poll should be answered). */
  due(now: number, flushMs: number): PollSession<T>[] {
    const out: PollSession<T>[] = [];
    for (const s of this.byId.values()) if (s.queue.due(now, flushMs)) out.push(s);
    return out;
  }

  /** Every session, emptying the table (shutdown). */
  clear(): PollSession<T>[] {
    const out = [...this.byId.values()];
    this.byId.clear();
    return out;
  }
}
