import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { Backoff, isRetryable, type RetryHooks, withRetry } from "../../src/rpc/retry.ts";

/** A clock that only moves when the code under test sleeps. */
function fakeClock() {
  let t = 1_000_000;
  const sleeps: number[] = [];
  return {
    sleeps,
    now: () => t,
    sleep: async (ms: number) => {
      sleeps.push(ms);
      t += ms;
    },
    advance: (ms: number) => {
      t += ms;
    },
  };
}

function hooks(clock: ReturnType<typeof fakeClock>, extra: Partial<RetryHooks> = {}) {
  const seen = { retries: 0, timeouts: 0 };
  const h: RetryHooks = {
    ready: () => undefined,
    onRetry: () => {
      seen.retries++;
    },
    onTimeout: () => {
      seen.timeouts++;
    },
    now: clock.now,
    sleep: clock.sleep,
    ...extra,
  };
  return { h, seen };
}

describe("RPC retry policy", () => {
  it("retries ResourceExhausted, Unavailable and connection-level failures only", () => {
    const e = (code: Code, msg = "x") => new ConnectError(msg, code);
    assert.equal(isRetryable(e(Code.ResourceExhausted)), true);
    assert.equal(isRetryable(e(Code.Unavailable)), true);
    // the backend died mid-call: Bun reports a cancelled stream, Deno a broken pipe
    assert.equal(isRetryable(e(Code.Canceled, "http/2 stream closed with error code CANCEL")), true);
    assert.equal(isRetryable(e(Code.Internal, "write EPIPE")), true);
    assert.equal(isRetryable(e(Code.Internal, "handler threw")), false);
    for (const code of [Code.DeadlineExceeded, Code.Unknown, Code.InvalidArgument, Code.Unauthenticated]) {
      assert.equal(isRetryable(e(code)), false, Code[code]);
    }
  });

  it("backs off like anycable-go: 2^n x 100 ms, 2^n x 10 ms when exhausted, restarting on a change", () => {
    const b = new Backoff();
    assert.deepEqual(
      [Code.Unavailable, Code.Unavailable, Code.Unavailable].map((c) => b.next(c)),
      [100, 200, 400],
    );
    assert.deepEqual(
      [Code.ResourceExhausted, Code.ResourceExhausted, Code.Unavailable, Code.Unavailable].map((c) =>
        b.next(c),
      ),
      [10, 20, 100, 200],
    );
  });

  it("keeps retrying until it succeeds", async () => {
    const clock = fakeClock();
    const { h, seen } = hooks(clock);
    let n = 0;
    const res = await withRetry({ requestTimeoutMs: 0, commandTimeoutMs: 3000 }, h, async () => {
      if (++n < 4) throw new ConnectError("down", Code.Unavailable);
      return "ok";
    });
    assert.equal(res, "ok");
    assert.equal(seen.retries, 3);
    assert.deepEqual(clock.sleeps, [100, 200, 400]);
  });

  it("gives up when --rpc_command_timeout is spent", async () => {
    const clock = fakeClock();
    const { h, seen } = hooks(clock);
    let attempts = 0;
    await assert.rejects(
      withRetry({ requestTimeoutMs: 0, commandTimeoutMs: 1000 }, h, async () => {
        attempts++;
        throw new ConnectError("down", Code.Unavailable);
      }),
      (err: ConnectError) => /retry interrupted/.test(err.rawMessage) && err.code === Code.Unavailable,
    );
    // 100 + 200 + 400 = 700 ms of sleeps, the 800 ms one would overrun the 1000 ms budget
    assert.equal(attempts, 4);
    assert.equal(seen.retries, 4);
    assert.deepEqual(clock.sleeps, [100, 200, 400, 300]);
  });

  it("does not retry other failures and counts deadlines as timeouts", async () => {
    const clock = fakeClock();
    const { h, seen } = hooks(clock);
    let attempts = 0;
    await assert.rejects(
      withRetry({ requestTimeoutMs: 500, commandTimeoutMs: 3000 }, h, async () => {
        attempts++;
        throw new ConnectError("slow", Code.DeadlineExceeded);
      }),
      (err: ConnectError) => err.code === Code.DeadlineExceeded,
    );
    assert.equal(attempts, 1);
    assert.equal(seen.timeouts, 1);
    assert.equal(seen.retries, 0);
  });

  it("gives each attempt the request timeout, cut to what is left of the command budget", async () => {
    const clock = fakeClock();
    const { h } = hooks(clock);
    const timeouts: Array<number | undefined> = [];
    await withRetry({ requestTimeoutMs: 800, commandTimeoutMs: 1000 }, h, async (t) => {
      timeouts.push(t);
      clock.advance(600);
      if (timeouts.length < 2) throw new ConnectError("down", Code.Unavailable);
      return 1;
    });
    // first attempt: min(800, 1000); second after 600 ms of work + 100 ms backoff: 300 left
    assert.deepEqual(timeouts, [800, 300]);
    const none: Array<number | undefined> = [];
    await withRetry({ requestTimeoutMs: 0, commandTimeoutMs: 0 }, hooks(fakeClock()).h, async (t) => {
      none.push(t);
      return 1;
    });
    assert.deepEqual(none, [undefined]);
  });

  it("does not call at all while the client is not ready (open circuit breaker)", async () => {
    const clock = fakeClock();
    const { h } = hooks(clock, { ready: () => new Error("http rpc is temporarily unavailable") });
    let attempts = 0;
    await assert.rejects(
      withRetry({ requestTimeoutMs: 0, commandTimeoutMs: 3000 }, h, async () => {
        attempts++;
        return 1;
      }),
      /temporarily unavailable/,
    );
    assert.equal(attempts, 0);
  });

  it("ends with Canceled, without another attempt, when the session closes during a backoff", async () => {
    const clock = fakeClock();
    const session = new AbortController();
    let slept = 0;
    const { h, seen } = hooks(clock, {
      signal: session.signal,
      // a backoff that would never end by itself: only the session's close ends it
      sleep: () => {
        slept++;
        session.abort();
        return new Promise(() => {});
      },
    });
    let attempts = 0;
    const err = await withRetry({ requestTimeoutMs: 0, commandTimeoutMs: 0 }, h, async () => {
      attempts++;
      throw new ConnectError("connect ECONNREFUSED", Code.Unavailable);
    }).catch((e: unknown) => e);
    assert.ok(err instanceof ConnectError);
    assert.equal(err.code, Code.Canceled);
    assert.equal(err.rawMessage, "context canceled");
    assert.equal(attempts, 1);
    assert.equal(slept, 1);
    assert.equal(seen.retries, 1);
  });
});
