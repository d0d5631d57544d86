// The reconnect policy every Redis-backed part shares. node-redis reconnects by itself; this sets
// its backoff to anycable-go's (broadcast/retry.ts), gives up after `max_reconnect_attempts`
// failures in a row through the Service's `fatal` callback (once), or keeps retrying with a capped
// backoff where anycable-ts chooses to, and logs one line per burst of failures (not one per
// attempt) plus one when Redis is back.
//
// With --redis_sentinels every connection goes to the master a sentinel names at that moment
// (sentinel.ts). node-redis copies its socket options when a client is built, so a client cannot
// follow the master to another host: in Sentinel mode the part gets a stable handle (a Proxy typed
// as the client) over a node-redis client that is rebuilt for every (re)connect, after asking the
// sentinels and before the part hears 'ready' (which it answers by subscribing again, as it does
// after any reconnect). node-redis's own reconnecting is off there; this file applies the same
// policy, counts and log lines itself. A connection is used only once `ROLE` says master (a
// sentinel may still name a demoted master for a moment), and every connection is closed and
// made again when the master moves (+switch-master, or a poll finding another address).
import { createClient } from "redis";
import { nextRetryMs } from "../broadcast/retry.ts";
import type { LogAttrs, Logger } from "../log/logger.ts";
import {
  clientOptions,
  describeUrl,
  hostPort,
  keepAliveOptions,
  parseRedisUrl,
  parseSentinelSetup,
  type SentinelSetup,
  targetOptions,
} from "./connection.ts";
import type { Options } from "./options.ts";
import { type MasterAddress, SentinelMonitor } from "./sentinel.ts";

export type RedisClient = ReturnType<typeof createClient>;

export type RetryPolicy =
  /** anycable-go's: fatal after this many failed attempts in a row. */
  | { kind: "limited"; maxAttempts: number }
  /** Never gives up; backoff steps beyond `capStep` repeat that step's delay. */
  | { kind: "forever"; capStep: number };

export interface SupervisorOptions {
  policy: RetryPolicy;
  /**
   * How to do without Redis, said in the fatal error when the policy gives up (e.g. "pass
   * --broadcast_adapter=http if you do not use Redis"): the server's last line.
   */
  giveUpHint?: string;
  /** Logged at info when every connection of the burst is back. */
  recovered?: string;
  recoveredAttrs?: LogAttrs;
}

interface Member {
  role: string;
  client: RedisClient;
  /** Was ready and has not failed since: the next strategy call is a dropped connection. */
  live: boolean;
}

type Listener = (...args: unknown[]) => void;

/** A Sentinel-mode connection: the part's stable handle over the node-redis client of the moment. */
interface SentinelMember extends Member {
  /** What the part holds (`client` is the node-redis client behind it now). */
  handle: RedisClient;
  /** "host:port" the current client was built for. */
  addr: string;
  /** The current client failed or was retired; a new one is due. */
  dead: boolean;
  /** ROLE said master on the current client: the handle is ready. */
  verified: boolean;
  /** Failed attempts in a row (node-redis's `retries` in the plain mode). */
  failures: number;
  started: boolean;
  timer?: ReturnType<typeof setTimeout>;
  /** The part's listeners: 'ready' is ours to emit, the others go on every client. */
  listeners: { event: string | symbol; fn: Listener }[];
}

interface SentinelState {
  setup: SentinelSetup;
  monitor: SentinelMonitor;
  members: SentinelMember[];
}

/** Errors that mean nothing answers at the address (as opposed to a Redis that refused us). */
const UNREACHABLE =
  /ECONNREFUSED|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|ECONNRESET|Connection timeout|Socket closed unexpectedly/i;

/**
 * The fatal error's text once reconnecting gave up: why, and how to do without Redis, e.g.
 * `no Redis at redis://localhost:6379; pass --broadcast_adapter=http if you do not use Redis`.
 * The cause itself is in the ERR line logged just before.
 */
export function giveUpMessage(url: string, cause: Error, hint?: string): string {
  const where = describeUrl(url);
  const why = UNREACHABLE.test(cause.message)
    ? `no Redis at ${where}`
    : `Redis at ${where} failed: ${cause.message}`;
  return hint ? `${why}; ${hint}` : why;
}

export class RedisSupervisor {
  private readonly members: Member[] = [];
  /** Roles whose connection is down; a burst lasts while this is non-empty. */
  private readonly failing = new Set<string>();
  private attemptsInBurst = 0;
  private stopped = false;
  private fatalCalled = false;
  /** Set in Sentinel mode (--redis_sentinels). */
  private readonly sentinel?: SentinelState;

