// The in-memory broker (--broker=memory, anycable-go's broker.Memory): stream history with offsets
// under one epoch, session snapshots and presence, all in this process. Unlike anycable-go it is
// bounded (--broker_max_streams, --broker_max_sessions, presence id / info sizes), and a stream it
// dropped never reuses an offset a client may still hold.
import type { RemoteCommand, StreamMessage, StreamPublication } from "../broadcast/publication.ts";
import { nanoid } from "../http/request.ts";
import type { PubSub } from "../pubsub/pubsub.ts";
import {
  type Broker,
  type BrokerError,
  type HistoryError,
  type PresenceEvent,
  type PresenceInfo,
  type PresenceRecord,
  type Presenter,
  presenceProblem,
  tellPresenter,
  withInfo,
} from "./broker.ts";
import { DeadlineHeap, type Timed } from "./deadlines.ts";

export interface MemoryBrokerOptions {
  pubsub: PubSub;
  presenter?: Presenter;
  historyLimit: number;
  historyTtlSec: number;
  /** 0: sessions are not kept. */
  sessionsTtlSec: number;
  presenceTtlSec: number;
  maxStreams: number;
  maxSessions: number;
  /** The clock in ms (tests move it by hand). */
  now?: () => number;
  /** Default: 4 random characters, as anycable-go. */
  epoch?: string;
}

/** Sizes, for tests and metrics. `messages` may include expired entries not yet trimmed. */
export interface MemoryBrokerStats {
  streams: number;
  messages: number;
  sessions: number;
  /** Presence ids summed over streams. */
  presenceRecords: number;
  /** Streams with at least one presence record. */
  presenceStreams: number;
}

interface Entry {
  offset: number;
  atSec: number;
  dataJson: string;
}

interface Stream {
  /** Retained entries are entries[start..]: dropping the oldest is O(1). */
  entries: Entry[];
  start: number;
  lastOffset: number;
  lastSec: number;
}

interface Session extends Timed {
  sid: string;
  snapshot: string;
}

interface PresenceEntry {
  info: unknown;
  sids: Set<string>;
}

interface PresenceSession extends Timed {
  sid: string;
  /** stream -> presence id */
  streams: Map<string, string>;
}

// anycable-go keeps an idle stream this many history TTLs, so its offsets carry on if it comes back.
const STREAM_KEEP_TTLS = 10;
// Compacting once half the array is dropped entries keeps trimming O(1) amortised.
const COMPACT_AT = 64;

export class MemoryBroker implements Broker {
  readonly name = "broker (memory)";
  readonly supportsHistory = true;
  readonly supportsPresence = true;
  readonly epoch: string;

  private readonly pubsub: PubSub;
  private readonly presenter?: Presenter;
  private readonly now: () => number;
  private readonly historyLimit: number;
  private readonly historyTtlSec: number;
  private readonly sessionsTtlMs: number;
  private readonly presenceTtlMs: number;
  private readonly maxStreams: number;
  private readonly maxSessions: number;

  /** In order of last publication (re-inserted on each), so the front is the one to evict or expire. */
  private readonly streams = new Map<string, Stream>();
  private messages = 0;
  private maxIssued = 0;
  /** Set once a stream was dropped: new streams then start above every offset issued. */
  private dropped = false;

  private readonly sessions = new Map<string, Session>();
  private readonly sessionDeadlines = new DeadlineHeap<Session>();

  private readonly presence = new Map<string, Map<string, PresenceEntry>>();
  private readonly presenceSessions = new Map<string, PresenceSession>();
  private readonly presenceDeadlines = new DeadlineHeap<PresenceSession>();
  private presenceRecords = 0;

  constructor(o: MemoryBrokerOptions) {
    this.pubsub = o.pubsub;
    this.presenter = o.presenter;
    this.now = o.now ?? Date.now;
    this.epoch = o.epoch ?? nanoid(4);
    this.historyLimit = o.historyLimit;
    this.historyTtlSec = o.historyTtlSec;
    this.sessionsTtlMs = o.sessionsTtlSec * 1000;
    this.presenceTtlMs = o.presenceTtlSec * 1000;
    this.maxStreams = o.maxStreams;
    this.maxSessions = o.maxSessions;
  }

  announce(): string {
    return (
      `Using in-memory broker (epoch: ${this.epoch}, history limit: ${this.historyLimit}, ` +
      `history ttl: ${this.historyTtlSec}s, sessions ttl: ${this.sessionsTtlMs / 1000}s, ` +
      `presence ttl: ${this.presenceTtlMs / 1000}s)`
    );
  }

  async start(): Promise<void> {}
  async shutdown(): Promise<void> {}

  stats(): MemoryBrokerStats {
    return {
      streams: this.streams.size,
      messages: this.messages,
      sessions: this.sessions.size,
      presenceRecords: this.presenceRecords,
      presenceStreams: this.presence.size,
    };
  }

