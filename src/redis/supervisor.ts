// The reconnect policy every Redis-backed part shares. node-redis reconnects by itself; this sets
// its backoff to anycable-go's (broadcast/retry.ts), gives up after `max_reconnect_attempts`
// failures in a row through the Service's `fatal` callback (once), or keeps retrying with a capped
// backoff where anycable-ts chooses to, and logs one line per burst of failures (not one per
// attempt) plus one when Redis is back.
import { createClient } from "redis";
import { nextRetryMs } from "../broadcast/retry.ts";
import type { LogAttrs, Logger } from "../log/logger.ts";
import { clientOptions, describeUrl, parseRedisUrl } from "./connection.ts";
import type { Options } from "./options.ts";

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

  constructor(
    private readonly redis: Options,
    private readonly log: Logger,
    private readonly fatal: (err: Error) => void,
    private readonly opts: SupervisorOptions,
  ) {
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
    client.on("ready", () => {
      member.live = true;
      if (this.failing.delete(role) && this.failing.size === 0 && !this.stopped) {
        this.log.info(this.opts.recovered ?? "reconnected to Redis", {
          ...this.opts.recoveredAttrs,
          attempts: this.attemptsInBurst,
        });
        this.attemptsInBurst = 0;
      }
    });
    this.members.push(member);
    return client;
  }

  /** Connects in the background: resolves at once; failures go through the policy. */
  connect(client: RedisClient): void {
    client.connect().catch((err: Error) => {
      if (!this.stopped) this.giveUp(err);
    });
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
    if (first) this.log.info(msg, { error: cause.message });
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
