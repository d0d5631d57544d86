// The NATS broker (--broker=nats): history, offsets and the epoch in JetStream, session snapshots
// in JetStream KV, laid out as anycable-go's broker/nats.go so anycable-go and anycable-ts nodes
// can share one NATS: the JetStream stream `_ac_<stream>` (MaxMsgs = --history_limit, MaxAge =
// --history_ttl; a message's offset is its stream sequence), bucket `_anycable_` (one key per sid,
// TTL --sessions_ttl), bucket `_anycable_epoch_` key `_epoch_` (created by the first node, watched
// by all). Plus presence, which anycable-go's NATS broker lacks (nats_layout.ts; README's "NATS
// broker"): one record per (stream, presence id) changed by compare-and-set only, so each join and
// each leave is decided (and told) by exactly one node.
//
// The memory copy: anycable-go keeps every subscribed stream's messages in a memory broker fed by a
// JetStream consumer, so a reconnect storm reads memory instead of JetStream. Here each stream read
// for history has a copy, brought up to date before it is read by one stream-info request (plus the
// messages it lacks); concurrent readers of a stream share one such refresh, so a storm of N
// readers costs a few requests, not N, and a reader never misses a message acknowledged before it
// asked (anycable-go's copy can lag its consumer by up to 200 ms).
//
// Faults: no socket path waits on NATS beyond callTimeoutMs (2 s); with NATS disconnected calls
// fail at once. History and presence answer with error values (reject_history), a restore finds
// nothing (a normal connect), and publications are delivered live without offsets and in order:
// offsets are JetStream sequences, which no node can hand out while JetStream is away. A JetStream
// stream deleted (or recreated) under a stream this node has seen gives a new epoch for the
// cluster; buckets gone (a nats-server that restarted empty) are recreated with a new epoch.
import type { JetStreamClient, JetStreamManager, StoredMsg, StreamInfo } from "@nats-io/jetstream";
import { JetStreamApiCodes, JetStreamApiError, jetstreamManager } from "@nats-io/jetstream";
import { type KV, type KvEntry, Kvm } from "@nats-io/kv";
import type { NatsConnection, QueuedIterator } from "@nats-io/transport-node";
import type { RemoteCommand, StreamMessage, StreamPublication } from "../broadcast/publication.ts";
import { nanoid } from "../http/request.ts";
import type { Logger } from "../log/logger.ts";
import type { Counter, Metrics } from "../metrics/registry.ts";
import { NatsLink } from "../nats/connection.ts";
import type { Options as NatsOptions } from "../nats/options.ts";
import { publicationDataJson } from "../protocols/actioncable.ts";
import type { PubSub } from "../pubsub/pubsub.ts";
import {
  type Broker,
  type BrokerError,
  type HistoryError,
  historyUnavailable,
  operationFailed,
  type PresenceEvent,
  type PresenceInfo,
  type PresenceRecord,
  type Presenter,
  presenceProblem,
  tellPresenter,
  withInfo,
} from "./broker.ts";
import { DeadlineHeap, type Timed } from "./deadlines.ts";
import {
  EPOCH_BUCKET,
  EPOCH_KEY,
  isEpoch,
  isKvKey,
  jetstreamName,
  keyToken,
  type NodeValue,
  PRESENCE_BUCKET,
  PRESENCE_NODES_BUCKET,
  type PresenceValue,
  parseNodeValue,
  parsePresenceValue,
  presenceFilter,
  presenceKey,
  presenceValueJson,
  SESSIONS_BUCKET,
} from "./nats_layout.ts";
import { BrokerTimeout, OrderedDelivery, withTimeout } from "./ordered_delivery.ts";

export interface NatsBrokerOptions {
  nats: NatsOptions;
  pubsub: PubSub;
  presenter?: Presenter;
  historyLimit: number;
  historyTtlSec: number;
  /** 0: sessions are not kept. */
  sessionsTtlSec: number;
  presenceTtlSec: number;
  /** How long a call may take before its caller gets an error value (default CALL_TIMEOUT_MS). */
  callTimeoutMs?: number;
  /** This node in presence records (default: random). */
  nodeId?: string;
}

/** Longest wait of a socket path on NATS (history, restore, presence) and of an offset. */
export const CALL_TIMEOUT_MS = 2000;
/** The metric the Redis broker counts its failures in; NATS failures and skipped foreign data too. */
export const ERRORS_METRIC = "broker_errors_total";
/** How many streams' memory copies are kept (the least recently read goes first). */
const CACHED_STREAMS = 10_000;
/** Messages fetched from JetStream at once while a copy catches up. */
const FETCH_WINDOW = 64;
/** Session snapshots touched at once. */
const TOUCH_BATCH = 256;
/** A presence record changed by another node meanwhile is re-read and retried this often. */
const CAS_ATTEMPTS = 16;
/** A survivor sweeping a dead node's presence holds the claim this long. */
const REAP_CLAIM_MS = 60_000;
/** Retries of the JetStream set-up: 1 s doubling up to 30 s, for as long as it takes. */
const INIT_RETRY_MAX_MS = 30_000;

const UTF8 = new TextDecoder("utf-8", { fatal: true });

interface Entry {
  seq: number;
  atSec: number;
  dataJson: string;
}

/** The memory copy of one JetStream stream. */
interface Copy {
  readonly jsName: string;
  /** StreamInfo.created of the JetStream stream the entries came from. */
  created?: string;
  /** The epoch current when `created` was first seen (a stream lost within it needs a new one). */
  epoch: string;
  exists: boolean;
  /** In order; every kept message with a sequence in from..lastSeq is here. */
  entries: Entry[];
  /** The lowest sequence kept (JetStream's first, raised by this node's limit and TTL). */
  firstSeq: number;
  /** The highest sequence JetStream had at the last refresh. */
  lastSeq: number;
  /** The lowest sequence the entries cover (Infinity: none yet). */
  from: number;
  /** The lowest sequence the callers waiting for the next refresh need. */
  wanted?: number;
  inflight?: Promise<void>;
  queued?: Promise<void>;
  usedAt: number;
}

/** What this node knows of a JetStream stream it publishes to. */
interface Known {
  /** Resolves to StreamInfo.created once the stream is there. */
  created: Promise<string>;
  until: number;
  epoch: string;
  /** The highest sequence acknowledged to this node. */
  lastSeq: number;
}

interface LocalPresence extends Timed {
  sid: string;
  /** stream -> the presence id and info this session added there */
  streams: Map<string, { pid: string; info: unknown }>;
}

export class NatsBroker implements Broker {
  readonly name = "broker (nats)";
  readonly supportsHistory = true;
  readonly supportsPresence = true;
  readonly nodeId: string;

