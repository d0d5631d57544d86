import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isJsonValue, msgpackEncoder, payloadMsgpack } from "../../src/protocols/msgpack_encoder.ts";
import { clientPack, clientUnpack } from "../support/anycable_encoders.ts";

const te = new TextEncoder();
/** fixstr: 0xa0 | length, then the UTF-8 bytes (strings under 32 bytes). */
const fixstr = (s: string) => [0xa0 | te.encode(s).length, ...te.encode(s)];
const hex = (b: Uint8Array | string | undefined) => Buffer.from(b as Uint8Array).toString("hex");

function nested(depth: number): string {
  return "[".repeat(depth) + "]".repeat(depth);
}

describe("msgpack encoder: wire layout", () => {
  it("a reply is a map with the JSON keys in Reply order, empty fields left out", () => {
    const frame = msgpackEncoder.encodeReply({ identifier: "x", type: "confirm_subscription", sid: "" });
    assert.equal(
      hex(frame),
      hex(
        new Uint8Array([
          0x82,
          ...fixstr("type"),
          ...fixstr("confirm_subscription"),
          ...fixstr("identifier"),
          ...fixstr("x"),
        ]),
      ),
    );
  });
  it("a disconnect always holds reason and reconnect, false included", () => {
    const frame = msgpackEncoder.encodeReply({ type: "disconnect", reason: "remote", reconnect: false });
    assert.equal(
      hex(frame),
      hex(
        new Uint8Array([
          0x83,
          ...fixstr("type"),
          ...fixstr("disconnect"),
          ...fixstr("reason"),
          ...fixstr("remote"),
          ...fixstr("reconnect"),
          0xc2,
        ]),
      ),
    );
  });
  it("integers stay integers (a millisecond ping is a uint64), fractions are float64", () => {
    const ping = msgpackEncoder.encodeReply({ type: "ping", message: 1_700_000_000_123 }) as Uint8Array;
    const tail = ping.subarray(ping.length - 9);
    assert.equal(tail[0], 0xcf, "uint64");
    assert.equal(new DataView(tail.buffer, tail.byteOffset).getBigUint64(1), 1_700_000_000_123n);
    const seconds = msgpackEncoder.encodeReply({ type: "ping", message: 1_700_000_000 }) as Uint8Array;
    assert.equal(seconds[seconds.length - 5], 0xce, "uint32");
    const frac = msgpackEncoder.encodeBroadcast("x", "2.5") as Uint8Array;
    assert.equal(frac[frac.length - 9], 0xcb, "float64");
  });
  it("a broadcast's payload is the JSON value, keys in order", () => {
    const frame = msgpackEncoder.encodeBroadcast("id", '{"text":"hi","n":[1,null]}', {
      type: "presence",
      offset: 2,
    });
    const decoded = clientUnpack(frame as Uint8Array) as Record<string, unknown>;
    assert.deepEqual(Object.keys(decoded), ["type", "identifier", "message", "offset"]);
    assert.deepEqual(decoded.message, { text: "hi", n: [1, null] });
  });
  it("the memoised payload follows the JSON text it was given", () => {
    const a = payloadMsgpack('{"a":1}');
    assert.equal(payloadMsgpack('{"a":1}'), a, "same text: the same bytes, parsed once");
    assert.deepEqual(clientUnpack(payloadMsgpack('{"a":2}')!), { a: 2 });
    assert.equal(payloadMsgpack("{nope"), undefined);
    assert.deepEqual(clientUnpack(payloadMsgpack('{"a":1}')!), { a: 1 });
  });
  it("a payload nested deeper than the limit is not encoded (and nothing throws)", () => {
    assert.equal(msgpackEncoder.encodeBroadcast("x", nested(20_000)), undefined);
    assert.ok(msgpackEncoder.encodeBroadcast("x", nested(500)));
  });
});

describe("msgpack encoder: decode", () => {
  it("reads a frame that is a view into a larger buffer", () => {
    const inner = clientPack({ command: "subscribe", identifier: "x" });
    const big = new Uint8Array(inner.length + 10);
    big.set(inner, 5);
    assert.deepEqual(msgpackEncoder.decode(big.subarray(5, 5 + inner.length)), {
      ok: true,
      command: { command: "subscribe", identifier: "x" },
    });
  });
  it("ignores unknown keys whatever they hold, and nil fields", () => {
    assert.deepEqual(
      msgpackEncoder.decode(
        clientPack({
          command: "message",
          identifier: null,
          data: "d",
          extra: new Uint8Array([1]),
          history: null,
        }),
      ),
      { ok: true, command: { command: "message", identifier: "", data: "d" } },
    );
  });
  it("an empty map is an empty command (like a JSON {})", () => {
    assert.deepEqual(msgpackEncoder.decode(new Uint8Array([0x80])), {
      ok: true,
      command: { command: "", identifier: "" },
    });
  });
  it("whisper data keeps its shape; integer map keys become object keys", () => {
    const data = { event: "typing", list: [1, 2.5, "x", null, { deep: true }] };
    assert.deepEqual(msgpackEncoder.decode(clientPack({ command: "whisper", identifier: "x", data })), {
      ok: true,
      command: { command: "whisper", identifier: "x", data },
    });
    // {command: "whisper", data: {1: "a"}}
    const intKey = new Uint8Array([
      0x82,
      ...fixstr("command"),
      ...fixstr("whisper"),
      ...fixstr("data"),
      0x81,
      0x01,
      0xa1,
      0x61,
    ]);
    assert.deepEqual(msgpackEncoder.decode(intKey), {
      ok: true,
      command: { command: "whisper", identifier: "", data: { 1: "a" } },
    });
  });
  it("data nested beyond 10000 levels is an error, not a stack overflow", () => {
    const frameOfDepth = (depth: number) => {
      // {data: [[...[]...]]}: `depth` arrays, each fixarray(1) around the next, an empty one inside
      const frame = new Uint8Array(6 + depth);
      frame.set([0x81, ...fixstr("data")]);
      frame.fill(0x91, 6, 6 + depth - 1);
      frame[6 + depth - 1] = 0x90;
      return frame;
    };
    assert.equal(msgpackEncoder.decode(frameOfDepth(10_000)).ok, true);
    const r = msgpackEncoder.decode(frameOfDepth(10_001));
    assert.equal(r.ok, false);
    if (!r.ok) assert.match(r.error, /too deep/);
    assert.equal(isJsonValue(JSON.parse(nested(10_000))), true);
    assert.equal(isJsonValue(JSON.parse(nested(10_001))), false);
  });
});
