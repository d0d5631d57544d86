// The circuit breaker anycable-go puts in front of HTTP RPC (sony/gobreaker, two-step): it opens
// when at least 10 requests within a 10 s window failed at >= 80% (a failure is a request that got
// no HTTP response at all), stays open for 5 s, then lets 5 trial requests through; 5 successes
// close it, any failure opens it again.
import type { Logger } from "../log/logger.ts";

export type BreakerState = "closed" | "open" | "half-open";

export interface BreakerOptions {
  maxRequests: number;
  intervalMs: number;
  timeoutMs: number;
  minRequests: number;
  failureRatio: number;
}

export const HTTP_RPC_BREAKER: BreakerOptions = {
  maxRequests: 5,
  intervalMs: 10_000,
  timeoutMs: 5_000,
  minRequests: 10,
  failureRatio: 0.8,
};

export class CircuitBreakerOpen extends Error {}

export class CircuitBreaker {
  private st: BreakerState = "closed";
  private generation = 0;
  private requests = 0;
  private failures = 0;
  private consecutiveSuccesses = 0;
  private expiry: number;

  constructor(
    private readonly opts: BreakerOptions,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.expiry = now() + opts.intervalMs;
  }

  state(): BreakerState {
    this.refresh(this.now());
    return this.st;
  }

  /**
   * Admits a request or throws; the returned callback reports its outcome (once): `undefined` for a
   * request its session cancelled, which says nothing about the backend and is not counted.
   */
  allow(): (success: boolean | undefined) => void {
    const now = this.now();
    this.refresh(now);
    if (this.st === "open") throw new CircuitBreakerOpen("circuit breaker is open");
    if (this.st === "half-open" && this.requests >= this.opts.maxRequests) {
      throw new CircuitBreakerOpen("too many requests");
    }
    this.requests++;
    const generation = this.generation;
    return (success) => this.done(generation, success);
  }

  private done(generation: number, success: boolean | undefined): void {
    const now = this.now();
    this.refresh(now);
    if (generation !== this.generation) return;
    if (success === undefined) {
      this.requests--;
      return;
    }
    if (success) {
      this.consecutiveSuccesses++;
      if (this.st === "half-open" && this.consecutiveSuccesses >= this.opts.maxRequests) {
        this.setState("closed", now);
      }
      return;
    }
    this.failures++;
    this.consecutiveSuccesses = 0;
    if (this.st === "half-open") {
      this.setState("open", now);
    } else if (
      this.requests >= this.opts.minRequests &&
      this.failures / this.requests >= this.opts.failureRatio
    ) {
      this.setState("open", now);
    }
  }

  private refresh(now: number): void {
    if (this.st === "closed" && this.expiry <= now) this.newGeneration(now);
    else if (this.st === "open" && this.expiry <= now) this.setState("half-open", now);
  }

  private setState(state: BreakerState, now: number): void {
    if (this.st === state) return;
    this.st = state;
    this.newGeneration(now);
    if (state === "open") this.log.warn("circuit breaker is open");
    else if (state === "closed") this.log.info("circuit breaker is closed");
  }

  private newGeneration(now: number): void {
    this.generation++;
    this.requests = 0;
    this.failures = 0;
    this.consecutiveSuccesses = 0;
    this.expiry =
      this.st === "closed"
        ? now + this.opts.intervalMs
        : this.st === "open"
          ? now + this.opts.timeoutMs
          : Infinity;
  }
}
