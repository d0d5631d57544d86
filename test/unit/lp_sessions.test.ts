import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { PollSessions } from "../../src/transports/lp/sessions.ts";

const limits = { maxMessages: 3, maxBytes: 100 };

describe("long polling sessions", () => {
  it("creates sessions with distinct ids up to the capacity", () => {
    const t = new PollSessions<number>(2, limits);
    const a = t.create(1, 0);
    const b = t.create(2, 0);
    assert.ok(a.ok && b.ok);
    assert.notEqual(a.session.id, b.session.id);
    assert.deepEqual(t.create(3, 0), { ok: false, reason: "capacity" });
    assert.equal(t.size, 2);
  });

  it("refuses unknown and expired ids, touching live ones", () => {
    const t = new PollSessions<number>(0, limits);
    const a = t.create(1, 0);
    assert.ok(a.ok);
    assert.equal(t.take("nope", 0, 5000), undefined);
    assert.equal(t.take(a.session.id, 4000, 5000)?.data, 1);
    assert.equal(t.take(a.session.id, 8000, 5000)?.data, 1);
    assert.equal(t.take(a.session.id, 14000, 5000), undefined);
    assert.equal(t.size, 0);
  });

  it("sweeps stale sessions and reports due ones", () => {
    let n = 0;
    const t = new PollSessions<number>(0, limits, () => `id${n++}`);
    const a = t.create(1, 0);
    const b = t.create(2, 3000);
    assert.ok(a.ok && b.ok);
    b.session.queue.push("{}", 3000);
    assert.deepEqual(
      t.due(3600, 500).map((s) => s.id),
      ["id1"],
    );
    assert.deepEqual(
      t.sweep(6000, 5000).map((s) => s.id),
      ["id0"],
    );
    assert.equal(t.size, 1);
    assert.equal(t.clear().length, 1);
    assert.equal(t.size, 0);
  });

  it("retries an id collision and refuses when ids keep colliding", () => {
    const t = new PollSessions<number>(0, limits, () => "same");
    assert.ok(t.create(1, 0).ok);
    assert.deepEqual(t.create(2, 0), { ok: false, reason: "collision" });
  });
});
