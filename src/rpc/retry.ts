// anycable-go's retry loop: ResourceExhausted and Unavailable are retried with exponential backoff
// (10 ms and 100 ms bases) until --rpc_command_timeout runs out. Connection-level failures that
// anycable-go's gRPC client reports as Unavailable surface differently through connect-node (a
// stream cancelled or a broken pipe when the backend dies mid-call, see RUNTIME-NOTES), so they are
// retried like Unavailable.
import { Code, ConnectError } from "@connectrpc/connect";

const EXHAUSTED_INTERVAL_MS = 10;
const UNAVAILABLE_INTERVAL_MS = 100;

/** Messages of Internal errors that mean "the connection broke", not "the server failed". */
const CONNECTION_LOST =
  /EPIPE|ECONNRESET|ECONNREFUSED|ECONNABORTED|socket hang up|stream closed|session closed|GOAWAY|closed before/i;

export function toConnectError(err: unknown): ConnectError {
  return ConnectError.from(err);
}

/** Whether a failed attempt may be repeated. */
export function isRetryable(err: ConnectError): boolean {
  switch (err.code) {
    case Code.ResourceExhausted:
    case Code.Unavailable:
      return true;
    case Code.Canceled:
      // deadlines surface as DeadlineExceeded and a session's own cancellation ends the loop
      // before this is asked: a cancelled stream means the HTTP/2 connection went away under it
      return true;
    case Code.Internal:
      return CONNECTION_LOST.test(err.rawMessage);
    default:
      return false;
  }
}

/** anycable-go's delays: 2^attempt x base, the attempt count restarting when the kind changes. */
export class Backoff {
  private attempt = 0;
  private exhausted = false;

  next(code: Code): number {
    let base = UNAVAILABLE_INTERVAL_MS;
    if (code === Code.ResourceExhausted) {
      base = EXHAUSTED_INTERVAL_MS;
      if (!this.exhausted) {
        this.attempt = 0;
        this.exhausted = true;
      }
    } else if (this.exhausted) {
      this.exhausted = false;
      this.attempt = 0;
    }
    // capped exponent: with no command timeout anycable-go retries forever, but the delay must
    // stay a sane timer value
    const delay = 2 ** Math.min(this.attempt, 16) * base;
    this.attempt++;
    return delay;
  }
}

export interface RetryHooks {
  /** Checked before every attempt; an error ends the loop without a call (open breaker). */
  ready(): Error | undefined;
  onRetry(err: ConnectError, delayMs: number): void;
  onTimeout(): void;
  sleep?(ms: number): Promise<void>;
  now?(): number;
  /** The session's close signal: once aborted, no further attempt or retry is made. */
  signal?: AbortSignal;
}

/** What a call cancelled by its session's close signal rejects with (Go's context.Canceled). */
export function canceledError(cause?: unknown): ConnectError {
  return new ConnectError("context canceled", Code.Canceled, undefined, undefined, cause);
}

/** `sleep`, cut short when `signal` aborts. */
function sleepUnlessAborted(sleep: (ms: number) => Promise<void>, ms: number, signal?: AbortSignal) {
  if (!signal) return sleep(ms);
  return new Promise<void>((resolve) => {
    const done = () => {
      signal.removeEventListener("abort", done);
      resolve();
    };
    signal.addEventListener("abort", done);
    sleep(ms).then(done, done);
  });
}

export interface RetryPolicy {
  /** Timeout of one request (0: none). */
  requestTimeoutMs: number;
  /** Budget of the whole call including retries (0: none, as in anycable-go). */
  commandTimeoutMs: number;
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Runs `attempt` until it succeeds, fails with a non-retryable error, or the command budget is
 * spent. Each attempt gets the time it may take: the request timeout, cut to what is left of the
 * command budget, like a Go context deadline nested in another.
 */
export async function withRetry<T>(
  policy: RetryPolicy,
  hooks: RetryHooks,
  attempt: (timeoutMs: number | undefined) => Promise<T>,
): Promise<T> {
  const now = hooks.now ?? Date.now;
  const sleep = hooks.sleep ?? defaultSleep;
  const deadline = policy.commandTimeoutMs > 0 ? now() + policy.commandTimeoutMs : Infinity;
  const backoff = new Backoff();
  const signal = hooks.signal;
  let lastErr: ConnectError | undefined;
  for (;;) {
    if (signal?.aborted) throw canceledError(lastErr);
    const notReady = hooks.ready();
    if (notReady) throw notReady;
    const left = deadline - now();
    if (left <= 0) {
      hooks.onTimeout();
      throw new ConnectError(
        "context deadline exceeded",
        Code.DeadlineExceeded,
        undefined,
        undefined,
        lastErr,
      );
    }
    let timeoutMs: number | undefined = Number.isFinite(left) ? left : undefined;
    if (policy.requestTimeoutMs > 0 && (timeoutMs === undefined || policy.requestTimeoutMs < timeoutMs)) {
      timeoutMs = policy.requestTimeoutMs;
    }
    let err: ConnectError;
    try {
      return await attempt(timeoutMs);
    } catch (e) {
      // cancelled by the session (in flight, or its transport noticed the abort first)
      if (signal?.aborted) throw canceledError(e);
      err = toConnectError(e);
    }
    if (err.code === Code.DeadlineExceeded) hooks.onTimeout();
    if (!isRetryable(err)) throw err;
    lastErr = err;
    const delay = backoff.next(err.code);
    hooks.onRetry(err, delay);
    if (now() + delay >= deadline) {
      // the sleep would outlive the budget: anycable-go's select on ctx.Done() fires first
      await sleepUnlessAborted(sleep, Math.max(0, deadline - now()), signal);
      if (signal?.aborted) throw canceledError(err);
      throw new ConnectError(
        `retry interrupted: context deadline exceeded: ${err.rawMessage}`,
        err.code,
        undefined,
        undefined,
        err,
      );
    }
    await sleepUnlessAborted(sleep, delay, signal);
  }
}
