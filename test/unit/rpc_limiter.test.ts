import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Limiter } from "../../src/rpc/limiter.ts";

const tick = () => new Promise((r) => setTimeout(r, 0));

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
    await tick();
    assert.equal(running, 3);
    assert.equal(limiter.busy, 3);
    assert.equal(limiter.pending, 7);
    while (gates.length > 0 || running > 0) {
      gates.shift()?.();
      await tick();
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
    limiter.release(); // 1 gets the slot
    await tick();
    // a newcomer arriving while 2 and 3 wait must queue behind them
    const late = limiter.acquire().then(() => order.push(4));
    limiter.release();
    await tick();
    limiter.release();
    await tick();
    limiter.release();
    await Promise.all([...waiters, late]);
    assert.deepEqual(order, [1, 2, 3, 4]);
  });

  it("rejects a non-positive capacity", () => {
    assert.throws(() => new Limiter(0), /must be > 0/);
  });
});
