import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Subscriptions } from "../../src/node/subscriptions.ts";

describe("Subscriptions", () => {
  it("keeps subscription order through set, replace and delete", () => {
    const subs = new Subscriptions();
    subs.set("a", ["s1"]);
    subs.set("b", []);
    subs.set("c", ["s3", "s4"]);
    subs.set("b", ["s2"]);
    assert.equal(subs.size, 3);
    assert.deepEqual(subs.identifiers(), ["a", "b", "c"]);
    assert.deepEqual(subs.get("b"), ["s2"]);
    assert.equal(subs.delete("b"), true);
    assert.equal(subs.delete("b"), false);
    assert.equal(subs.has("b"), false);
    assert.equal(subs.get("b"), undefined);
    assert.deepEqual(
      [...subs],
      [
        ["a", ["s1"]],
        ["c", ["s3", "s4"]],
      ],
    );
  });

  it("does not mistake a stream name for an identifier", () => {
    const subs = new Subscriptions();
    subs.set("id", ["id2"]);
    assert.equal(subs.has("id2"), false);
  });
});
