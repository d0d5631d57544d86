import { describe, expect, test } from "bun:test";
import { decodeJsonl, encodeJsonl } from "../../src/transports/lp/jsonl.ts";
import { PollQueue } from "../../src/transports/lp/queue.ts";

describe("long polling JSONL", () => {
  test("decodes one command per line, skipping blanks and CRs", () => {
    const d = decodeJsonl('{"command":"subscribe","identifier":"x"}\r\n\n{"command":"message"}\n');
    expect(d.messages).toEqual(['{"command":"subscribe","identifier":"x"}', '{"command":"message"}']);
    expect(d.malformed).toBe(0);
  });

  test("counts malformed lines without throwing", () => {
    const d = decodeJsonl('not json\n[1,2]\n"str"\nnull\n{"ok":1}\n{broken');
    expect(d.messages).toEqual(['{"ok":1}']);
    expect(d.malformed).toBe(5);
  });

  test("bounds the number of commands", () => {
    const d = decodeJsonl("{}\n{}\n{}\n", 2);
    expect(d.messages.length).toBe(2);
    expect(d.malformed).toBe(1);
  });

  test("encodes newline-terminated lines; empty for none", () => {
    expect(encodeJsonl(['{"a":1}', '{"b":2}'])).toBe('{"a":1}\n{"b":2}\n');
    expect(encodeJsonl([])).toBe("");
  });
});

describe("long polling queue", () => {
  test("drains in order and empties", () => {
    const q = new PollQueue({ maxMessages: 10, maxBytes: 1000 }, 0);
    q.push("a", 1);
    q.push("b", 2);
    expect(q.drain()).toEqual(["a", "b"]);
    expect(q.size).toBe(0);
  });

  test("overflow by count or bytes is reported, not grown", () => {
    const q = new PollQueue({ maxMessages: 2, maxBytes: 1000 }, 0);
    expect(q.push("a", 0)).toBe(true);
    expect(q.push("b", 0)).toBe(true);
    expect(q.push("c", 0)).toBe(false);
    expect(q.overflowed).toBe(true);
    expect(q.size).toBe(2);
    const b = new PollQueue({ maxMessages: 10, maxBytes: 3 }, 0);
    expect(b.push("abcd", 0)).toBe(false);
  });

  test("keepalive expiry and flush due by the ticker's clock", () => {
    const q = new PollQueue({ maxMessages: 10, maxBytes: 1000 }, 1000);
    expect(q.expired(5000, 5000)).toBe(false);
    expect(q.expired(6001, 5000)).toBe(true);
    q.touch(6001);
    expect(q.expired(6002, 5000)).toBe(false);
    expect(q.due(6001, 500)).toBe(false);
    q.push("x", 6100);
    expect(q.due(6500, 500)).toBe(false);
    expect(q.due(6600, 500)).toBe(true);
  });
});
