// Adaptive RPC concurrency: the AIMD steps, the bounds check behind the startup error, and the
// limiter following a changed limit (waiters get raised slots at once; a lowered one retires
// slots as calls finish, interrupting nothing).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { loadConfig } from "../../src/config/load.ts";
import { AdaptiveConcurrency, adaptiveProblem } from "../../src/rpc/adaptive.ts";
import { Limiter } from "../../src/rpc/limiter.ts";

describe("adaptive RPC concurrency", () => {
  it("backs off multiplicatively on ResourceExhausted, even with a backlog, down to min", () => {
    const a = new AdaptiveConcurrency({ initial: 20, min: 5, max: 100 });
    assert.equal(a.next({ exhausted: 3, pending: 50, busy: 20 }), 15);
    assert.equal(a.next({ exhausted: 1, pending: 0, busy: 2 }), 11);
    assert.equal(a.next({ exhausted: 1, pending: 0, busy: 2 }), 8);
    assert.equal(a.next({ exhausted: 1, pending: 0, busy: 2 }), 6);
    assert.equal(a.next({ exhausted: 9, pending: 0, busy: 2 }), 5);
    assert.equal(a.next({ exhausted: 9, pending: 0, busy: 2 }), 5, "never below min");
  });

  it("grows by a tenth (at least one, at most the backlog) while saturated, up to max", () => {
    const a = new AdaptiveConcurrency({ initial: 40, min: 5, max: 50 });
    assert.equal(a.next({ exhausted: 0, pending: 100, busy: 40 }), 44);
    assert.equal(a.next({ exhausted: 0, pending: 2, busy: 44 }), 46, "no more than is waiting");
    assert.equal(a.next({ exhausted: 0, pending: 100, busy: 46 }), 50, "capped at max");
    assert.equal(a.next({ exhausted: 0, pending: 100, busy: 50 }), 50);
    const small = new AdaptiveConcurrency({ initial: 3, min: 1, max: 10 });
    assert.equal(small.next({ exhausted: 0, pending: 5, busy: 3 }), 4, "at least one");
  });

  it("stays when nothing waits, or when slots are free (the backlog is not for lack of slots)", () => {
    const a = new AdaptiveConcurrency({ initial: 20, min: 5, max: 100 });
    assert.equal(a.next({ exhausted: 0, pending: 0, busy: 20 }), 20);
    assert.equal(a.next({ exhausted: 0, pending: 3, busy: 12 }), 20);
  });

  it("names the setting that does not fit", () => {
    assert.equal(adaptiveProblem({ initial: 25, min: 5, max: 100 }), undefined);
    assert.match(
      adaptiveProblem({ initial: 25, min: 50, max: 10 })!,
      /--rpc_concurrency_min \(50\) must not exceed --rpc_concurrency_max \(10\)/,
    );
    assert.match(
      adaptiveProblem({ initial: 200, min: 5, max: 100 })!,
      /--rpc_concurrency_initial \(200\) must be between/,
    );
    assert.match(
      adaptiveProblem({ initial: 25, min: 0, max: 100 })!,
      /--rpc_concurrency_min must be a positive integer/,
    );
  });

  it("refuses inconsistent bounds at startup, only in adaptive mode", () => {
    const bad = ["--rpc_host=localhost:50051", "--rpc_concurrency_min=50", "--rpc_concurrency_max=10"];
    const adaptive = loadConfig({
      argv: [...bad, "--rpc_concurrency=0"],
      env: {},
      readFile: () => undefined,
    });
    assert.equal(adaptive.kind, "error");
    if (adaptive.kind === "error")
      assert.match(adaptive.message, /^--rpc_concurrency_min \(50\) must not exceed/);
    assert.equal(
      loadConfig({ argv: bad, env: {}, readFile: () => undefined }).kind,
      "run",
      "ignored with a fixed limit",
    );
  });
});

describe("Limiter.setCapacity", () => {
  it("hands raised slots to waiters at once, in order", async () => {
    const l = new Limiter(1);
    assert.equal(await l.acquire(), true);
    const order: number[] = [];
    const waiting = [1, 2, 3].map((n) => l.acquire().then(() => order.push(n)));
    assert.equal(l.pending, 3);
    l.setCapacity(3);
    await Promise.all(waiting.slice(0, 2));
    assert.deepEqual(order, [1, 2]);
    assert.equal(l.busy, 3);
    assert.equal(l.pending, 1);
    l.release();
    await waiting[2];
    assert.deepEqual(order, [1, 2, 3]);
  });

  it("retires slots as calls finish after a lowered limit", async () => {
    const l = new Limiter(3);
    for (let i = 0; i < 3; i++) assert.equal(await l.acquire(), true);
    let granted = false;
    const next = l.acquire().then(() => {
      granted = true;
    });
    l.setCapacity(1);
    assert.equal(l.busy, 3, "nothing in flight is interrupted");
    l.release();
    l.release();
    await Promise.resolve();
    assert.equal(granted, false, "two releases only brought it down to the new limit");
    assert.equal(l.busy, 1);
    l.release();
    await next;
    assert.equal(granted, true);
    assert.equal(l.busy, 1);
  });
});