  private readonly log: Logger;
  private readonly link: NatsLink;
  private readonly timeoutMs: number;
  private readonly historyTtlSec: number;
  private readonly sessionsTtlMs: number;
  private readonly presenceTtlMs: number;
  private readonly heartbeatMs: number;
  /** anycable-go's epoch bucket TTL: 10 × the larger of the history and sessions TTLs. */
  private readonly epochTtlMs: number;
  private readonly errors: Counter | undefined;

  private jsm?: JetStreamManager;
  private js?: JetStreamClient;
  private sessions?: KV;
  private epochKv?: KV;
  private presence?: KV;
  private nodes?: KV;
  private watcher?: QueuedIterator<KvEntry>;

  private _epoch = "";
  private epochRevision = 0;
  /** starting: the first set-up attempt runs (callers wait for it); unavailable: an attempt failed. */
  private phase: "starting" | "ready" | "unavailable" = "starting";
  private readyWaiters: Array<() => void> = [];
  private initializing?: Promise<void>;
  private initTimer?: ReturnType<typeof setTimeout>;
  private stopped = false;
  private started = false;
  private lastVerify = 0;
  private rotating?: Promise<void>;
  /** The epoch some publications were delivered in without being kept: the next kept one ends it. */
  private gapEpoch?: string;
  /** The revision of this node's last heartbeat (0: none written to the current bucket). */
  private heartbeatRevision = 0;

  /** Publications waiting for their offsets, in the order they were handed in. */
  private readonly outgoing: OrderedDelivery;
  private readonly known = new Map<string, Known>();
  private readonly copies = new Map<string, Copy>();

  private readonly local = new Map<string, LocalPresence>();
  private readonly deadlines = new DeadlineHeap<LocalPresence>();
  private maintaining?: Promise<void>;
  private nextHeartbeat = 0;

  constructor(
    private readonly o: NatsBrokerOptions,
    logger: Logger,
    metrics?: Metrics,
  ) {
    this.log = logger.with({ context: "broker", provider: "nats" });
    this.nodeId = o.nodeId ?? nanoid(10);
    this.timeoutMs = o.callTimeoutMs ?? CALL_TIMEOUT_MS;
    this.outgoing = new OrderedDelivery((m) => o.pubsub.broadcast(m), this.timeoutMs);
    this.historyTtlSec = o.historyTtlSec;
    this.sessionsTtlMs = o.sessionsTtlSec * 1000;
    this.presenceTtlMs = o.presenceTtlSec * 1000;
    this.epochTtlMs = 10 * Math.max(o.historyTtlSec, o.sessionsTtlSec) * 1000;
    this.heartbeatMs = Math.min(5000, Math.max(1000, Math.floor(this.presenceTtlMs / 3)));
    this.errors = metrics?.counter(
      ERRORS_METRIC,
      "The total number of broker operations that failed (engine unreachable, slow or holding foreign data)",
    );
    this.link = new NatsLink(o.nats, this.log, {
      connected: (_nc, first) => {
        if (first) this.scheduleInit(0);
        // after a reconnect the server may be a new one that lost JetStream's data
        else this.verifySoon(true, true);
      },
      disconnected: () => {},
    });
  }

  announce(): string {
    const o = this.o;
    return (
      `Using NATS broker: ${this.link.serversText} (history limit: ${o.historyLimit}, ` +
      `history ttl: ${o.historyTtlSec}s, sessions ttl: ${o.sessionsTtlSec}s, presence ttl: ${o.presenceTtlSec}s)`
    );
  }

  /** The epoch this node stamps on its messages ("" until JetStream is ready). */
  get epoch(): string {
    return this._epoch;
  }

  /** JetStream is set up and NATS connected (for tests and readiness). */
  get available(): boolean {
    return this.phase === "ready" && this.link.up;
  }

  /**
   * Connects and waits for JetStream at most callTimeoutMs, so the first clients get their
   * history; then keeps trying in the background (without it the node serves live messages).
   */
  async start(fatal: (err: Error) => void): Promise<void> {
    if (this.started) return;
    this.started = true;
    this.stopped = false;
    this.log.info(`Starting NATS broker: ${this.link.serversText}`);
    this.link.start(fatal);
    if (!(await this.whenReady(this.timeoutMs))) {
      this.log.warn("JetStream is not ready yet: the broker keeps trying; history and sessions wait for it");
    }
  }

