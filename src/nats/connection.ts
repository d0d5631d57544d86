// One NATS connection (nats.js, node transport: it runs under Bun and Deno), configured the way
// anycable-go configures nats.go for its NATS pub/sub and broadcaster: RetryOnFailedConnect (the
// server starts without NATS and keeps trying), MaxReconnects(nats.max_reconnect_attempts) per
// server, 2 s between attempts, DontRandomize on request. nats.js resubscribes by itself after a
// reconnect. While the connection is down nothing is queued: publishes are dropped (nats.js would
// keep them in a buffer that only a new connection attempt empties).
import { connect, type NatsConnection, type Status } from "@nats-io/transport-node";
import type { Logger } from "../log/logger.ts";
import { describeServers, type Options } from "./options.ts";

/** nats.go's defaults (ReconnectWait, ReconnectJitter), which anycable-go keeps. */
export const RECONNECT_WAIT_MS = 2000;
const RECONNECT_JITTER_MS = 100;

export interface LinkHooks {
  /** Connected: the first time (`first`) or again after the connection was lost. */
  connected(nc: NatsConnection, first: boolean): void;
  /** The connection was lost (nats.js reconnects in the background). */
  disconnected?(): void;
}

export class NatsLink {
  private nc?: NatsConnection;
  private stopped = false;
  private timer?: ReturnType<typeof setTimeout>;
  private failed = false;
  private _up = false;

  constructor(
    private readonly opts: Options,
    private readonly log: Logger,
    private readonly hooks: LinkHooks,
  ) {}

  /** Connected right now: publishing and subscribing reach the server. */
  get up(): boolean {
    return this._up && !this.stopped;
  }

  get connection(): NatsConnection | undefined {
    return this.nc;
  }

  get serversText(): string {
    return describeServers(this.opts);
  }

  /** Starts connecting in the background; `fatal` once the attempts are exhausted. */
  start(fatal: (err: Error) => void): void {
    this.stopped = false;
    this.failed = false;
    this.attempt(0, fatal);
  }

  private attempt(failures: number, fatal: (err: Error) => void): void {
    if (this.stopped) return;
    const { opts } = this;
    connect({
      servers: opts.servers,
      user: opts.user,
      pass: opts.pass,
      token: opts.token,
      noRandomize: opts.dontRandomize,
      maxReconnectAttempts: opts.maxReconnectAttempts < 0 ? -1 : opts.maxReconnectAttempts,
      reconnectTimeWait: RECONNECT_WAIT_MS,
      reconnectJitter: RECONNECT_JITTER_MS,
      // our own loop below retries the first connection with the same limit nats.go applies
      waitOnFirstConnect: false,
      name: "anycable-ts",
    }).then(
      (nc) => {
        if (this.stopped) {
          nc.close().catch(() => {});
          return;
        }
        this.nc = nc;
        this._up = true;
        this.watch(nc, fatal);
        this.hooks.connected(nc, true);
      },
      (err: Error) => {
        if (this.stopped) return;
        this.log.warn("connection failed", { error: err.message });
        // nats.go with RetryOnFailedConnect: the first attempt, then MaxReconnects more
        const max = opts.maxReconnectAttempts;
        if (max >= 0 && failures >= max) {
          this.giveUp(
            new Error(`NATS connection failed after ${failures + 1} attempts: ${err.message}`),
            fatal,
          );
          return;
        }
        const wait = RECONNECT_WAIT_MS + Math.floor(Math.random() * (RECONNECT_JITTER_MS + 1));
        this.timer = setTimeout(() => this.attempt(failures + 1, fatal), wait);
      },
    );
  }

  private watch(nc: NatsConnection, fatal: (err: Error) => void): void {
    (async () => {
      for await (const s of nc.status()) this.onStatus(s, nc);
    })().catch(() => {});
    nc.closed().then((err) => {
      this._up = false;
      if (this.stopped) return;
      const reason = err instanceof Error ? err.message : "connection closed";
      this.giveUp(new Error(`NATS reconnect attempts exceeded (${reason})`), fatal);
    });
  }

  private onStatus(s: Status, nc: NatsConnection): void {
    if (this.stopped) return;
    switch (s.type) {
      case "disconnect":
        this._up = false;
        this.log.warn("connection failed", { server: s.server });
        this.hooks.disconnected?.();
        break;
      case "reconnect":
        this._up = true;
        this.log.info("connection restored", { url: s.server });
        this.hooks.connected(nc, false);
        break;
      case "error":
        this.log.warn("NATS error", { error: s.error.message });
        break;
      default:
        break;
    }
  }

  private giveUp(err: Error, fatal: (err: Error) => void): void {
    if (this.failed || this.stopped) return;
    this.failed = true;
    this.log.error(err.message);
    fatal(err);
  }

  /** Publishes when connected; false (and nothing queued) when not, or when NATS refuses it. */
  publish(subject: string, payload: string): boolean {
    const nc = this.nc;
    if (!nc || !this.up) return false;
    try {
      nc.publish(subject, payload);
      return true;
    } catch (err) {
      this.log.error("failed to publish message", { error: (err as Error).message });
      return false;
    }
  }

  /** Resolves once what was sent so far has reached the server (a PING/PONG round trip). */
  async flush(): Promise<void> {
    if (this.nc && this.up) await this.nc.flush();
  }

  async shutdown(): Promise<void> {
    this.stopped = true;
    this._up = false;
    clearTimeout(this.timer);
    const nc = this.nc;
    this.nc = undefined;
    if (nc && !nc.isClosed()) await nc.close().catch(() => {});
  }
}
