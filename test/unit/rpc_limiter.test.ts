import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Limiter } from "../../src/rpc/limiter.ts";
import { waitFor } from "../support/wait.ts";

describe("RPC limiter (--rpc_concurrency)", () => {
  it("never lets more than N calls run and reports the waiting ones", async () => {
    const limiter = new Limiter(3);
    let running = 0;
    let max = 0;
    const gates: Array<() => void> = [];
    const calls = Array.from({ length: 10 }, () =>
      limiter.run(async () => {
        running++;
        max = Math.max(max, running);
        await new Promise<void>((r) => gates.push(r));
        running--;
      }),
    );
    await waitFor(() => gates.length >= 3, "three calls running");
    assert.equal(running, 3);
    assert.equal(gates.length, 3);
    assert.equal(limiter.busy, 3);
    assert.equal(limiter.pending, 7);
    // each finished call hands its slot to the next waiter, which then starts
    for (let done = 0; done < 10; done++) {
      await waitFor(() => gates.length > 0, `call ${done + 1} running`);
      gates.shift()!();
    }
    await Promise.all(calls);
    assert.equal(max, 3);
    assert.equal(limiter.busy, 0);
    assert.equal(limiter.pending, 0);
  });

  it("serves waiters first come, first served, even against new arrivals", async () => {
    const limiter = new Limiter(1);
    const order: number[] = [];
    await limiter.acquire();
    const waiters = [1, 2, 3].map((n) => limiter.acquire().then(() => order.push(n)));
    const served = (n: number) => waitFor(() => order.length >= n, `${n} served`);
    limiter.release(); // 1 gets the slot
    await served(1);
    // a newcomer arriving while 2 and 3 wait must queue behind them
    const late = limiter.acquire().then(() => order.push(4));
    limiter.release();
    await served(2);
    limiter.release();
    await served(3);
    limiter.release();
    await Promise.all([...waiters, late]);
    assert.deepEqual(order, [1, 2, 3, 4]);
  });

  it("drops a waiter whose session closes: it never holds a slot and the next one is served", async () => {
    const limiter = new Limiter(1);
    assert.equal(await limiter.acquire(), true);
    const closing = new AbortController();
    const order: string[] = [];
    const dropped = limiter.acquire(closing.signal).then((got) => order.push(`a:${got}`));
    const next = limiter.acquire(new AbortController().signal).then((got) => order.push(`b:${got}`));
    assert.equal(limiter.pending, 2);
    closing.abort();
    await dropped;
    // out of the queue at once, not when its turn comes
    assert.equal(limiter.pending, 1);
    assert.equal(limiter.busy, 1);
    limiter.release();
    await next;
    assert.deepEqual(order, ["a:false", "b:true"]);
    assert.equal(limiter.busy, 1);
    assert.equal(limiter.pending, 0);
    limiter.release();
    assert.equal(limiter.busy, 0);
  });

  it("refuses at once when the signal is already aborted, even with free slots", async () => {
    const limiter = new Limiter(2);
    const closed = new AbortController();
    closed.abort();
    assert.equal(await limiter.acquire(closed.signal), false);
    assert.equal(limiter.busy, 0);
    assert.equal(limiter.pending, 0);
  });

  it("ignores an abort after the slot was granted, and frees the slot when all waiters are gone", async () => {
    const limiter = new Limiter(1);
    const session = new AbortController();
    assert.equal(await limiter.acquire(), true);
    const granted = limiter.acquire(session.signal);
    const gone = new AbortController();
    const cancelled = limiter.acquire(gone.signal);
    limiter.release();
    assert.equal(await granted, true);
    gone.abort();
    assert.equal(await cancelled, false);
    session.abort(); // the holder's session closes while its call runs: the limiter is not involved
    assert.equal(limiter.busy, 1);
    assert.equal(limiter.pending, 0);
    limiter.release(); // skips the cancelled waiter and frees the slot
    assert.equal(limiter.busy, 0);
    assert.equal(await limiter.acquire(), true);
    assert.equal(limiter.busy, 1);
  });

  it("rejects a non-positive capacity", () => {
    assert.throws(() => new Limiter(0), /must be > 0/);
  });
});
