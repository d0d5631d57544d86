// The Redis broker (--broker=redis; AnyCable Pro's idea, in the open): stream history, offsets and
// epochs, session snapshots and presence kept in Redis, so every node of a cluster serves the same
// history, restores any node's sessions and shows one presence list. Works on Redis 7.0 and Valkey
// (no hash-field expiry; see redis_scripts.ts for the layout).
//
// Time: deadlines and history ages come from this node's clock (the `now` option), compared on
// every read, so expiry is exact to the second on any Redis version; the keys' own TTLs only
// collect what nobody touches again. Nodes' clocks are assumed in step (NTP), as for any TTL.
//
// No socket callback waits on Redis beyond CALL_TIMEOUT_MS: a history request, a restore or a
// presence call that takes longer gets an error value (reject_history, a fresh session), and with
// Redis down node-redis refuses commands at once (no offline queue). Publications keep their order
// per node: each waits for its offset behind the ones before it; one Redis cannot give an offset to
// in time is delivered without one (live delivery never stalls behind Redis; a client that resumes
// from an earlier offset later gets reject_history rather than a gap it cannot see).
import type { RemoteCommand, StreamMessage, StreamPublication } from "../broadcast/publication.ts";
import { nanoid } from "../http/request.ts";
import type { Logger } from "../log/logger.ts";
import type { Counter, Metrics } from "../metrics/registry.ts";
import type { PubSub } from "../pubsub/pubsub.ts";
import { describeTarget } from "../redis/connection.ts";
import type { Options as RedisOptions } from "../redis/options.ts";
import { type RedisClient, RedisSupervisor } from "../redis/supervisor.ts";
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
import { BrokerTimeout, OrderedDelivery, withTimeout } from "./ordered_delivery.ts";
import {
  DROP_IDLE_STREAMS,
  HISTORY_ALL,
  HISTORY_FROM,
  PRESENCE_ADD,
  PRESENCE_EXPIRE,
  PRESENCE_REMOVE,
  PUBLISH,
  type Script,
  SESSION_DEADLINE_DIGITS,
  TOUCH_SESSIONS,
} from "./redis_scripts.ts";

export interface RedisBrokerOptions {
  redis: RedisOptions;
  pubsub: PubSub;
  presenter?: Presenter;
  historyLimit: number;
  historyTtlSec: number;
  /** 0: sessions are not kept. */
  sessionsTtlSec: number;
  presenceTtlSec: number;
  /** Every key starts with it (default `_ac_:`), so several cables can share one Redis database. */
  keyPrefix?: string;
  /** The clock in ms (tests move it by hand). */
  now?: () => number;
  /** How long a call may take before its caller gets an error value (default CALL_TIMEOUT_MS). */
  callTimeoutMs?: number;
}

/** Longest wait of a socket path on Redis (history, restore, presence) and of an offset. */
export const CALL_TIMEOUT_MS = 2000;
/** A stream's offset outlives its history this many TTLs, so an idle stream keeps its numbering. */
const OFFSETS_KEEP_TTLS = 10;
/** Sessions swept per expiry script call (a tick repeats while a batch comes back full). */
const EXPIRE_BATCH = 128;
const EXPIRE_ROUNDS = 8;
export const ERRORS_METRIC = "broker_errors_total";

type Reply = unknown;

export class RedisBroker implements Broker {
  readonly name = "broker (redis)";
  readonly supportsHistory = true;
  readonly supportsPresence = true;

