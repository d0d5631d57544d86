// The Controller the session core talks to when the application is reached over RPC: bounded
// concurrency, retries, deadlines, anycable-go's metrics, and conversions to and from the wire.
import { Code, ConnectError } from "@connectrpc/connect";
import { BurstLog } from "../log/burst_log.ts";
import type { Logger } from "../log/logger.ts";
import type { Counter, Metrics } from "../metrics/registry.ts";
import type {
  ChannelContext,
  CommandResult,
  ConnectionContext,
  ConnectResult,
  Controller,
} from "../node/controller.ts";
import { AdaptiveConcurrency, type AdaptiveOptions } from "./adaptive.ts";
import type { RpcClient } from "./client.ts";
import {
  ApplicationError,
  type CommandName,
  checkDisconnect,
  commandRequest,
  commandResult,
  connectRequest,
  connectResult,
  disconnectRequest,
} from "./convert.ts";
import { Limiter } from "./limiter.ts";
import { type RetryPolicy, withRetry } from "./retry.ts";

export interface RpcControllerOptions extends RetryPolicy {
  client: RpcClient;
  /** The fixed limit, or the starting one when `adaptive` is given. */
  concurrency: number;
  /** Adaptive concurrency (--rpc_concurrency=0): the limit moves within these bounds. */
  adaptive?: AdaptiveOptions;
  metrics: Metrics;
  logger: Logger;
  /** The "RPC controller initialized: ..." line, logged once the client is ready. */
  announce?: string;
  /** Injectable for tests. */
  sleep?: (ms: number) => Promise<void>;
}

export class RpcController implements Controller {
  readonly limiter: Limiter;
  private readonly adaptive: AdaptiveConcurrency | undefined;
  /** ResourceExhausted answers since the last adaptive step. */
  private exhausted = 0;
  private readonly log: Logger;
  private readonly burst: BurstLog;
  private readonly inflight = new Set<Promise<unknown>>();
  private readonly m: {
    calls: Counter;
    retries: Counter;
    errors: Counter;
    timeouts: Counter;
    canceled: Counter;
  };

  constructor(private readonly opts: RpcControllerOptions) {
    this.log = opts.logger.with({ context: "rpc" });
    this.burst = new BurstLog(this.log);
    this.adaptive = opts.adaptive ? new AdaptiveConcurrency(opts.adaptive) : undefined;
    this.limiter = new Limiter(this.adaptive?.capacity ?? opts.concurrency);
    const metrics = opts.metrics;
    // registered only in adaptive mode, as AnyCable Pro does
    const capacity = this.adaptive
      ? metrics.gauge("rpc_capacity_num", "The max number of concurrent RPC calls allowed")
      : undefined;
    this.m = {
      calls: metrics.counter("rpc_call_total", "The total number of RPC calls"),
      retries: metrics.counter("rpc_retries_total", "The total number of RPC call retries"),
      errors: metrics.counter("rpc_error_total", "The total number of failed RPC calls"),
      timeouts: metrics.counter("rpc_timeout_total", "The total number of RPC call that timed out"),
      // calls of sessions that closed while the call waited for a slot or was in flight
      canceled: metrics.counter("rpc_canceled_total", "The total number of canceled RPC calls"),
    };
    const pending = metrics.gauge("rpc_pending_num", "The number of pending RPC calls");
    const conns =
      opts.client.impl === "grpc"
        ? metrics.gauge("grpc_active_conn_num", "The number of active HTTP connections used by gRPC")
        : undefined;
    metrics.onCollect(() => {
      pending.set(this.limiter.pending);
      capacity?.set(this.limiter.capacity);
      if (conns) conns.set(opts.client.activeConnections?.() ?? 0);
    });
  }

  /**
   * One step of adaptive concurrency, run by the cable's ticker (ADAPTIVE_INTERVAL_MS): the limit
   * for the next interval from the ResourceExhausted answers and the backlog of this one.
   */
  adapt(): void {
    if (!this.adaptive) return;
    const before = this.limiter.capacity;
    const next = this.adaptive.next({
      exhausted: this.exhausted,
      pending: this.limiter.pending,
      busy: this.limiter.busy,
    });
    this.exhausted = 0;
    if (next === before) return;
    this.limiter.setCapacity(next);
    this.log.debug("RPC concurrency changed", { from: before, to: next });
  }

  async start(): Promise<void> {
    await (this.opts.client as { start?: () => Promise<void> }).start?.();
    if (this.opts.announce) this.log.info(this.opts.announce);
  }

