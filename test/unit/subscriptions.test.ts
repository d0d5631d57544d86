import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FLAT_LIMIT, Subscriptions } from "../../src/node/subscriptions.ts";

const streamsOf = (subs: Subscriptions) => [...subs].map(([id, streams]) => [id, [...streams]]);

describe("Subscriptions", () => {
  it("keeps subscription order through add, addStream, takeStreams and delete", () => {
    const subs = new Subscriptions();
    subs.addStream("a", "s1");
    subs.add("b");
    subs.addStream("c", "s3");
    subs.addStream("c", "s4");
    subs.addStream("b", "s2");
    subs.add("b"); // an existing subscription keeps its streams
    assert.equal(subs.size, 3);
    assert.deepEqual(subs.identifiers(), ["a", "b", "c"]);
    assert.deepEqual(subs.get("b"), ["s2"]);
    assert.deepEqual([...subs.takeStreams("c")], ["s3", "s4"]);
    assert.deepEqual(subs.get("c"), []);
    assert.deepEqual([...subs.takeStreams("nope")], []);
    assert.equal(subs.delete("b"), true);
    assert.equal(subs.delete("b"), false);
    assert.equal(subs.has("b"), false);
    assert.equal(subs.get("b"), undefined);
    assert.deepEqual(streamsOf(subs), [
      ["a", ["s1"]],
      ["c", []],
    ]);
  });

  it("records a stream once per subscription and forgets single streams", () => {
    const subs = new Subscriptions();
    assert.equal(subs.addStream("a", "x"), true);
    assert.equal(subs.addStream("a", "x"), false);
    assert.equal(subs.addStream("a", "y"), true);
    assert.equal(subs.removeStream("a", "x"), true);
    assert.equal(subs.removeStream("a", "x"), false);
    assert.equal(subs.removeStream("b", "x"), false);
    assert.deepEqual(subs.get("a"), ["y"]);
  });

  it("does not mistake a stream name for an identifier", () => {
    const subs = new Subscriptions();
    subs.addStream("id", "id2");
    assert.equal(subs.has("id2"), false);
  });

  it(`stays a flat array up to ${FLAT_LIMIT} subscriptions (the per-connection memory of the common case)`, () => {
    const subs = new Subscriptions();
    for (let i = 0; i < FLAT_LIMIT; i++) subs.addStream(`id${i}`, `s${i}`);
    assert.equal(subs.isFlat(), true);
    subs.addStream(`id${FLAT_LIMIT}`, "more");
    assert.equal(subs.isFlat(), false);
  });

  it("switches to a Map past the limit and back when it shrinks, keeping order and streams", () => {
    const subs = new Subscriptions();
    const n = 20_000;
    for (let i = 0; i < n; i++) subs.addStream(`id${i}`, `s${i}`);
    assert.equal(subs.isFlat(), false);
    assert.equal(subs.size, n);
    assert.equal(subs.has("id19999"), true);
    assert.equal(subs.has("s5"), false);
    assert.equal(subs.addStream("id7", "extra"), true);
    assert.deepEqual(subs.get("id7"), ["s7", "extra"]);
    // removing from the middle keeps the order of the rest
    for (let i = 0; i < n - 3; i++) assert.equal(subs.delete(`id${i}`), true);
    assert.equal(subs.isFlat(), true);
    assert.deepEqual(streamsOf(subs), [
      ["id19997", ["s19997"]],
      ["id19998", ["s19998"]],
      ["id19999", ["s19999"]],
    ]);
    subs.add("new");
    assert.deepEqual(subs.identifiers(), ["id19997", "id19998", "id19999", "new"]);
  });

  it("keeps many streams of one subscription in a set, in order", () => {
    const subs = new Subscriptions();
    const n = FLAT_LIMIT * 4;
    for (let i = 0; i < n; i++) assert.equal(subs.addStream("one", `s${i}`), true);
    for (let i = 0; i < n; i++) assert.equal(subs.addStream("one", `s${i}`), false);
    assert.equal(subs.removeStream("one", "s0"), true);
    assert.equal(subs.removeStream("one", "s0"), false);
    const expected = Array.from({ length: n - 1 }, (_, i) => `s${i + 1}`);
    assert.deepEqual(subs.get("one"), expected);
    assert.deepEqual([...subs.takeStreams("one")], expected);
    assert.deepEqual(subs.get("one"), []);
  });
});