  private readonly log: Logger;
  private readonly now: () => number;
  private readonly prefix: string;
  private readonly timeoutMs: number;
  private readonly historyTtlMs: number;
  private readonly sessionsTtlMs: number;
  private readonly presenceTtlMs: number;
  private readonly errors: Counter | undefined;
  private supervisor?: RedisSupervisor;
  private client?: RedisClient;
  /** Publications waiting for their offsets, in the order they were handed in. */
  private readonly outgoing: OrderedDelivery;
  private sweeping: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly o: RedisBrokerOptions,
    logger: Logger,
    metrics?: Metrics,
  ) {
    this.log = logger.with({ context: "broker" });
    this.now = o.now ?? Date.now;
    this.prefix = o.keyPrefix ?? "_ac_:";
    this.timeoutMs = o.callTimeoutMs ?? CALL_TIMEOUT_MS;
    this.outgoing = new OrderedDelivery((m) => o.pubsub.broadcast(m), this.timeoutMs);
    this.historyTtlMs = o.historyTtlSec * 1000;
    this.sessionsTtlMs = o.sessionsTtlSec * 1000;
    this.presenceTtlMs = o.presenceTtlSec * 1000;
    this.errors = metrics?.counter(
      ERRORS_METRIC,
      "The total number of broker operations that failed (engine unreachable, slow or holding foreign data)",
    );
  }

  announce(): string {
    return (
      `Using Redis broker at ${describeTarget(this.o.redis)} (history limit: ${this.o.historyLimit}, ` +
      `history ttl: ${this.o.historyTtlSec}s, sessions ttl: ${this.o.sessionsTtlSec}s, ` +
      `presence ttl: ${this.o.presenceTtlSec}s)`
    );
  }

  /**
   * Connects and waits for the connection at most CALL_TIMEOUT_MS, so the first clients get their
   * history; then keeps retrying in the background (without Redis the node serves live messages).
   */
  async start(fatal: (err: Error) => void): Promise<void> {
    if (this.supervisor) return;
    const supervisor = new RedisSupervisor(this.o.redis, this.log, fatal, {
      policy: { kind: "forever", capStep: 6 },
      recovered: "reconnected to Redis (broker)",
    });
    this.supervisor = supervisor;
    const client = supervisor.create("broker");
    this.client = client;
    const ready = new Promise<void>((resolve) => client.once("ready", resolve));
    supervisor.connect(client);
    this.log.info(`Starting Redis broker: ${describeTarget(this.o.redis)}`);
    await this.timed(ready).catch(() => {
      this.log.warn("Redis is unreachable: the broker keeps retrying; history and sessions wait for it");
    });
  }

  async shutdown(_deadline?: AbortSignal): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    // What still waits for an offset goes out without one rather than not at all.
    this.outgoing.flushAll();
    await this.supervisor?.close();
  }

  /** The client is connected (for tests and readiness). */
  get connected(): boolean {
    return this.client?.isReady === true;
  }

  handleBroadcast(publication: StreamPublication): void {
    const slot = this.outgoing.add(publication);
    if (publication.transient || this.stopped) {
      this.outgoing.settle(slot, publication);
      return;
    }
    const now = this.now();
    const k = this.prefix;
    this.call(
      PUBLISH,
      [`${k}epoch`, `${k}o`, `${k}oi`, `${k}maxo`, `${k}dropped`, `${k}h:${publication.stream}`],
      [
        publication.stream,
        publication.dataJson,
        String(now),
        String(Math.max(1, this.o.historyLimit)),
        String(Math.max(1000, this.historyTtlMs)),
        nanoid(4),
        String(this.oldestKept(now)),
      ],
    ).then(
      (reply) => {
        const [epoch, offset] = reply as [unknown, unknown];
        if (typeof epoch === "string" && typeof offset === "number") {
          this.outgoing.settle(slot, { ...publication, offset, epoch });
        } else {
          this.failed("publish", new Error(`unexpected reply ${JSON.stringify(reply)}`));
          this.outgoing.settle(slot, publication);
        }
      },
      (err: Error) => {
        this.failed("publish", err);
        this.outgoing.settle(slot, publication);
      },
    );
  }

  handleCommand(command: RemoteCommand): void {
    this.pubsub.broadcastCommand(command);
  }

  async historyFrom(stream: string, epoch: string, offset: number): Promise<StreamMessage[] | HistoryError> {
    if (!Number.isSafeInteger(offset) || offset < 0) return { error: `invalid offset: ${offset}` };
    if (typeof epoch !== "string" || epoch === "") return { error: `unknown epoch: ${epoch}` };
    let reply: Reply;
    try {
      reply = await this.timed(
        this.call(
          HISTORY_FROM,
          [`${this.prefix}epoch`, `${this.prefix}o`, `${this.prefix}h:${stream}`],
          [stream, epoch, String(offset), String(this.oldestKept(this.now()))],
        ),
      );
    } catch (err) {
      return this.historyFailed(err as Error);
    }
    const [status, value] = reply as [string, unknown];
    switch (status) {
      case "epoch":
        return { error: `unknown epoch: ${epoch}, current: ${value}` };
      case "none":
        return { error: "stream not found" };
      case "empty":
        return { error: "stream is empty" };
      case "low":
        return { error: `requested offset couldn't be found: ${offset}, lowest: ${value}` };
      case "latest":
        return { error: `requested offset couldn't be found: ${offset}, latest: ${value}` };
      case "ok":
        return this.entries(stream, epoch, value);
      default:
        return this.historyFailed(new Error(`unexpected reply ${JSON.stringify(reply)}`));
    }
  }

  async historySince(stream: string, sinceUnixSec: number): Promise<StreamMessage[] | HistoryError> {
    if (Number.isNaN(sinceUnixSec)) return { error: "invalid since" };
    let reply: Reply;
    try {
      reply = await this.timed(
        this.call(
          HISTORY_ALL,
          [`${this.prefix}epoch`, `${this.prefix}h:${stream}`],
          [String(this.oldestKept(this.now()))],
        ),
      );
    } catch (err) {
      return this.historyFailed(err as Error);
    }
    const [epoch, entries] = reply as [unknown, unknown];
    if (typeof epoch !== "string") return [];
    const all = this.entries(stream, epoch, entries, sinceUnixSec * 1000);
    return all;
  }

  async commitSession(sid: string, snapshot: string): Promise<void> {
    if (this.sessionsTtlMs <= 0 || !this.client) return;
    try {
      await this.timed(
        this.client.set(`${this.prefix}s:${sid}`, this.deadline(this.sessionsTtlMs) + snapshot, {
          expiration: { type: "PX", value: this.sessionsTtlMs },
        }),
      );
    } catch (err) {
      this.failed("commit session", err as Error);
    }
  }

  async restoreSession(sid: string): Promise<string | undefined> {
    if (this.sessionsTtlMs <= 0 || !this.client) return undefined;
    try {
      const value = await this.timed(this.client.get(`${this.prefix}s:${sid}`));
      if (typeof value !== "string") return undefined;
      const deadline = value.slice(0, SESSION_DEADLINE_DIGITS);
      if (!/^\d+$/.test(deadline)) {
        this.failed("restore session", new Error("skipping a foreign session value"));
        return undefined;
      }
      if (!(Number(deadline) > this.now())) return undefined;
      return value.slice(SESSION_DEADLINE_DIGITS);
    } catch (err) {
      this.failed("restore session", err as Error);
      return undefined;
    }
  }

  touchSessions(sids: readonly string[]): void {
    if (this.sessionsTtlMs <= 0 || sids.length === 0 || !this.client?.isReady) return;
    this.call(
      TOUCH_SESSIONS,
      sids.map((sid) => `${this.prefix}s:${sid}`),
      [this.deadline(this.sessionsTtlMs), String(this.sessionsTtlMs)],
    ).catch((err: Error) => this.failed("touch sessions", err));
  }

  /** now + ttl as the fixed-width text in front of a session snapshot. */
  private deadline(ttlMs: number): string {
    return String(this.now() + ttlMs).padStart(SESSION_DEADLINE_DIGITS, "0");
  }

  async presenceAdd(
    stream: string,
    sid: string,
    pid: string,
    info: unknown,
  ): Promise<PresenceEvent | undefined | BrokerError> {
    const problem = presenceProblem(pid, info);
    if (problem) return problem;
    const infoJson = info === undefined || info === null ? "" : JSON.stringify(info);
    let reply: Reply;
    try {
      reply = await this.timed(
        this.call(
          PRESENCE_ADD,
          [
            `${this.prefix}pi:${stream}`,
            `${this.prefix}ps:${stream}`,
            `${this.prefix}pn:${stream}`,
            `${this.prefix}pss:${sid}`,
            `${this.prefix}pd`,
          ],
          [stream, sid, pid, infoJson, String(this.now() + this.presenceTtlMs)],
        ),
      );
    } catch (err) {
      return this.brokerFailed("presence add", err as Error);
    }
    const [status] = reply as [string];
    if (status === "mismatch") return { error: "presence ID mismatch" };
    if (status !== "join") return undefined;
    const event = withInfo<PresenceEvent>({ type: "join", id: pid }, info);
    this.tell(stream, event, sid);
    return event;
  }

  async presenceRemove(stream: string, sid: string): Promise<PresenceEvent | undefined | BrokerError> {
    let reply: Reply;
    try {
      reply = await this.timed(this.call(PRESENCE_REMOVE, [], [this.prefix, stream, sid]));
    } catch (err) {
      return this.brokerFailed("presence remove", err as Error);
    }
    const [status, pid] = reply as [string, unknown];
    if (status === "nostream") return { error: "stream not found" };
    if (status === "norecord") return { error: "presence info not found" };
    if (status !== "leave" || typeof pid !== "string") return undefined;
    const event: PresenceEvent = { type: "leave", id: pid };
    this.tell(stream, event);
    return event;
  }

  async presenceInfo(
    stream: string,
    options: { returnRecords: boolean },
  ): Promise<PresenceInfo | BrokerError> {
    if (!this.client) return { error: "broker is not started" };
    const key = `${this.prefix}pi:${stream}`;
    try {
      if (!options.returnRecords) {
        return { type: "info", total: await this.timed(this.client.hLen(key)) };
      }
      const all = (await this.timed(this.client.hGetAll(key))) as Record<string, string>;
      const records: PresenceRecord[] = [];
      for (const [id, json] of Object.entries(all)) {
        records.push(withInfo({ id }, this.parseInfo(json)));
      }
      // anycable-go omits an empty records list (omitempty).
      return records.length === 0
        ? { type: "info", total: 0 }
        : { type: "info", total: records.length, records };
    } catch (err) {
      return this.brokerFailed("presence info", err as Error);
    }
  }

  touchPresence(sids: readonly string[]): void {
    if (sids.length === 0 || !this.client?.isReady) return;
    const deadline = this.now() + this.presenceTtlMs;
    // XX: only sessions that still have records get a new deadline; no others are created.
    this.client
      .zAdd(
        `${this.prefix}pd`,
        sids.map((value) => ({ score: deadline, value })),
        { condition: "XX" },
      )
      .catch((err: Error) => this.failed("touch presence", err));
  }

  expire(nowMs: number): void {
    const gaveUp = this.outgoing.expireSlow(performance.now());
    if (gaveUp > 0) {
      this.failed(
        "publish",
        new BrokerTimeout(`${gaveUp} publication(s) sent without offsets: Redis is slow`),
      );
    }
    // A tick while the last sweep still runs is skipped: sweeps never pile up behind a slow Redis.
    if (!this.sweeping) void this.expireNow(nowMs);
  }

  /**
   * Drops idle streams' offsets and expired presence records (after the sweep running, if any);
   * resolves when the leaves were told.
   */
  async expireNow(nowMs: number): Promise<void> {
    while (this.sweeping) await this.sweeping;
    this.sweeping = this.sweep(nowMs).finally(() => {
      this.sweeping = undefined;
    });
    return this.sweeping;
  }

  private async sweep(nowMs: number): Promise<void> {
    if (!this.client?.isReady) return;
    const k = this.prefix;
    try {
      const idleBefore = nowMs - OFFSETS_KEEP_TTLS * this.historyTtlMs;
      await this.timed(
        this.call(DROP_IDLE_STREAMS, [`${k}o`, `${k}oi`, `${k}dropped`], [String(idleBefore), "1000"]),
      );
    } catch (err) {
      this.failed("drop idle streams", err as Error);
    }
    try {
      for (let round = 0; round < EXPIRE_ROUNDS; round++) {
        const flat = (await this.timed(
          this.call(PRESENCE_EXPIRE, [], [this.prefix, String(nowMs), String(EXPIRE_BATCH)]),
        )) as unknown[];
        for (let i = 0; i + 1 < flat.length; i += 2) {
          this.tell(String(flat[i]), { type: "leave", id: String(flat[i + 1]) });
        }
        if (flat.length < 2 * EXPIRE_BATCH) break;
      }
    } catch (err) {
      this.failed("presence expiry", err as Error);
    }
  }

  private get pubsub(): PubSub {
    return this.o.pubsub;
  }

  /** The time (ms) of the oldest entry still within the history TTL, at second precision. */
  private oldestKept(nowMs: number): number {
    return (Math.floor(nowMs / 1000) - this.o.historyTtlSec) * 1000;
  }

  /** Runs a script by its SHA, loading it when Redis does not know it (a restart, a flush). */
  private async call(s: Script, keys: string[], args: string[]): Promise<Reply> {
    const client = this.client;
    if (!client) throw new Error("broker is not started");
    try {
      return await client.evalSha(s.sha, { keys, arguments: args });
    } catch (err) {
      if (!String((err as Error).message).startsWith("NOSCRIPT")) throw err;
      return await client.eval(s.source, { keys, arguments: args });
    }
  }

  private timed<T>(p: Promise<T>): Promise<T> {
    return withTimeout(p, this.timeoutMs, "Redis");
  }

  /** History entries ([id, [field, value...]]) → messages; foreign entries are skipped and counted. */
  private entries(stream: string, epoch: string, raw: unknown, sinceMs = -Infinity): StreamMessage[] {
    const out: StreamMessage[] = [];
    if (!Array.isArray(raw)) return out;
    for (const entry of raw) {
      const parsed = parseEntry(entry);
      if (!parsed) {
        this.failed("read history", new Error(`skipping a foreign entry in stream ${stream}`));
        continue;
      }
      if (parsed.t < sinceMs) continue;
      out.push({ stream, dataJson: parsed.d, offset: parsed.offset, epoch });
    }
    return out;
  }

  private parseInfo(json: string): unknown {
    if (json === "") return undefined;
    try {
      return JSON.parse(json);
    } catch {
      this.failed("read presence", new Error("skipping foreign presence info"));
      return undefined;
    }
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
    this.log.debug(`Redis broker: ${what} failed`, { error: err.message });
  }

  private tell(stream: string, event: PresenceEvent, sid?: string): void {
    tellPresenter(this.o.presenter, stream, event, sid);
  }
}

function parseEntry(entry: unknown): { offset: number; d: string; t: number } | undefined {
  if (!Array.isArray(entry) || entry.length < 2) return undefined;
  const [id, fields] = entry as [unknown, unknown];
  const m = typeof id === "string" ? /^0-(\d+)$/.exec(id) : null;
  if (!m || !Array.isArray(fields)) return undefined;
  let d: string | undefined;
  let t = Number.NaN;
  for (let i = 0; i + 1 < fields.length; i += 2) {
    if (fields[i] === "d") d = String(fields[i + 1]);
    else if (fields[i] === "t") t = Number(fields[i + 1]);
  }
  if (d === undefined || Number.isNaN(t)) return undefined;
  return { offset: Number(m[1]), d, t };
}
