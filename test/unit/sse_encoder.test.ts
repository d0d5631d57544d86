// The SSE wire format, checked against the cases of anycable-go's sse/encoder_test.go and the
// event stream rules (line breaks in data, ids, retry, raw mode).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  dataLines,
  eventText,
  RETRY_NO_RECONNECT_MS,
  SseEncoder,
  sseEncoder,
} from "../../src/transports/sse/encoder.ts";

const text = (frame: unknown): string => {
  assert.ok(frame instanceof Uint8Array, `a frame of bytes, got ${typeof frame}`);
  return new TextDecoder().decode(frame);
};

const full = new SseEncoder({ unwrap: false, raw: false });
const get = new SseEncoder({ unwrap: true, raw: false });
const getRaw = new SseEncoder({ unwrap: true, raw: true });
const postRaw = new SseEncoder({ unwrap: false, raw: true });

describe("SSE data lines", () => {
  it("splits every line terminator (LF, CR, CRLF) into a data: field of its own", () => {
    assert.equal(dataLines("a\r\nb\rc\nd"), "data: a\ndata: b\ndata: c\ndata: d");
    assert.equal(dataLines("one"), "data: one");
    assert.equal(dataLines(""), "data: ");
    assert.equal(dataLines("\n"), "data: \ndata: ");
  });

  it("writes event, data, id and retry fields in anycable-go's order", () => {
    assert.equal(
      eventText("test", "x", { offset: 321, epoch: "bc320", stream_id: "stream-test" }, 5),
      "event: test\ndata: x\nid: 321/bc320/stream-test\nretry: 5",
    );
  });

  it("writes no id without all three of offset, epoch and stream", () => {
    assert.equal(eventText("", "x", { offset: 0, epoch: "e", stream_id: "s" }), "data: x");
    assert.equal(eventText("", "x", { offset: 1, epoch: "", stream_id: "s" }), "data: x");
    assert.equal(eventText("", "x", { offset: 1, epoch: "e" }), "data: x");
  });

  it("keeps a stream name with slashes whole in the id, and drops an id that cannot be one line", () => {
    assert.equal(eventText("", "x", { offset: 2, epoch: "e", stream_id: "a/b/c" }), "data: x\nid: 2/e/a/b/c");
    assert.equal(eventText("", "x", { offset: 2, epoch: "e", stream_id: "a\nid: 9/x/y" }), "data: x");
    assert.equal(eventText("", "x", { offset: 2, epoch: "e", stream_id: "a\0" }), "data: x");
  });

  it("never lets a type start a field of its own", () => {
    assert.equal(eventText("bad\ndata: injected", "x"), "event: baddata: injected\ndata: x");
  });
});