  async shutdown(_deadline?: AbortSignal): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.initTimer);
    this.outgoing.flushAll();
    this.watcher?.stop();
    this.watcher = undefined;
    this.phase = "unavailable";
    this.wakeWaiters();
    await this.link.shutdown();
  }

  // --- publications

  handleBroadcast(publication: StreamPublication): void {
    const slot = this.outgoing.add(publication);
    if (publication.transient || this.stopped || !this.link.up || this.phase === "unavailable") {
      if (!publication.transient && !this.stopped) this.gapEpoch ??= this._epoch;
      this.outgoing.settle(slot, publication);
      return;
    }
    this.append(publication.stream, publication.dataJson).then(
      ({ seq, epoch }) => this.outgoing.settle(slot, { ...publication, offset: seq, epoch }),
      (err: Error) => {
        this.failed("publish", err);
        // not kept (a timeout may still have been): history past it would have a hole
        if (!(err instanceof BrokerTimeout)) this.gapEpoch ??= this._epoch;
        this.outgoing.settle(slot, publication);
      },
    );
  }

  handleCommand(command: RemoteCommand): void {
    this.o.pubsub.broadcastCommand(command);
  }

  /** Stores one message in its stream's JetStream stream: its sequence is the offset. */
  private async append(stream: string, dataJson: string): Promise<{ seq: number; epoch: string }> {
    await this.jetstreamReady();
    const gap = this.gapEpoch;
    if (gap !== undefined) {
      // Publications went out without being kept: a client resuming across them would get the
      // later ones and never know it missed those. A new epoch (unless the cluster moved to one
      // meanwhile) makes that a clean reject_history.
      this.gapEpoch = undefined;
      await this.epochLost(gap, "publications were delivered without offsets (JetStream was unavailable)");
    }
    while (this.rotating) await this.rotating;
    const jsName = jetstreamName(stream);
    for (let attempt = 0; ; attempt++) {
      const known = this.ensureStream(jsName);
      const created = await known.created;
      const js = this.js;
      if (!js) throw new Error("JetStream is not ready");
      let seq: number;
      try {
        seq = (await js.publish(jsName, dataJson, { timeout: this.timeoutMs })).seq;
      } catch (err) {
        // no stream listens on the subject: it was deleted after this node created or saw it
        if (attempt === 0 && isNoResponders(err)) {
          if (this.known.get(jsName) === known) this.known.delete(jsName);
          await this.streamLost(known.epoch, jsName, "deleted");
          continue;
        }
        throw err;
      }
      if (seq < known.lastSeq && attempt === 0) {
        // the sequence went back: made again meanwhile? Its creation time says.
        const info = await this.jsm?.streams.info(jsName).catch(() => undefined);
        if (info && info.created !== created) {
          if (this.known.get(jsName) === known) this.known.delete(jsName);
          await this.streamLost(known.epoch, jsName, "recreated");
          const again = this.ensureStream(jsName);
          again.lastSeq = seq;
          return { seq, epoch: this._epoch };
        }
      }
      if (seq > known.lastSeq) known.lastSeq = seq;
      return { seq, epoch: this._epoch };
    }
  }

  /** Creates the JetStream stream once per history TTL (as anycable-go re-checks it). */
  private ensureStream(jsName: string): Known {
    const now = Date.now();
    const cached = this.known.get(jsName);
    if (cached && cached.until > now) return cached;
    // re-inserted, so the map stays in order of expiry (maintain() drops from the front)
    this.known.delete(jsName);
    const known: Known = {
      until: now + Math.max(60, this.historyTtlSec) * 1000,
      epoch: this._epoch,
      lastSeq: cached?.lastSeq ?? 0,
      created: this.createStream(jsName),
    };
    known.created.catch(() => {
      if (this.known.get(jsName) === known) this.known.delete(jsName);
    });
    this.known.set(jsName, known);
    return known;
  }

  /** As anycable-go creates it (the subject is the name); resolves to its creation time. */
  private async createStream(jsName: string): Promise<string> {
    const jsm = this.jsm;
    if (!jsm) throw new Error("JetStream is not ready");
    try {
      const info = await jsm.streams.add({
        name: jsName,
        max_msgs: this.o.historyLimit,
        max_age: this.historyTtlSec * 1_000_000_000,
        num_replicas: 1,
      });
      return info.created;
    } catch (err) {
      // anycable-go's rule: a stream created with other limits (another node's settings) is used as it is
      if (!(err instanceof Error && /already in use/.test(err.message))) throw err;
      return (await jsm.streams.info(jsName)).created;
    }
  }

  // --- history

  async historyFrom(stream: string, epoch: string, offset: number): Promise<StreamMessage[] | HistoryError> {
    if (!Number.isSafeInteger(offset) || offset < 0) return { error: `invalid offset: ${offset}` };
    if (typeof epoch !== "string" || epoch === "") return { error: `unknown epoch: ${epoch}` };
    let copy: Copy;
    try {
      // the message at the client's offset too: it must itself be kept (anycable-go's rule)
      copy = await this.timed(this.read(stream, offset));
    } catch (err) {
      return this.historyFailed(err as Error);
    }
    if (epoch !== this._epoch) return { error: `unknown epoch: ${epoch}, current: ${this._epoch}` };
    if (!copy.exists) return { error: "stream not found" };
    const entries = this.kept(copy);
    const low = copy.firstSeq;
    if (low > copy.lastSeq) return { error: "stream is empty" };
    if (low > offset) return { error: `requested offset couldn't be found: ${offset}, lowest: ${low}` };
    if (offset > copy.lastSeq) {
      return { error: `requested offset couldn't be found: ${offset}, latest: ${copy.lastSeq}` };
    }
    return this.messagesOf(
      stream,
      entries.filter((e) => e.seq > offset),
    );
  }

  async historySince(stream: string, sinceUnixSec: number): Promise<StreamMessage[] | HistoryError> {
    if (Number.isNaN(sinceUnixSec)) return { error: "invalid since" };
    let copy: Copy;
    try {
      copy = await this.timed(this.read(stream, 0));
    } catch (err) {
      return this.historyFailed(err as Error);
    }
    if (!copy.exists) return [];
    return this.messagesOf(
      stream,
      this.kept(copy).filter((e) => e.atSec >= sinceUnixSec),
    );
  }

  /**
   * Entries within the history TTL by this node's clock (JetStream's MaxAge may lag a moment);
   * what expired raises the lowest kept sequence (ages grow with sequences).
   */
  private kept(copy: Copy): Entry[] {
    if (this.historyTtlSec <= 0) return copy.entries;
    const expiredBefore = Math.floor(Date.now() / 1000) - this.historyTtlSec;
    let i = 0;
    while (i < copy.entries.length && copy.entries[i].atSec < expiredBefore) i++;
    if (i > 0) {
      copy.firstSeq = Math.max(copy.firstSeq, copy.entries[i - 1].seq + 1);
      copy.entries = copy.entries.slice(i);
    }
    return copy.entries;
  }

  private messagesOf(stream: string, entries: Entry[]): StreamMessage[] {
    const epoch = this._epoch;
    return entries.map((e) => ({ stream, dataJson: e.dataJson, offset: e.seq, epoch }));
  }

  /**
   * The stream's memory copy, brought up to date after this call was made, holding every kept
   * message from sequence `need` on (0: all of them).
   */
  private async read(stream: string, need: number): Promise<Copy> {
    await this.jetstreamReady();
    let copy = this.copies.get(stream);
    if (copy) {
      this.copies.delete(stream);
    } else {
      if (this.copies.size >= CACHED_STREAMS) this.copies.delete(this.copies.keys().next().value!);
      copy = {
        jsName: jetstreamName(stream),
        epoch: this._epoch,
        exists: false,
        entries: [],
        firstSeq: 1,
        lastSeq: 0,
        from: Number.POSITIVE_INFINITY,
        usedAt: 0,
      };
    }
    copy.usedAt = Date.now();
    this.copies.set(stream, copy);
    copy.wanted = Math.min(copy.wanted ?? Number.POSITIVE_INFINITY, need);
    await this.fresh(copy);
    return copy;
  }

  /**
   * One refresh at a time per stream; a caller arriving while one runs waits for the next, which
   * starts after its arrival (so it sees every message acknowledged before it asked) and fetches
   * what the callers waiting for it need.
   */
  private fresh(copy: Copy): Promise<void> {
    if (!copy.inflight) {
      const run: Promise<void> = this.refresh(copy).finally(() => {
        if (copy.inflight === run) copy.inflight = undefined;
      });
      copy.inflight = run;
      return run;
    }
    copy.queued ??= copy.inflight
      .catch(() => {})
      .then(() => {
        copy.queued = undefined;
        return this.fresh(copy);
      });
    return copy.queued;
  }

  /**
   * One stream-info request, then only the messages the copy lacks: those above what it covers,
   * and those below it that a caller needs (a client's missed messages, not the whole history).
   */
  private async refresh(copy: Copy): Promise<void> {
    const need = copy.wanted ?? Number.POSITIVE_INFINITY;
    copy.wanted = undefined;
    const jsm = this.jsm;
    if (!jsm) throw new Error("JetStream is not ready");
    let info: StreamInfo;
    try {
      info = await jsm.streams.info(copy.jsName);
    } catch (err) {
      if (!isStreamNotFound(err)) throw err;
      if (copy.exists) await this.streamLost(copy.epoch, copy.jsName, "deleted");
      Object.assign(copy, { exists: false, created: undefined, epoch: this._epoch });
      resetCopy(copy);
      return;
    }
    if (copy.created !== undefined && copy.created !== info.created) {
      await this.streamLost(copy.epoch, copy.jsName, "recreated");
      resetCopy(copy);
    }
    if (copy.created !== info.created) {
      copy.created = info.created;
      copy.epoch = this._epoch;
    }
    copy.exists = true;
    const last = info.state.last_seq;
    // a stream made with a higher limit by another node: what this node's limit keeps
    const first = Math.max(info.state.first_seq, last - this.o.historyLimit + 1, 1);
    if (copy.lastSeq > last) resetCopy(copy);
    let entries = copy.entries;
    let drop = 0;
    while (drop < entries.length && entries[drop].seq < first) drop++;
    if (drop > 0) entries = entries.slice(drop);
    copy.firstSeq = Math.max(first, copy.firstSeq);
    let from = Math.max(copy.from, first);
    // 0: everything kept; below the kept ones: nothing (that offset is refused anyway)
    const wantFrom = need <= 0 ? copy.firstSeq : need < copy.firstSeq ? Number.POSITIVE_INFINITY : need;
    const below: Entry[] = [];
    const above: Entry[] = [];
    if (from > copy.lastSeq + 1) {
      // nothing covered yet
      from = Math.min(last + 1, wantFrom);
      await this.fetchRange(copy.jsName, from, last, above);
      entries = [];
    } else {
      const lo = Math.min(wantFrom, from);
      if (lo < from) await this.fetchRange(copy.jsName, lo, from - 1, below);
      from = lo;
      await this.fetchRange(copy.jsName, copy.lastSeq + 1, last, above);
    }
    copy.entries = below.length + above.length === 0 ? entries : [...below, ...entries, ...above];
    copy.from = from;
    copy.lastSeq = last;
  }

  /** Messages first..last of a JetStream stream, FETCH_WINDOW requests at a time. */
  private async fetchRange(jsName: string, first: number, last: number, out: Entry[]): Promise<void> {
    const jsm = this.jsm;
    if (!jsm) throw new Error("JetStream is not ready");
    for (let start = first; start <= last; start += FETCH_WINDOW) {
      const end = Math.min(last, start + FETCH_WINDOW - 1);
      const batch: Promise<StoredMsg | null>[] = [];
      for (let seq = start; seq <= end; seq++) {
        batch.push(jsm.streams.getMessage(jsName, { seq }).catch((err) => this.missing(err)));
      }
      for (const m of await Promise.all(batch)) {
        if (!m) continue;
        const entry = this.entryOf(jsName, m);
        if (entry) out.push(entry);
      }
    }
  }

  /** A message gone between the stream info and its read (expired, trimmed) is skipped. */
  private missing(err: unknown): null {
    if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.NoMessageFound) return null;
    throw err;
  }

  private entryOf(jsName: string, m: StoredMsg): Entry | undefined {
    let text: string;
    try {
      text = UTF8.decode(m.data);
    } catch {
      this.failed(
        "read history",
        new Error(`skipping a message that is not UTF-8 in ${jsName} (seq ${m.seq})`),
      );
      return undefined;
    }
    return { seq: m.seq, atSec: Math.floor(m.time.getTime() / 1000), dataJson: publicationDataJson(text) };
  }

  /**
   * A JetStream stream this node saw within `epoch` is gone or was made again: its offsets start
   * over, so the cluster moves to a new epoch (unless it already did).
   */
  private streamLost(epoch: string, jsName: string, how: string): Promise<void> {
    return this.epochLost(epoch, `a JetStream stream was ${how}`, { stream: jsName });
  }

  /** History of `epoch` has a hole: a new epoch for the cluster, unless it has one already. */
  private async epochLost(epoch: string, why: string, attrs: Record<string, string> = {}): Promise<void> {
    // several publications (or readers) may find the same loss: one new epoch for all of them
    while (this.rotating) await this.rotating;
    if (epoch !== this._epoch) return;
    this.log.warn(`${why}: starting a new epoch`, attrs);
    this.rotating = this.rotateEpoch().finally(() => {
      this.rotating = undefined;
    });
    await this.rotating;
  }

  // --- sessions

  async commitSession(sid: string, snapshot: string): Promise<void> {
    if (this.sessionsTtlMs <= 0) return;
    if (!isKvKey(sid)) {
      this.log.debug("session id cannot be a NATS KV key: session not kept", { sid });
      return;
    }
    await this.timed(
      (async () => {
        const kv = await this.kvReady(() => this.sessions);
        await kv.put(sid, snapshot);
      })(),
    ).catch((err: Error) => {
      this.failed("commit session", err);
      throw err;
    });
  }

  async restoreSession(sid: string): Promise<string | undefined> {
    if (this.sessionsTtlMs <= 0 || !isKvKey(sid)) return undefined;
    let entry: KvEntry | null;
    try {
      entry = await this.timed(
        (async () => {
          const kv = await this.kvReady(() => this.sessions);
          return kv.get(sid);
        })(),
      );
    } catch (err) {
      this.failed("restore session", err as Error);
      return undefined;
    }
    if (entry?.operation !== "PUT") return undefined;
    // the bucket's MaxAge removes it a moment later; the TTL holds from this node's view already
    if (entry.created.getTime() + this.sessionsTtlMs <= Date.now()) return undefined;
    try {
      return UTF8.decode(entry.value);
    } catch {
      this.failed("restore session", new Error("skipping a session value that is not UTF-8"));
      return undefined;
    }
  }

  touchSessions(sids: readonly string[]): void {
    if (this.sessionsTtlMs <= 0 || sids.length === 0 || !this.available) return;
    const kv = this.sessions;
    if (!kv) return;
    void this.touchAll(
      kv,
      sids.filter((sid) => isKvKey(sid)),
    );
  }

  /** anycable-go re-puts each value; compare-and-set here, so a commit made meanwhile is never undone. */
  private async touchAll(kv: KV, sids: string[]): Promise<void> {
    for (let i = 0; i < sids.length; i += TOUCH_BATCH) {
      const batch = sids.slice(i, i + TOUCH_BATCH).map(async (sid) => {
        const e = await kv.get(sid);
        if (e?.operation !== "PUT") return;
        await kv.update(sid, e.value, e.revision).catch((err: Error) => {
          if (!isWrongSequence(err)) throw err;
        });
      });
      try {
        await this.timed(Promise.all(batch));
      } catch (err) {
        this.failed("touch sessions", err as Error);
        return;
      }
    }
  }

  // --- presence

  async presenceAdd(
    stream: string,
    sid: string,
    pid: string,
    info: unknown,
  ): Promise<PresenceEvent | undefined | BrokerError> {
    const problem = presenceProblem(pid, info);
    if (problem) return problem;
    const known = this.local.get(sid)?.streams.get(stream)?.pid;
    if (known !== undefined && known !== pid) return { error: "presence ID mismatch" };
    let added: boolean;
    try {
      added = await this.timed(this.addRecord(stream, sid, pid, info));
    } catch (err) {
      // a change that timed out may still land: tracked, so this node's expiry takes it out again
      if (err instanceof BrokerTimeout) this.track(sid, stream, pid, info);
      return this.brokerFailed("presence add", err as Error);
    }
    // This node expires what it added (and tells the leave) --presence_ttl after the last touch.
    this.track(sid, stream, pid, info);
    if (!added) return undefined;
    const event = withInfo<PresenceEvent>({ type: "join", id: pid }, info);
    this.tell(stream, event, sid);
    return event;
  }

  private track(sid: string, stream: string, pid: string, info: unknown): void {
    let session = this.local.get(sid);
    if (!session) {
      session = { sid, streams: new Map(), deadline: Date.now() + this.presenceTtlMs, slot: -1 };
      this.local.set(sid, session);
      this.deadlines.push(session);
    }
    session.streams.set(stream, { pid, info });
  }

  /** Adds this session to the record of `pid`: true when the record is new (a join). */
  private async addRecord(stream: string, sid: string, pid: string, info: unknown): Promise<boolean> {
    const kv = await this.kvReady(() => this.presence);
    const key = presenceKey(stream, pid);
    const infoValue = info === undefined || info === null ? undefined : info;
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const entry = await kv.get(key);
      const current = entry && entry.operation === "PUT" ? this.parseRecord(entry) : undefined;
      try {
        if (!current || Object.keys(current.sessions).length === 0) {
          const value = presenceValueJson({
            stream,
            id: pid,
            info: infoValue,
            sessions: { [sid]: this.nodeId },
          });
          // a deleted record's marker (or a foreign value) is replaced compare-and-set as well
          if (entry) await kv.update(key, value, entry.revision);
          else await kv.create(key, value);
          return true;
        }
        current.sessions = Object.fromEntries([...Object.entries(current.sessions), [sid, this.nodeId]]);
        current.info = infoValue;
        await kv.update(key, presenceValueJson(current), entry!.revision);
        return false;
      } catch (err) {
        if (!isWrongSequence(err)) throw err;
      }
    }
    throw new Error("presence record changed too often to update");
  }

  async presenceRemove(stream: string, sid: string): Promise<PresenceEvent | undefined | BrokerError> {
    const session = this.local.get(sid);
    const pid = session?.streams.get(stream)?.pid;
    if (!session || pid === undefined) return { error: "presence info not found" };
    let left: boolean;
    try {
      left = await this.timed(this.removeRecord(stream, pid, [sid]));
    } catch (err) {
      return this.brokerFailed("presence remove", err as Error);
    }
    session.streams.delete(stream);
    if (session.streams.size === 0) {
      this.local.delete(sid);
      this.deadlines.remove(session);
    }
    if (!left) return undefined;
    const event: PresenceEvent = { type: "leave", id: pid };
    this.tell(stream, event);
    return event;
  }

  /**
   * Takes these sessions out of the record of `pid`: true when this call removed the record's last
   * session (the leave is this caller's to tell); false when others remain or it was gone already.
   */
  private async removeRecord(stream: string, pid: string, sids: readonly string[]): Promise<boolean> {
    const kv = await this.kvReady(() => this.presence);
    return this.removeFrom(kv, presenceKey(stream, pid), (sid) => sids.includes(sid));
  }

  private async removeFrom(
    kv: KV,
    key: string,
    leaving: (sid: string, node: string) => boolean,
  ): Promise<boolean> {
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const entry = await kv.get(key);
      if (entry?.operation !== "PUT") return false;
      const current = this.parseRecord(entry);
      try {
        if (!current) {
          await kv.delete(key, { previousSeq: entry.revision });
          return false;
        }
        let removed = false;
        for (const [sid, node] of Object.entries(current.sessions)) {
          if (leaving(sid, node)) {
            delete current.sessions[sid];
            removed = true;
          }
        }
        if (!removed) return false;
        if (Object.keys(current.sessions).length > 0) {
          await kv.update(key, presenceValueJson(current), entry.revision);
          return false;
        }
        await kv.delete(key, { previousSeq: entry.revision });
        return true;
      } catch (err) {
        if (!isWrongSequence(err)) throw err;
      }
    }
    throw new Error("presence record changed too often to update");
  }

  async presenceInfo(
    stream: string,
    options: { returnRecords: boolean },
  ): Promise<PresenceInfo | BrokerError> {
    let records: PresenceRecord[];
    try {
      records = await this.timed(this.records(stream));
    } catch (err) {
      return this.brokerFailed("presence info", err as Error);
    }
    const total = records.length;
    // anycable-go omits an empty records list (omitempty)
    if (!options.returnRecords || total === 0) return { type: "info", total };
    return { type: "info", total, records };
  }

  private async records(stream: string): Promise<PresenceRecord[]> {
    const kv = await this.kvReady(() => this.presence);
    const keys = await listKeys(kv, presenceFilter(stream));
    const entries = await Promise.all(keys.map((k) => kv.get(k)));
    const out: PresenceRecord[] = [];
    for (const entry of entries) {
      if (entry?.operation !== "PUT") continue;
      const v = this.parseRecord(entry);
      if (v && Object.keys(v.sessions).length > 0) out.push(withInfo({ id: v.id }, v.info));
    }
    return out;
  }

  private parseRecord(entry: KvEntry): PresenceValue | undefined {
    let v: PresenceValue | undefined;
    try {
      v = parsePresenceValue(UTF8.decode(entry.value));
    } catch {
      v = undefined;
    }
    if (!v) this.failed("read presence", new Error(`skipping a foreign presence value at ${entry.key}`));
    return v;
  }

  touchPresence(sids: readonly string[]): void {
    const deadline = Date.now() + this.presenceTtlMs;
    for (const sid of sids) {
      const session = this.local.get(sid);
      if (session) this.deadlines.move(session, deadline);
    }
  }

  // --- the ticker

  expire(nowMs: number): void {
    const gaveUp = this.outgoing.expireSlow(performance.now());
    if (gaveUp > 0) {
      this.failed(
        "publish",
        new BrokerTimeout(`${gaveUp} publication(s) sent without offsets: JetStream is slow`),
      );
    }
    // A tick while the last one still runs is skipped: maintenance never piles up behind NATS.
    if (!this.maintaining) void this.expireNow(nowMs);
  }

  /**
   * Expires this node's presence sessions (telling their leaves), heartbeats, checks the epoch and
   * sweeps dead nodes' presence (after the run in progress, if any); resolves when done.
   */
  async expireNow(nowMs: number): Promise<void> {
    while (this.maintaining) await this.maintaining;
    this.maintaining = this.maintain(nowMs).finally(() => {
      this.maintaining = undefined;
    });
    return this.maintaining;
  }

  private async maintain(nowMs: number): Promise<void> {
    if (this.stopped) return;
    await this.expireLocal(nowMs);
    if (!this.available) return;
    if (nowMs >= this.nextHeartbeat) {
      this.nextHeartbeat = nowMs + this.heartbeatMs;
      await this.heartbeat(nowMs).catch((err: Error) => this.failed("presence heartbeat", err));
      this.verifySoon(false);
      await this.sweepDeadNodes(nowMs).catch((err: Error) => this.failed("presence sweep", err));
    }
    const now = Date.now();
    for (const [name, known] of this.known) {
      if (known.until > now) break;
      this.known.delete(name);
    }
    const idle = now - Math.max(60, this.historyTtlSec) * 1000;
    for (const [stream, copy] of this.copies) {
      if (copy.usedAt >= idle) break;
      if (!copy.inflight) this.copies.delete(stream);
    }
  }

  /** Sessions of this node untouched for --presence_ttl leave their streams. */
  private async expireLocal(nowMs: number): Promise<void> {
    const due: LocalPresence[] = [];
    for (let s = this.deadlines.peek(); s && s.deadline < nowMs; s = this.deadlines.peek()) {
      this.deadlines.pop();
      this.local.delete(s.sid);
      due.push(s);
    }
    if (due.length === 0) return;
    const kv = this.presence;
    const leaves: Array<[string, PresenceEvent]> = [];
    const retry = new Map<LocalPresence, Array<[string, { pid: string; info: unknown }]>>();
    await Promise.all(
      due.flatMap((s) =>
        [...s.streams].map(async ([stream, added]) => {
          const { pid } = added;
          try {
            if (!kv || !this.available) throw new Error("NATS is not available");
            if (await this.timed(this.removeFrom(kv, presenceKey(stream, pid), (sid) => sid === s.sid))) {
              leaves.push([stream, { type: "leave", id: pid }]);
            }
          } catch (err) {
            this.failed("presence expiry", err as Error);
            const list = retry.get(s) ?? [];
            list.push([stream, added]);
            retry.set(s, list);
          }
        }),
      ),
    );
    // NATS could not take them out now: again after a heartbeat, unless the session came back
    for (const [s, streams] of retry) {
      if (this.local.has(s.sid)) continue;
      const again: LocalPresence = {
        sid: s.sid,
        streams: new Map(streams),
        deadline: nowMs + this.heartbeatMs,
        slot: -1,
      };
      this.local.set(s.sid, again);
      this.deadlines.push(again);
    }
    for (const [stream, event] of leaves) this.tell(stream, event);
  }

  /**
   * Writes this node's heartbeat, compare-and-set on the last one written: when that fails, a
   * survivor took this node for dead (NATS was out of reach longer than the presence TTL) and
   * swept its records, so this node adds its live sessions' records again (joins told as usual).
   */
  private async heartbeat(nowMs: number): Promise<void> {
    const nodes = this.nodes;
    if (!nodes) return;
    const key = keyToken(this.nodeId);
    const value = JSON.stringify({
      exp: nowMs + this.presenceTtlMs + 2 * this.heartbeatMs,
    } satisfies NodeValue);
    if (this.heartbeatRevision > 0) {
      try {
        this.heartbeatRevision = await this.timed(nodes.update(key, value, this.heartbeatRevision));
        return;
      } catch (err) {
        if (!isWrongSequence(err)) throw err;
      }
      this.heartbeatRevision = await this.timed(nodes.put(key, value));
      this.log.warn("this node was taken for dead (its presence swept): adding its presence again");
      await this.reassert();
      return;
    }
    this.heartbeatRevision = await this.timed(nodes.put(key, value));
  }

  private async reassert(): Promise<void> {
    for (const session of [...this.local.values()]) {
      for (const [stream, { pid, info }] of session.streams) {
        try {
          if (await this.timed(this.addRecord(stream, session.sid, pid, info))) {
            this.tell(stream, withInfo<PresenceEvent>({ type: "join", id: pid }, info), session.sid);
          }
        } catch (err) {
          this.failed("presence add", err as Error);
        }
      }
    }
  }

  /**
   * A node whose heartbeat ran out is claimed by one survivor (compare-and-set on its heartbeat
   * key), which takes its sessions out of every presence record, tells the leaves and deletes the
   * key. A claim that is not finished in REAP_CLAIM_MS can be taken over by another node.
   */
  private async sweepDeadNodes(nowMs: number): Promise<void> {
    const nodes = this.nodes;
    const presence = this.presence;
    if (!nodes || !presence) return;
    const keys = await this.timed(listKeys(nodes));
    const me = keyToken(this.nodeId);
    for (const key of keys) {
      if (key === me) continue;
      const entry = await this.timed(nodes.get(key));
      if (entry?.operation !== "PUT") continue;
      let value: NodeValue | undefined;
      try {
        value = parseNodeValue(UTF8.decode(entry.value));
      } catch {
        value = undefined;
      }
      if (!value) {
        this.failed("read presence nodes", new Error(`skipping a foreign node value at ${key}`));
        continue;
      }
      if (value.exp >= nowMs || (value.until !== undefined && value.until >= nowMs)) continue;
      const claim: NodeValue = { exp: value.exp, reaper: this.nodeId, until: nowMs + REAP_CLAIM_MS };
      let revision: number;
      try {
        revision = await this.timed(nodes.update(key, JSON.stringify(claim), entry.revision));
      } catch (err) {
        if (isWrongSequence(err)) continue; // another survivor took it
        throw err;
      }
      await this.reap(key, presence);
      await this.timed(nodes.delete(key, { previousSeq: revision })).catch(() => {});
    }
  }

  /** Removes the sessions of the node keyed `deadKey` (and of nodes with no heartbeat at all). */
  private async reap(deadKey: string, presence: KV): Promise<void> {
    const nodes = this.nodes!;
    const alive = new Map<string, boolean>();
    const isDead = async (node: string): Promise<boolean> => {
      const key = keyToken(node);
      if (key === deadKey) return true;
      if (node === this.nodeId) return false;
      let known = alive.get(key);
      if (known === undefined) {
        const e = await this.timed(nodes.get(key));
        known = !!e && e.operation === "PUT";
        alive.set(key, known);
      }
      return !known;
    };
    const keys = await this.timed(listKeys(presence));
    let reaped = 0;
    for (const key of keys) {
      const entry = await this.timed(presence.get(key));
      if (entry?.operation !== "PUT") continue;
      const record = this.parseRecord(entry);
      if (!record) continue;
      const dead = new Set<string>();
      for (const [sid, node] of Object.entries(record.sessions)) if (await isDead(node)) dead.add(sid);
      if (dead.size === 0) continue;
      reaped += dead.size;
      if (await this.timed(this.removeFrom(presence, key, (sid) => dead.has(sid)))) {
        this.tell(record.stream, { type: "leave", id: record.id });
      }
    }
    this.log.info("swept the presence of a node that stopped", { node: deadKey, sessions: reaped });
  }

  // --- JetStream set-up, the epoch

  private scheduleInit(delayMs: number): void {
    if (this.stopped || this.initializing) return;
    clearTimeout(this.initTimer);
    this.initTimer = setTimeout(() => {
      this.initializing = this.initLoop().finally(() => {
        this.initializing = undefined;
      });
    }, delayMs);
  }

  private async initLoop(): Promise<void> {
    // set up again after a loss: callers wait for it (as for the first one) unless it fails
    if (this.phase === "ready") this.phase = "starting";
    for (let attempt = 0; !this.stopped; attempt++) {
      const nc = this.link.connection;
      if (nc && this.link.up) {
        try {
          await this.init(nc);
          return;
        } catch (err) {
          if (this.stopped) return;
          this.phase = "unavailable";
          this.wakeWaiters();
          this.failed("JetStream set-up", err as Error);
          this.log.warn("JetStream initialization failed", { error: (err as Error).message });
        }
      }
      const delay = Math.min(INIT_RETRY_MAX_MS, 1000 * 2 ** Math.min(attempt, 5));
      await new Promise<void>((resolve) => {
        this.initTimer = setTimeout(resolve, delay);
      });
    }
  }

  /** Buckets (made when missing, remade when their TTL differs, as anycable-go), the epoch, the watcher. */
  private async init(nc: NatsConnection): Promise<void> {
    const jsm = await jetstreamManager(nc, { timeout: this.timeoutMs, checkAPI: true });
    const js = jsm.jetstream();
    const kvm = new Kvm(js);
    const sessions = await this.bucket(kvm, jsm, SESSIONS_BUCKET, this.sessionsTtlMs);
    const epochKv = await this.bucket(kvm, jsm, EPOCH_BUCKET, this.epochTtlMs);
    const presence = await this.bucket(kvm, jsm, PRESENCE_BUCKET, 0);
    const nodes = await this.bucket(kvm, jsm, PRESENCE_NODES_BUCKET, 0);
    if (this.stopped) return;
    this.jsm = jsm;
    this.js = js;
    this.sessions = sessions;
    this.epochKv = epochKv;
    this.presence = presence;
    this.nodes = nodes;
    // a bucket made again numbers its revisions from 1
    this.epochRevision = 0;
    await this.loadEpoch(epochKv);
    this.known.clear();
    this.nextHeartbeat = 0;
    this.heartbeatRevision = 0;
    await this.heartbeat(Date.now());
    this.watchEpoch(epochKv);
    this.phase = "ready";
    this.wakeWaiters();
    // set up again (a server that lost its data): this node's live sessions are present again
    if (this.local.size > 0) void this.reassert();
    this.log.info("NATS broker is ready", { epoch: this._epoch });
  }

  private async bucket(kvm: Kvm, jsm: JetStreamManager, name: string, ttlMs: number): Promise<KV> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const kv = await kvm.create(name, { ttl: ttlMs, history: 1, replicas: 1 });
      const status = await kv.status();
      if (status.ttl === ttlMs) return kv;
      this.log.warn("bucket TTL has been changed, recreating the bucket", {
        bucket: name,
        old_ttl: `${status.ttl / 1000}s`,
        ttl: `${ttlMs / 1000}s`,
      });
      await jsm.streams.delete(`KV_${name}`).catch(() => false);
    }
    throw new Error(`failed to create bucket: ${name}`);
  }

  /** The cluster's epoch: this node's new one if it creates the key first, else the one stored. */
  /** True when this node made the epoch (none was stored). */
  private async loadEpoch(kv: KV): Promise<boolean> {
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const entry = await kv.get(EPOCH_KEY);
      if (entry && entry.operation === "PUT") {
        const value = decodeOr(entry.value);
        if (value !== undefined && isEpoch(value)) {
          this.adoptEpoch(value, entry.revision);
          return false;
        }
        this.failed("read epoch", new Error("replacing a foreign epoch value"));
      }
      const epoch = nanoid(4);
      try {
        const revision = entry
          ? await kv.update(EPOCH_KEY, epoch, entry.revision)
          : await kv.create(EPOCH_KEY, epoch);
        this.adoptEpoch(epoch, revision);
        return true;
      } catch (err) {
        if (!isWrongSequence(err)) throw err;
      }
    }
    throw new Error("failed to settle the epoch");
  }

  private adoptEpoch(epoch: string, revision: number): void {
    if (revision < this.epochRevision && epoch !== this._epoch && this.epochKv) {
      // an older value arriving late (a watcher replaying): the newer one stands
      return;
    }
    this.epochRevision = revision;
    if (epoch === this._epoch) return;
    if (this._epoch !== "") this.log.warn("epoch updated", { epoch });
    this._epoch = epoch;
  }

  /**
   * Follows the stored epoch, and keeps it stored: anycable-go lets the key expire 10 TTLs after it
   * was written, and the next node to start then picks a new epoch for everyone although no history
   * was lost (JetStream streams keep their sequences). Here a node writes the same value again
   * (compare-and-set) once it is half that old, and stores it again if it expired; a key deleted on
   * purpose (a delete marker) does give a new epoch.
   */
  private async keepEpoch(kv: KV): Promise<void> {
    const entry = await kv.get(EPOCH_KEY);
    if (!entry) {
      if (this._epoch === "") {
        await this.loadEpoch(kv);
        return;
      }
      try {
        this.adoptEpoch(this._epoch, await kv.create(EPOCH_KEY, this._epoch));
      } catch (err) {
        if (!isWrongSequence(err)) throw err;
        await this.loadEpoch(kv);
      }
      return;
    }
    const value = entry.operation === "PUT" ? decodeOr(entry.value) : undefined;
    if (value === undefined || !isEpoch(value)) {
      await this.loadEpoch(kv);
      return;
    }
    this.adoptEpoch(value, entry.revision);
    if (
      this.epochTtlMs > 0 &&
      value === this._epoch &&
      Date.now() - entry.created.getTime() > this.epochTtlMs / 2
    ) {
      try {
        this.adoptEpoch(value, await kv.update(EPOCH_KEY, value, entry.revision));
      } catch (err) {
        if (!isWrongSequence(err)) throw err;
      }
    }
  }

  /** A new epoch for the cluster (compare-and-set: when several nodes try, one wins and all adopt it). */
  private async rotateEpoch(): Promise<void> {
    const kv = this.epochKv;
    if (!kv) return;
    const epoch = nanoid(4);
    try {
      const revision = await this.timed(kv.update(EPOCH_KEY, epoch, this.epochRevision));
      this.adoptEpoch(epoch, revision);
    } catch (err) {
      if (!isWrongSequence(err)) {
        this.failed("rotate epoch", err as Error);
        return;
      }
      // someone changed it first: theirs is the new one
      await this.timed(this.loadEpoch(kv)).catch((e: Error) => this.failed("read epoch", e));
    }
  }

  private watchEpoch(kv: KV): void {
    this.watcher?.stop();
    this.watcher = undefined;
    kv.watch({ key: EPOCH_KEY, ignoreDeletes: true })
      .then((iter) => {
        if (this.stopped) {
          iter.stop();
          return;
        }
        this.watcher = iter;
        (async () => {
          for await (const e of iter) {
            if (e.operation !== "PUT") continue;
            const value = decodeOr(e.value);
            if (value !== undefined && isEpoch(value)) this.adoptEpoch(value, e.revision);
          }
        })().catch(() => {});
      })
      .catch((err: Error) => this.log.warn("failed to set up epoch watcher", { error: err.message }));
  }

  /**
   * Re-reads the epoch (the watcher's safety net) and re-runs the set-up when JetStream lost the
   * buckets (a server that came back empty, a bucket deleted by hand). `full` checks every bucket
   * and restarts the epoch watcher (after a reconnect, or a call that found something missing).
   */
  private verifySoon(full: boolean, force = false): void {
    if (this.stopped || this.initializing) return;
    const t = Date.now();
    if (!force && t - this.lastVerify < (full ? 1000 : this.heartbeatMs)) return;
    this.lastVerify = t;
    const jsm = this.jsm;
    const kv = this.epochKv;
    if (!jsm || !kv) {
      this.scheduleInit(0);
      return;
    }
    const buckets = full
      ? [SESSIONS_BUCKET, EPOCH_BUCKET, PRESENCE_BUCKET, PRESENCE_NODES_BUCKET]
      : [EPOCH_BUCKET];
    this.timed(Promise.all(buckets.map((b) => jsm.streams.info(`KV_${b}`))))
      .then(async () => {
        await this.timed(this.keepEpoch(kv));
        if (full) this.watchEpoch(kv);
      })
      .catch((err: Error) => {
        if (isStreamNotFound(err)) {
          this.log.warn("JetStream lost the broker's buckets: setting them up again");
          this.scheduleInit(0);
        } else if (!this.stopped) {
          this.errors?.inc();
          this.log.debug("NATS broker: check buckets failed", { error: err.message });
        }
      });
  }

  /** Resolves true once JetStream is ready, false after `ms` or when it cannot become ready now. */
  private whenReady(ms: number): Promise<boolean> {
    if (this.phase === "ready") return Promise.resolve(true);
    if (this.stopped || this.phase === "unavailable") return Promise.resolve(false);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.readyWaiters = this.readyWaiters.filter((w) => w !== wake);
        resolve(false);
      }, ms);
      const wake = () => {
        clearTimeout(timer);
        resolve(this.phase === "ready");
      };
      this.readyWaiters.push(wake);
    });
  }

  private wakeWaiters(): void {
    const waiters = this.readyWaiters;
    this.readyWaiters = [];
    for (const w of waiters) w();
  }

  /** Fails at once while NATS is disconnected or JetStream known unavailable; waits for a set-up running. */
  private async jetstreamReady(): Promise<void> {
    if (!this.link.up) throw new Error("NATS is not connected");
    if (!(await this.whenReady(this.timeoutMs))) throw new Error("JetStream is not available");
  }

  private async kvReady(bucket: () => KV | undefined): Promise<KV> {
    await this.jetstreamReady();
    const kv = bucket();
    if (!kv) throw new Error("JetStream is not ready");
    return kv;
  }

  // --- plumbing

  /** Hands finished publications to pub/sub in the order they came in. */
  private timed<T>(p: Promise<T>): Promise<T> {
    return withTimeout(p, this.timeoutMs, "NATS");
  }

  private historyFailed(err: Error): HistoryError {
    this.failed("read history", err);
    return historyUnavailable(err);
  }

  private brokerFailed(what: string, err: Error): BrokerError {
    this.failed(what, err);
    return operationFailed(what, err);
  }

  private failed(what: string, err: Error): void {
    if (this.stopped) return;
    this.errors?.inc();
    this.log.debug(`NATS broker: ${what} failed`, { error: err.message });
    // JetStream answering "not found" for what the broker set up: a server that lost its data
    if (
      this.phase === "ready" &&
      (isStreamNotFound(err) || isNoResponders(err) || err instanceof BrokerTimeout)
    ) {
      this.verifySoon(true);
    }
  }

  private tell(stream: string, event: PresenceEvent, sid?: string): void {
    tellPresenter(this.o.presenter, stream, event, sid);
  }
}

function isWrongSequence(err: unknown): boolean {
  return (
    err instanceof JetStreamApiError &&
    (err.code === JetStreamApiCodes.StreamWrongLastSequence ||
      err.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown)
  );
}

function isStreamNotFound(err: unknown): boolean {
  return err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound;
}

/** nats.js reports "no responders" to a JetStream publish as JetStream not enabled: no stream has the subject. */
function isNoResponders(err: unknown): boolean {
  return err instanceof Error && err.name === "JetStreamNotEnabled";
}

function decodeOr(bytes: Uint8Array): string | undefined {
  try {
    return UTF8.decode(bytes);
  } catch {
    return undefined;
  }
}

function resetCopy(copy: Copy): void {
  copy.entries = [];
  copy.firstSeq = 1;
  copy.lastSeq = 0;
  copy.from = Number.POSITIVE_INFINITY;
}

async function listKeys(kv: KV, filter?: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const key of await kv.keys(filter)) keys.push(key);
  return keys;
}