  /** Lets calls in flight finish (at most one command timeout), then closes the connections. */
  async shutdown(): Promise<void> {
    const busy = this.inflight.size;
    if (busy > 0) {
      this.log.info("waiting for active RPC calls to finish", { num: busy });
      const wait = Math.max(this.opts.commandTimeoutMs, this.opts.requestTimeoutMs, 1000);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timedOut = await Promise.race([
        Promise.allSettled([...this.inflight]).then(() => false),
        new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(true), wait);
        }),
      ]);
      clearTimeout(timer);
      if (timedOut) this.log.warn(`terminated while completing active RPC calls: ${this.inflight.size}`);
      else this.log.info("all active RPC calls finished");
    }
    await this.opts.client.close();
  }

  /** Resolves `null` when the session closed first (`ctx.signal`): the call was dropped or cancelled. */
  authenticate(ctx: ConnectionContext): Promise<ConnectResult | null> {
    const { sid, signal } = ctx;
    const req = connectRequest(ctx.env);
    return this.run("Connect", sid, true, signal, async () => {
      const res = await this.retry(sid, signal, (timeoutMs) =>
        this.opts.client.connect(req, { sid, timeoutMs, signal }),
      );
      return connectResult(res);
    });
  }

  subscribe(ctx: ChannelContext): Promise<CommandResult | null> {
    return this.command(ctx, "subscribe", undefined);
  }

  unsubscribe(ctx: ChannelContext): Promise<CommandResult | null> {
    return this.command(ctx, "unsubscribe", undefined);
  }

  perform(ctx: ChannelContext, data: string): Promise<CommandResult | null> {
    return this.command(ctx, "message", data);
  }

  async disconnect(ctx: ConnectionContext, subscriptions: string[]): Promise<void> {
    const { sid } = ctx;
    const req = disconnectRequest(ctx.env, ctx.identifiers, subscriptions);
    await this.run("Disconnect", sid, true, undefined, async () => {
      const res = await this.retry(sid, undefined, (timeoutMs) =>
        this.opts.client.disconnect(req, { sid, timeoutMs }),
      );
      // anycable-go counts an ERROR status of Disconnect as a failed call
      checkDisconnect(res);
    });
  }

  private command(
    ctx: ChannelContext,
    name: CommandName,
    data: string | undefined,
  ): Promise<CommandResult | null> {
    const { sid, signal } = ctx;
    const req = commandRequest(ctx.env, name, ctx.identifier, ctx.identifiers, data);
    return this.run("Command", sid, false, signal, async () => {
      const res = await this.retry(sid, signal, (timeoutMs) =>
        this.opts.client.command(req, { sid, timeoutMs, signal }),
      );
      return commandResult(res);
    });
  }

  /**
   * One call: wait for a slot, count it, log failures once per burst. anycable-go counts Connect
   * and Disconnect calls before they run and Command calls after; the totals agree either way.
   * A call whose session closed (`signal`) before it got a slot is never made; one cancelled in
   * flight resolves `null` too. Both count as `rpc_canceled_total`, not as failures.
   */
  private async run<T>(
    method: string,
    sid: string,
    countFirst: boolean,
    signal: AbortSignal | undefined,
    fn: () => Promise<T>,
  ): Promise<T | null> {
    if (!(await this.limiter.acquire(signal))) {
      this.m.canceled.inc();
      return null;
    }
    const call = (async () => {
      if (countFirst) this.m.calls.inc();
      try {
        const res = await fn();
        if (!countFirst) this.m.calls.inc();
        this.burst.success();
        return res;
      } catch (err) {
        if (signal?.aborted) {
          this.m.canceled.inc();
          return null;
        }
        if (!countFirst) this.m.calls.inc();
        if (ConnectError.from(err).code === Code.ResourceExhausted) this.exhausted++;
        // an application ERROR of Connect is a failed call for the session but not for the
        // transport (anycable-go only counts Disconnect's)
        if (!(err instanceof ApplicationError) || method === "Disconnect") this.m.errors.inc();
        if (!(err instanceof ApplicationError)) {
          const e = ConnectError.from(err);
          this.burst.failure("RPC call failed", { method, sid, code: Code[e.code], error: e.rawMessage });
        }
        throw err;
      } finally {
        this.limiter.release();
      }
    })();
    this.inflight.add(call);
    call.then(
      () => this.inflight.delete(call),
      () => this.inflight.delete(call),
    );
    return call;
  }

  private retry<T>(
    sid: string,
    signal: AbortSignal | undefined,
    attempt: (timeoutMs: number | undefined) => Promise<T>,
  ): Promise<T> {
    return withRetry(
      this.opts,
      {
        signal,
        ready: () => this.opts.client.ready(),
        onRetry: (err, delay) => {
          this.m.retries.inc();
          if (err.code === Code.ResourceExhausted) this.exhausted++;
          this.log.debug("RPC failed", { sid, code: Code[err.code], error: err.rawMessage, retry_in: delay });
        },
        onTimeout: () => this.m.timeouts.inc(),
        sleep: this.opts.sleep,
      },
      attempt,
    );
  }
}
