import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decodeJsonl, encodeJsonl } from "../../src/transports/lp/jsonl.ts";
import { PollQueue } from "../../src/transports/lp/queue.ts";

describe("long polling JSONL", () => {
  it("decodes one command per line, skipping blanks and CRs", () => {
    const d = decodeJsonl('{"command":"subscribe","identifier":"x"}\r\n\n{"command":"message"}\n');
    assert.deepEqual(d.messages, ['{"command":"subscribe","identifier":"x"}', '{"command":"message"}']);
    assert.equal(d.malformed, 0);
  });

  it("counts malformed lines without throwing", () => {
    const d = decodeJsonl('not json\n[1,2]\n"str"\nnull\n{"ok":1}\n{broken');
    assert.deepEqual(d.messages, ['{"ok":1}']);
    assert.equal(d.malformed, 5);
  });

  it("bounds the number of commands", () => {
    const d = decodeJsonl("{}\n{}\n{}\n", 2);
    assert.equal(d.messages.length, 2);
    assert.equal(d.malformed, 1);
  });

  it("encodes newline-terminated lines; empty for none", () => {
    assert.equal(encodeJsonl(['{"a":1}', '{"b":2}']), '{"a":1}\n{"b":2}\n');
    assert.equal(encodeJsonl([]), "");
  });
});

describe("long polling queue", () => {
  it("drains in order and empties", () => {
    const q = new PollQueue({ maxMessages: 10, maxBytes: 1000 }, 0);
    q.push("a", 1);
    q.push("b", 2);
    assert.deepEqual(q.drain(), ["a", "b"]);
    assert.equal(q.size, 0);
  });

  it("overflow by count or bytes is reported, not grown", () => {
    const q = new PollQueue({ maxMessages: 2, maxBytes: 1000 }, 0);
    assert.equal(q.push("a", 0), true);
    assert.equal(q.push("b", 0), true);
    assert.equal(q.push("c", 0), false);
    assert.equal(q.overflowed, true);
    assert.equal(q.size, 2);
    const b = new PollQueue({ maxMessages: 10, maxBytes: 3 }, 0);
    assert.equal(b.push("abcd", 0), false);
  });

  it("keepalive expiry and flush due by the ticker's clock", () => {
    const q = new PollQueue({ maxMessages: 10, maxBytes: 1000 }, 1000);
    assert.equal(q.expired(5000, 5000), false);
    assert.equal(q.expired(6001, 5000), true);
    q.touch(6001);
    assert.equal(q.expired(6002, 5000), false);
    assert.equal(q.due(6001, 500), false);
    q.push("x", 6100);
    assert.equal(q.due(6500, 500), false);
    assert.equal(q.due(6600, 500), true);
  });
});