  handleBroadcast(publication: StreamPublication): void {
    if (publication.transient) {
      this.pubsub.broadcast(publication);
      return;
    }
    const nowSec = this.nowSec();
    const stream = this.touchStream(publication.stream);
    const offset = ++stream.lastOffset;
    if (offset > this.maxIssued) this.maxIssued = offset;
    stream.lastSec = nowSec;
    stream.entries.push({ offset, atSec: nowSec, dataJson: publication.dataJson });
    this.messages++;
    this.trim(stream, nowSec);
    this.pubsub.broadcast({ ...publication, offset, epoch: this.epoch });
  }

  handleCommand(command: RemoteCommand): void {
    this.pubsub.broadcastCommand(command);
  }

  async historyFrom(name: string, epoch: string, offset: number): Promise<StreamMessage[] | HistoryError> {
    if (!Number.isSafeInteger(offset) || offset < 0) return { error: `invalid offset: ${offset}` };
    if (epoch !== this.epoch) return { error: `unknown epoch: ${epoch}, current: ${this.epoch}` };
    const stream = this.streams.get(name);
    if (!stream) return { error: "stream not found" };
    this.trim(stream, this.nowSec());
    if (stream.start === stream.entries.length) return { error: "stream is empty" };
    const low = stream.entries[stream.start].offset;
    // anycable-go's rule, kept as is: the client's own offset must still be retained, so
    // low - 1 is refused too although every message after it is there.
    if (low > offset) return { error: `requested offset couldn't be found: ${offset}, lowest: ${low}` };
    if (offset > stream.lastOffset) {
      return { error: `requested offset couldn't be found: ${offset}, latest: ${stream.lastOffset}` };
    }
    // Retained offsets are consecutive, so the position of `offset` is known without a search.
    return this.messagesOf(name, stream.entries.slice(stream.start + (offset - low) + 1));
  }

  async historySince(name: string, sinceUnixSec: number): Promise<StreamMessage[] | HistoryError> {
    if (Number.isNaN(sinceUnixSec)) return { error: "invalid since" };
    const stream = this.streams.get(name);
    if (!stream) return [];
    this.trim(stream, this.nowSec());
    const since = stream.entries.slice(stream.start).filter((e) => e.atSec >= sinceUnixSec);
    return this.messagesOf(name, since);
  }

  readonly localSessions = true;

  async commitSession(sid: string, snapshot: string): Promise<void> {
    if (this.sessionsTtlMs <= 0) return;
    const deadline = this.now() + this.sessionsTtlMs;
    const known = this.sessions.get(sid);
    if (known) {
      known.snapshot = snapshot;
      this.sessionDeadlines.move(known, deadline);
      return;
    }
    if (this.sessions.size >= this.maxSessions) {
      const soonest = this.sessionDeadlines.pop();
      if (soonest) this.sessions.delete(soonest.sid);
    }
    const session: Session = { sid, snapshot, deadline, slot: -1 };
    this.sessions.set(sid, session);
    this.sessionDeadlines.push(session);
  }

  async restoreSession(sid: string): Promise<string | undefined> {
    return this.sessions.get(sid)?.snapshot;
  }

  touchSessions(sids: readonly string[]): void {
    const deadline = this.now() + this.sessionsTtlMs;
    for (const sid of sids) {
      const session = this.sessions.get(sid);
      if (session) this.sessionDeadlines.move(session, deadline);
    }
  }

  async presenceAdd(
    stream: string,
    sid: string,
    pid: string,
    info: unknown,
  ): Promise<PresenceEvent | undefined | BrokerError> {
    const problem = presenceProblem(pid, info);
    if (problem) return problem;
    let session = this.presenceSessions.get(sid);
    const known = session?.streams.get(stream);
    if (known !== undefined && known !== pid) return { error: "presence ID mismatch" };
    if (!session) {
      session = { sid, streams: new Map(), deadline: this.now() + this.presenceTtlMs, slot: -1 };
      this.presenceSessions.set(sid, session);
      this.presenceDeadlines.push(session);
    }
    session.streams.set(stream, pid);
    let records = this.presence.get(stream);
    if (!records) {
      records = new Map();
      this.presence.set(stream, records);
    }
    const entry = records.get(pid);
    if (entry) {
      entry.sids.add(sid);
      entry.info = info;
      return undefined;
    }
    records.set(pid, { info, sids: new Set([sid]) });
    this.presenceRecords++;
    const event: PresenceEvent = withInfo({ type: "join", id: pid }, info);
    this.tell(stream, event, sid);
    return event;
  }

  async presenceRemove(stream: string, sid: string): Promise<PresenceEvent | undefined | BrokerError> {
    const records = this.presence.get(stream);
    if (!records) return { error: "stream not found" };
    const session = this.presenceSessions.get(sid);
    const pid = session?.streams.get(stream);
    if (!session || pid === undefined) return { error: "presence info not found" };
    session.streams.delete(stream);
    if (session.streams.size === 0) {
      this.presenceSessions.delete(sid);
      this.presenceDeadlines.remove(session);
    }
    const left = this.leave(records, stream, pid, sid);
    if (left) this.tell(stream, left);
    return left;
  }