describe("SseEncoder", () => {
  it("has one id per variant, and one shared encoder per variant", () => {
    assert.deepEqual(
      [get.id, getRaw.id, full.id, postRaw.id],
      ["sse", "sse-raw", "sse-full", "sse-full-raw"],
    );
    assert.equal(sseEncoder({ unwrap: true, raw: false }), sseEncoder({ unwrap: true, raw: false }));
    assert.notEqual(sseEncoder({ unwrap: true, raw: false }), sseEncoder({ unwrap: true, raw: true }));
  });

  it("decodes nothing: SSE clients send no frames", () => {
    assert.equal(get.decode('{"command":"subscribe","identifier":"x"}').ok, false);
  });

  describe("replies", () => {
    it("a data message without type: the whole JSON (POST), or the message only (GET)", () => {
      const reply = { identifier: "test_channel", message: "hello" };
      assert.equal(
        text(full.encodeReply(reply)),
        'data: {"identifier":"test_channel","message":"hello"}\n\n',
      );
      assert.equal(text(get.encodeReply(reply)), "data: hello\n\n");
      assert.equal(text(getRaw.encodeReply(reply)), "data: hello\n\n");
      assert.equal(
        text(get.encodeReply({ identifier: "x", message: { a: [1, "b"] } })),
        'data: {"a":[1,"b"]}\n\n',
      );
      assert.equal(text(get.encodeReply({ identifier: "x" })), "data: null\n\n");
    });

    it("splits a multi-line message (Turbo Stream HTML) into data lines", () => {
      const message = "<turbo-stream>\n<template>\nhi\n</template>\n</turbo-stream>";
      assert.equal(
        text(get.encodeReply({ identifier: "t", message })),
        "data: <turbo-stream>\ndata: <template>\ndata: hi\ndata: </template>\ndata: </turbo-stream>\n\n",
      );
    });

    it("a typed reply: its type as the event, the whole reply as data, with its position", () => {
      const reply = {
        type: "test",
        identifier: "test_channel",
        message: "a\nb",
        stream_id: "stream-test",
        epoch: "bc320",
        offset: 321,
      };
      const expected =
        "event: test\n" +
        'data: {"type":"test","identifier":"test_channel","message":"a\\nb","stream_id":"stream-test","epoch":"bc320","offset":321}\n' +
        "id: 321/bc320/stream-test\n\n";
      assert.equal(text(full.encodeReply(reply)), expected);
      assert.equal(text(get.encodeReply(reply)), expected);
    });

    it("raw mode drops typed replies (welcome, confirmations, pings, disconnects)", () => {
      for (const type of ["welcome", "confirm_subscription", "ping", "disconnect", "test"]) {
        assert.equal(getRaw.encodeReply({ type, message: 1 }), null);
        assert.equal(postRaw.encodeReply({ type, message: 1 }), null);
      }
    });

    it("pings are ping events", () => {
      assert.equal(
        text(get.encodeReply({ type: "ping", message: 1694041735 })),
        'event: ping\ndata: {"type":"ping","message":1694041735}\n\n',
      );
    });

    it("a disconnect without reconnect tells EventSource to wait a year (retry:), one with reconnect does not", () => {
      assert.equal(
        text(get.encodeReply({ type: "disconnect", reason: "remote", reconnect: false })),
        `event: disconnect\ndata: {"type":"disconnect","reason":"remote","reconnect":false}\nretry: ${RETRY_NO_RECONNECT_MS}\n\n`,
      );
      assert.equal(RETRY_NO_RECONNECT_MS, 31536000000);
      assert.equal(
        text(get.encodeReply({ type: "disconnect", reason: "server_restart", reconnect: true })),
        'event: disconnect\ndata: {"type":"disconnect","reason":"server_restart","reconnect":true}\n\n',
      );
    });

    it("a message the format cannot carry is undefined (counted as a failed send)", () => {
      assert.equal(get.encodeReply({ type: "x", message: 1n }), undefined);
      assert.equal(get.encodeReply({ identifier: "x", message: 1n }), undefined);
    });
  });

  describe("transmissions", () => {
    it("are read as a reply and encoded as one", () => {
      const json = '{"type":"test","identifier":"test_channel","message":"hello"}';
      assert.equal(text(full.encodeTransmission(json)), `event: test\ndata: ${json}\n\n`);
      assert.equal(text(full.encodeTransmission('{"message":"hello"}')), 'data: {"message":"hello"}\n\n');
      assert.equal(
        text(get.encodeTransmission('{"identifier":"x","message":{"echo":"hi"}}')),
        'data: {"echo":"hi"}\n\n',
      );
    });

    it("refuse what is not a reply object", () => {
      assert.equal(get.encodeTransmission("not json"), undefined);
      assert.equal(get.encodeTransmission("[1]"), undefined);
      assert.equal(get.encodeTransmission('{"type":1}'), undefined);
    });
  });

  describe("broadcasts", () => {
    const meta = { stream_id: "chat/1", epoch: "y2023", offset: 7 };

    it("GET: the data only (a JSON string as its text), with the id", () => {
      assert.equal(text(get.encodeBroadcast("id", '{"a":1}', meta)), 'data: {"a":1}\nid: 7/y2023/chat/1\n\n');
      assert.equal(
        text(get.encodeBroadcast("id", '"hello\\nworld"', meta)),
        "data: hello\ndata: world\nid: 7/y2023/chat/1\n\n",
      );
      assert.equal(text(get.encodeBroadcast("id", "42")), "data: 42\n\n");
      assert.equal(text(getRaw.encodeBroadcast("id", '"x"')), "data: x\n\n");
    });

    it("POST: the whole Action Cable message", () => {
      assert.equal(
        text(full.encodeBroadcast('{"channel":"C"}', '{"a":1}', meta)),
        'data: {"identifier":"{\\"channel\\":\\"C\\"}","message":{"a":1},"stream_id":"chat/1","epoch":"y2023","offset":7}\nid: 7/y2023/chat/1\n\n',
      );
      assert.equal(text(postRaw.encodeBroadcast("i", "1")), 'data: {"identifier":"i","message":1}\n\n');
    });

    it("a typed broadcast (presence) is an event with the whole message, dropped in raw mode", () => {
      assert.equal(
        text(get.encodeBroadcast("i", '{"type":"join","id":"u"}', { type: "presence" })),
        'event: presence\ndata: {"type":"presence","identifier":"i","message":{"type":"join","id":"u"}}\n\n',
      );
      assert.equal(getRaw.encodeBroadcast("i", "{}", { type: "presence" }), null);
    });
  });
});