  constructor(
    private readonly redis: Options,
    private readonly log: Logger,
    private readonly fatal: (err: Error) => void,
    private readonly opts: SupervisorOptions,
  ) {
    if (redis.sentinels.trim() !== "") {
      // A startup error (the part fails to start, the server exits 1), as a bad --redis_url is.
      const parsed = parseSentinelSetup(redis);
      if (!parsed.ok) throw new Error(parsed.error);
      const monitor = new SentinelMonitor(parsed.setup, {
        log,
        discoveryIntervalSec: redis.sentinelDiscoveryIntervalSec,
        keepAlive: keepAliveOptions(redis),
        onSwitch: (master, reason) => this.masterMoved(master, reason),
        busy: () => this.failing.size > 0,
      });
      this.sentinel = { setup: parsed.setup, monitor, members: [] };
      return;
    }
    const parsed = parseRedisUrl(redis.url);
    if (parsed.ok && parsed.extraUrls > 0) {
      log.warn("Redis Cluster is not supported yet by anycable-ts: connecting to the first URL only");
    }
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  /** A client (not connected yet) under this policy; `role` names it in debug lines. */
  create(role: string): RedisClient {
    if (this.sentinel) return this.createSentinelMember(role, this.sentinel);
    const member = { role, live: false } as Member;
    const client = createClient(
      clientOptions(this.redis, (retries, cause) => this.strategy(member, retries, cause)),
    );
    member.client = client;
    client.on("error", (err: Error) => {
      if (!this.stopped) this.log.debug("Redis connection error", { error: err.message, conn: role });
    });
    // node-redis emits 'terminated' once the strategy gives up (the cause carries its error); a
    // failed first connect also rejects connect(), see connect().
    client.on("terminated", (cause: unknown) =>
      this.giveUp(cause instanceof Error ? cause : new Error("Redis reconnect attempts exceeded")),
    );
    client.on("ready", () => this.ready(member));
    this.members.push(member);
    return client;
  }

  private ready(member: Member): void {
    member.live = true;
    if (this.failing.delete(member.role) && this.failing.size === 0 && !this.stopped) {
      this.log.info(this.opts.recovered ?? "reconnected to Redis", {
        ...this.opts.recoveredAttrs,
        attempts: this.attemptsInBurst,
      });
      this.attemptsInBurst = 0;
    }
  }

  /** Connects in the background: resolves at once; failures go through the policy. */
  connect(client: RedisClient): void {
    const sentinel = this.sentinel;
    if (sentinel) {
      const member = sentinel.members.find((m) => m.handle === client);
      if (!member || member.started) return;
      member.started = true;
      sentinel.monitor.start();
      void this.attempt(member, sentinel);
      return;
    }
    client.connect().catch((err: Error) => {
      if (!this.stopped) this.giveUp(err);
    });
  }

  // ---- Sentinel mode ----

  private createSentinelMember(role: string, sentinel: SentinelState): RedisClient {
    const member = {
      role,
      live: false,
      addr: "",
      dead: true,
      verified: false,
      failures: 0,
      started: false,
      listeners: [],
    } as unknown as SentinelMember;
    // Never connected: stands in until the first master is known (its commands reject as closed).
    // Built now so a bad TLS file fails the start, as in the plain mode.
    member.client = createClient(this.dataOptions(sentinel, { host: sentinel.setup.masterName, port: 6379 }));
    member.client.on("error", () => {});
    member.handle = this.handleFor(member);
    sentinel.members.push(member);
    return member.handle;
  }

  private dataOptions(sentinel: SentinelState, master: MasterAddress) {
    return targetOptions({ ...sentinel.setup.data, ...master }, this.redis, false);
  }

  /**
   * The part's view of a member: every property and method is the current client's (read at each
   * access, so a handle kept across a rebuild reaches the new client), except `isReady` (only once
   * ROLE said master) and the listener methods (kept, and moved to every new client).
   */
  private handleFor(member: SentinelMember): RedisClient {
    let handle: RedisClient;
    const on = (event: string | symbol, fn: Listener) => {
      member.listeners.push({ event, fn });
      if (event !== "ready") member.client.on(event as "error", fn);
      return handle;
    };
    const off = (event: string | symbol, fn: Listener) => {
      const i = member.listeners.findIndex((l) => l.event === event && l.fn === fn);
      if (i >= 0) member.listeners.splice(i, 1);
      if (event !== "ready") member.client.off(event as "error", fn);
      return handle;
    };
    handle = new Proxy({} as RedisClient, {
      get(_target, prop) {
        switch (prop) {
          case "isReady":
            return member.verified && member.client.isReady;
          case "on":
          case "addListener":
            return on;
          case "off":
          case "removeListener":
            return off;
        }
        const client = member.client;
        const value: unknown = Reflect.get(client, prop, client);
        return typeof value === "function" ? value.bind(client) : value;
      },
    });
    return handle;
  }

  /** Asks the sentinels where the master is, then connects a new client there. */
  private async attempt(member: SentinelMember, sentinel: SentinelState): Promise<void> {
    member.timer = undefined;
    if (this.stopped) return;
    let master: MasterAddress;
    try {
      master = await sentinel.monitor.resolve();
    } catch (err) {
      if (!this.stopped && !member.timer) this.failed(member, sentinel, err as Error);
      return;
    }
    if (this.stopped || member.timer || !member.dead) return;
    let client: RedisClient;
    try {
      client = createClient(this.dataOptions(sentinel, master));
    } catch (err) {
      this.failed(member, sentinel, err as Error);
      return;
    }
    const addr = hostPort(master);
    member.client = client;
    member.addr = addr;
    member.dead = false;
    member.verified = false;
    for (const l of member.listeners) if (l.event !== "ready") client.on(l.event as "error", l.fn);
    client.on("error", (err: Error) => {
      if (!this.stopped) this.log.debug("Redis connection error", { error: err.message, conn: member.role });
    });
    client.on("terminated", (cause: unknown) =>
      this.clientDied(member, sentinel, client, cause instanceof Error ? cause : new Error(String(cause))),
    );
    client.on("ready", () => void this.verify(member, sentinel, client, addr));
    client.connect().catch((err: Error) => this.clientDied(member, sentinel, client, err));
  }

  /** A sentinel may name a master that has just been demoted: use the connection only if ROLE agrees. */
  private async verify(
    member: SentinelMember,
    sentinel: SentinelState,
    client: RedisClient,
    addr: string,
  ): Promise<void> {
    try {
      const reply = await client.sendCommand(["ROLE"]);
      const role = Array.isArray(reply) ? String(reply[0]) : String(reply);
      if (role !== "master") throw new Error(`${addr} is not the master (ROLE: ${role})`);
    } catch (err) {
      const message = (err as Error).message ?? "";
      // A user whose ACL forbids ROLE: trust the sentinel.
      if (!/^(NOPERM|ERR unknown command)/.test(message)) {
        this.clientDied(member, sentinel, client, err as Error);
        return;
      }
    }
    if (this.stopped || member.client !== client || member.dead) return;
    member.verified = true;
    member.failures = 0;
    this.ready(member);
    for (const l of [...member.listeners]) if (l.event === "ready") l.fn();
  }

  /** The current client failed (or was retired): count it under the policy and go again. */
  private clientDied(
    member: SentinelMember,
    sentinel: SentinelState,
    client: RedisClient,
    cause: Error,
    immediate = false,
  ): void {
    if (this.stopped || member.client !== client || member.dead) return;
    member.dead = true;
    member.verified = false;
    client.destroy();
    this.failed(member, sentinel, cause, immediate);
  }

  private failed(member: SentinelMember, sentinel: SentinelState, cause: Error, immediate = false): void {
    const dropped = member.live;
    const next = this.strategy(member, member.failures++, cause);
    if (next === false) return;
    if (next instanceof Error) {
      this.giveUp(next);
      return;
    }
    // As node-redis does, a dropped connection is made again at once; so is one the master left.
    const delay = dropped || immediate ? 0 : next;
    member.timer = setTimeout(() => void this.attempt(member, sentinel), delay);
  }

  /** The master moved: connections elsewhere are made again there, waiting ones go now. */
  private masterMoved(master: MasterAddress, reason: string): void {
    const sentinel = this.sentinel;
    if (!sentinel || this.stopped) return;
    const addr = hostPort(master);
    for (const member of sentinel.members) {
      if (!member.started) continue;
      if (member.timer) {
        clearTimeout(member.timer);
        member.timer = undefined;
        void this.attempt(member, sentinel);
      } else if (!member.dead && member.addr !== addr) {
        const error = new Error(`master ${sentinel.setup.masterName} moved to ${addr} (${reason})`);
        this.clientDied(member, sentinel, member.client, error, true);
      }
    }
  }

  private strategy(member: Member, retries: number, cause: Error): number | false | Error {
    if (this.stopped) return false;
    const { policy } = this.opts;
    if (policy.kind === "limited" && retries >= policy.maxAttempts) {
      return new Error(`Redis reconnect attempts exceeded (${cause.message})`);
    }
    const step = policy.kind === "forever" ? Math.min(retries, policy.capStep) : retries;
    const delay = nextRetryMs(step);
    // node-redis reconnects a dropped connection at once (the delay of that first call is unused).
    const dropped = member.live;
    member.live = false;
    this.attemptsInBurst++;
    const msg = dropped
      ? "lost connection to Redis, reconnecting"
      : `next Redis reconnect attempt in ${delay / 1000}s`;
    const first = this.failing.size === 0;
    this.failing.add(member.role);
    // The first failure of a burst at WARN, as anycable-go logs a failed Redis connection.
    if (first) this.log.warn(msg, { error: cause.message });
    else this.log.debug(msg, { error: cause.message, conn: member.role });
    return delay;
  }

  private giveUp(err: Error): void {
    if (this.stopped || this.fatalCalled) return;
    this.fatalCalled = true;
    this.log.error("failed to reconnect to Redis: attempts exceeded", { error: err.message });
    this.fatal(new Error(giveUpMessage(this.redis.url, err, this.opts.giveUpHint), { cause: err }));
  }

  /** Stops reconnecting and closes every connection (gracefully when it is up). */
  async close(): Promise<void> {
    this.stopped = true;
    const sentinel = this.sentinel;
    if (sentinel) {
      await sentinel.monitor.close();
      for (const m of sentinel.members) if (m.timer) clearTimeout(m.timer);
      this.members.push(...sentinel.members.splice(0));
    }
    await Promise.all(
      this.members.splice(0).map(async ({ client }) => {
        try {
          if (client.isReady) await client.close();
          else client.destroy();
        } catch {
          // already closed
        }
      }),
    );
  }
}