  async presenceInfo(
    stream: string,
    options: { returnRecords: boolean },
  ): Promise<PresenceInfo | BrokerError> {
    const records = this.presence.get(stream);
    const total = records?.size ?? 0;
    // anycable-go omits an empty records list (omitempty): a stream nobody is in has none.
    if (!options.returnRecords || !records || total === 0) return { type: "info", total };
    const list: PresenceRecord[] = [];
    for (const [id, entry] of records) list.push(withInfo({ id }, entry.info));
    return { type: "info", total, records: list };
  }

  touchPresence(sids: readonly string[]): void {
    const deadline = this.now() + this.presenceTtlMs;
    for (const sid of sids) {
      const session = this.presenceSessions.get(sid);
      if (session) this.presenceDeadlines.move(session, deadline);
    }
  }

  expire(nowMs: number): void {
    const nowSec = Math.floor(nowMs / 1000);
    // Entries are trimmed when their stream is read or published to; here only whole idle streams
    // go, from the front of the map (least recently published first), so a tick costs what it drops.
    const idleBefore = nowSec - STREAM_KEEP_TTLS * this.historyTtlSec;
    for (const [name, stream] of this.streams) {
      if (stream.lastSec >= idleBefore) break;
      this.dropStream(name, stream);
    }

    for (let s = this.sessionDeadlines.peek(); s && s.deadline <= nowMs; s = this.sessionDeadlines.peek()) {
      this.sessionDeadlines.pop();
      this.sessions.delete(s.sid);
    }

    const leaves: Array<[string, PresenceEvent]> = [];
    for (let s = this.presenceDeadlines.peek(); s && s.deadline < nowMs; s = this.presenceDeadlines.peek()) {
      this.presenceDeadlines.pop();
      this.presenceSessions.delete(s.sid);
      for (const [stream, pid] of s.streams) {
        const records = this.presence.get(stream);
        const left = records && this.leave(records, stream, pid, s.sid);
        if (left) leaves.push([stream, left]);
      }
    }
    // Told after the state is final, so a presenter reading it sees the records gone.
    for (const [stream, event] of leaves) this.tell(stream, event);
  }

  private nowSec(): number {
    return Math.floor(this.now() / 1000);
  }

  /** The stream, moved to the back of the eviction order; created (evicting if full) when new. */
  private touchStream(name: string): Stream {
    let stream = this.streams.get(name);
    if (stream) {
      this.streams.delete(name);
    } else {
      if (this.streams.size >= this.maxStreams) {
        const [oldest, s] = this.streams.entries().next().value!;
        this.dropStream(oldest, s);
      }
      // Past a drop, a recreated stream must not hand out offsets a client of the old one holds.
      const base = this.dropped ? this.maxIssued : 0;
      stream = { entries: [], start: 0, lastOffset: base, lastSec: 0 };
    }
    this.streams.set(name, stream);
    return stream;
  }

  private dropStream(name: string, stream: Stream): void {
    this.streams.delete(name);
    this.messages -= stream.entries.length - stream.start;
    this.dropped = true;
  }

  /** Drops entries past the history limit and those older than the history TTL. */
  private trim(stream: Stream, nowSec: number): void {
    const { entries } = stream;
    const expiredBefore = nowSec - this.historyTtlSec;
    let start = stream.start;
    while (
      start < entries.length &&
      (entries.length - start > this.historyLimit || entries[start].atSec < expiredBefore)
    )
      start++;
    this.messages -= start - stream.start;
    if (start === entries.length) {
      stream.entries = [];
      stream.start = 0;
    } else if (start >= COMPACT_AT && start * 2 >= entries.length) {
      stream.entries = entries.slice(start);
      stream.start = 0;
    } else {
      stream.start = start;
    }
  }

  private messagesOf(name: string, entries: Entry[]): StreamMessage[] {
    // anycable-go's history entries keep the data only: no broadcast type, no excluded socket.
    return entries.map((e) => ({ stream: name, dataJson: e.dataJson, offset: e.offset, epoch: this.epoch }));
  }

  /** Removes `sid` from the record of `pid`; the leave event when it was the id's last session. */
  private leave(
    records: Map<string, PresenceEntry>,
    stream: string,
    pid: string,
    sid: string,
  ): PresenceEvent | undefined {
    const entry = records.get(pid);
    if (!entry?.sids.delete(sid) || entry.sids.size > 0) return undefined;
    records.delete(pid);
    this.presenceRecords--;
    if (records.size === 0) this.presence.delete(stream);
    return { type: "leave", id: pid };
  }

  private tell(stream: string, event: PresenceEvent, sid?: string): void {
    tellPresenter(this.presenter, stream, event, sid);
  }
}
