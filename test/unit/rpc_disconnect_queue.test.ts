import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Logger } from "../../src/log/logger.ts";
import { Metrics } from "../../src/metrics/registry.ts";
import type { Controller, SessionEnv } from "../../src/node/controller.ts";
import { DisconnectQueue } from "../../src/rpc/disconnect_queue.ts";
import { authCtx, closedCtx } from "../support/contexts.ts";
import { waitFor } from "../support/wait.ts";

const ENV: SessionEnv = { url: "u", headers: {}, cstate: {}, istate: {} };

function capture() {
  const lines: string[] = [];
  return { lines, logger: new Logger("debug", "text", {}, { write: (l) => lines.push(l) }) };
}

/** Records Disconnect calls with the fake time they started at. */
function recorder(opts: { fail?: boolean; hold?: boolean } = {}) {
  const calls: Array<{ sid: string; at: number; subs: string[] }> = [];
  const held: Array<() => void> = [];
  let now = () => 0;
  let shutdowns = 0;
  const inner: Controller = {
    authenticate: async () => null,
    subscribe: async () => null,
    unsubscribe: async () => null,
    perform: async () => null,
    async disconnect({ sid }, subs) {
      calls.push({ sid, at: now(), subs });
      if (opts.hold) await new Promise<void>((r) => held.push(r));
      if (opts.fail) throw new Error("backend down");
    },
    async shutdown() {
      shutdowns++;
    },
  };
  return {
    inner,
    calls,
    held,
    shutdowns: () => shutdowns,
    setNow: (fn: () => number) => {
      now = fn;
    },
  };
}

/** Fake time that advances only through the queue's own sleeps. */
function clock() {
  let t = 0;
  return {
    now: () => t,
    sleep: async (ms: number) => {
      t += ms;
    },
  };
}

describe("disconnect queue (--disconnect_rate, --disconnect_backlog_size)", () => {
  it("makes the calls one by one at no more than the configured rate, in order", async () => {
    const rec = recorder();
    const c = clock();
    rec.setNow(c.now);
    const metrics = new Metrics();
    const q = new DisconnectQueue(rec.inner, {
      rate: 20,
      backlog: 100,
      shutdownTimeoutMs: 1000,
      flushConcurrency: 4,
      metrics,
      logger: capture().logger,
      now: c.now,
      sleep: c.sleep,
    });
    for (let i = 0; i < 5; i++) void q.disconnect(closedCtx(`s${i}`, ENV, "ids"), [`sub${i}`]);
    metrics.collect();
    // the first call starts at once; the others wait for their turn
    assert.equal(metrics.gaugeValue("disconnect_queue_size"), 4);
    await waitFor(() => rec.calls.length === 5, "five calls");
    assert.deepEqual(
      rec.calls.map((x) => [x.sid, x.at]),
      [
        ["s0", 0],
        ["s1", 50],
        ["s2", 100],
        ["s3", 150],
        ["s4", 200],
      ],
    );
    assert.deepEqual(rec.calls[3]!.subs, ["sub3"]);
    metrics.collect();
    assert.equal(metrics.gaugeValue("disconnect_queue_size"), 0);
  });

  it("flushes what is left on shutdown, then shuts the inner controller down", async () => {
    const rec = recorder();
    const { lines, logger } = capture();
    // real time but a rate so low that nothing beyond the first call runs before shutdown
    const q = new DisconnectQueue(rec.inner, {
      rate: 1,
      backlog: 100,
      shutdownTimeoutMs: 5000,
      flushConcurrency: 3,
      metrics: new Metrics(),
      logger,
    });
    for (let i = 0; i < 6; i++) await q.disconnect(closedCtx(`s${i}`, ENV, "ids"), []);
    await waitFor(() => rec.calls.length === 1, "the first call");
    const started = Date.now();
    await q.shutdown();
    assert.ok(Date.now() - started < 900, "the flush does not wait for the rate");
    assert.deepEqual(rec.calls.map((x) => x.sid).sort(), ["s0", "s1", "s2", "s3", "s4", "s5"]);
    assert.equal(rec.shutdowns(), 1);
    assert.match(lines.join("\n"), /invoking remaining disconnects .*num=5/);
    assert.match(lines.join("\n"), /disconnected sessions num=5/);
    // after shutdown began, calls go straight through
    await q.disconnect(closedCtx("late", ENV, "ids"), []);
    assert.equal(rec.calls.at(-1)!.sid, "late");
  });

  it("stops flushing at the shutdown timeout and says how many calls were left", async () => {
    const rec = recorder({ hold: true });
    const { lines, logger } = capture();
    const q = new DisconnectQueue(rec.inner, {
      rate: 1,
      backlog: 100,
      shutdownTimeoutMs: 100,
      flushConcurrency: 1,
      metrics: new Metrics(),
      logger,
    });
    for (let i = 0; i < 4; i++) await q.disconnect(closedCtx(`s${i}`, ENV, "ids"), []);
    await q.shutdown();
    assert.match(lines.join("\n"), /had no time to invoke Disconnect calls: ~2/);
    for (const release of rec.held) release();
  });

  it("warns once when the backlog is exceeded and logs failures once per burst", async () => {
    const rec = recorder({ fail: true });
    const c = clock();
    const { lines, logger } = capture();
    const q = new DisconnectQueue(rec.inner, {
      rate: 100,
      backlog: 2,
      shutdownTimeoutMs: 1000,
      flushConcurrency: 1,
      metrics: new Metrics(),
      logger,
      now: c.now,
      sleep: c.sleep,
    });
    for (let i = 0; i < 6; i++) void q.disconnect(closedCtx(`s${i}`, ENV, "ids"), []);
    await waitFor(() => rec.calls.length === 6, "all six calls (nothing is dropped)");
    assert.equal(lines.filter((l) => l.includes("disconnect queue is full")).length, 1);
    assert.equal(lines.filter((l) => l.includes("controller disconnect failed")).length, 1);
  });

  it("passes every other call through untouched", async () => {
    const rec = recorder();
    let authenticated = 0;
    rec.inner.authenticate = async () => {
      authenticated++;
      return { status: "success", identifiers: "x", transmissions: [] };
    };
    const q = new DisconnectQueue(rec.inner, {
      rate: 100,
      backlog: 10,
      shutdownTimeoutMs: 100,
      flushConcurrency: 1,
      metrics: new Metrics(),
      logger: capture().logger,
    });
    assert.equal((await q.authenticate(authCtx("s", ENV)))?.identifiers, "x");
    assert.equal(authenticated, 1);
  });
});
