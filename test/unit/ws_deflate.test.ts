// permessage-deflate on our own framing (the Deno listener): offers accepted or declined, client
// messages inflated (whole or fragmented, bounded, corrupt ones failed), server frames deflated
// with RSV1 and readable by a standard inflater.
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { describe, it } from "node:test";
import { constants, deflateRawSync, inflateRawSync } from "node:zlib";
import { DEFLATE_RESPONSE, negotiateDeflate } from "../../src/runtime/ws_deflate.ts";
import { encodeDeflatedText, FrameParser, Opcode, type WsEvent } from "../../src/runtime/ws_frames.ts";

/** A masked client frame with the given first byte flags. */
function frame(opcode: number, data: Buffer, opts: { fin?: boolean; rsv1?: boolean } = {}): Buffer {
  const b0 = ((opts.fin ?? true) ? 0x80 : 0) | (opts.rsv1 ? 0x40 : 0) | opcode;
  const head =
    data.length < 126 ? Buffer.from([b0, 0x80 | data.length]) : Buffer.from([b0, 0x80 | 126, 0, 0]);
  if (data.length >= 126) head.writeUInt16BE(data.length, 2);
  const mask = Buffer.from([1, 2, 3, 4]);
  return Buffer.concat([head, mask, Buffer.from(data.map((b, i) => b ^ mask[i % 4]!))]);
}

/** What a client compressing without context takeover sends: deflated, the 4-byte tail cut. */
function compress(text: string): Buffer {
  const out = deflateRawSync(Buffer.from(text), { finishFlush: constants.Z_SYNC_FLUSH });
  return out.subarray(0, out.length - 4);
}

function parse(bytes: Buffer, max = 1 << 20, deflate = true): WsEvent[] {
  const out: WsEvent[] = [];
  new FrameParser(max, deflate).push(bytes, out);
  return out;
}

describe("permessage-deflate negotiation", () => {
  it("accepts the common offers, always without context takeover both ways", () => {
    for (const offer of [
      "permessage-deflate",
      "permessage-deflate; client_max_window_bits",
      "permessage-deflate; client_max_window_bits=10; server_no_context_takeover",
      "permessage-deflate; server_max_window_bits=15; client_no_context_takeover",
      'permessage-deflate; client_max_window_bits="12"',
      "x-webkit-deflate-frame, permessage-deflate",
    ]) {
      assert.equal(negotiateDeflate(offer), DEFLATE_RESPONSE, offer);
    }
  });

  it("declines offers it cannot honour, and falls through to the next one", () => {
    for (const offer of [
      undefined,
      "",
      "x-webkit-deflate-frame",
      "permessage-deflate; server_max_window_bits=10",
      "permessage-deflate; client_max_window_bits=16",
      "permessage-deflate; unknown_param",
      "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
      "permessage-deflate; client_no_context_takeover=1",
    ]) {
      assert.equal(negotiateDeflate(offer), undefined, String(offer));
    }
    assert.equal(
      negotiateDeflate("permessage-deflate; server_max_window_bits=9, permessage-deflate"),
      DEFLATE_RESPONSE,
    );
  });
});

describe("compressed client messages", () => {
  const text = JSON.stringify({ command: "message", data: "hello ".repeat(200) });

  it("inflates a compressed text message, and a fragmented one (RSV1 on its first frame only)", () => {
    assert.deepEqual(parse(frame(Opcode.text, compress(text), { rsv1: true })), [
      { kind: "text", data: text, size: text.length },
    ]);
    const body = compress(text);
    const half = Math.floor(body.length / 2);
    const fragmented = Buffer.concat([
      frame(Opcode.text, body.subarray(0, half), { fin: false, rsv1: true }),
      frame(Opcode.continuation, body.subarray(half)),
    ]);
    assert.deepEqual(parse(fragmented), [{ kind: "text", data: text, size: text.length }]);
    assert.deepEqual(parse(frame(Opcode.text, Buffer.from("plain"))), [
      { kind: "text", data: "plain", size: 5 },
    ]);
  });

  it("fails a message inflating past the size limit with 1009, corrupt data with 1007", () => {
    const bomb = compress("x".repeat(100_000));
    assert.ok(bomb.length < 1000, "small on the wire");
    const [tooBig] = parse(frame(Opcode.text, bomb, { rsv1: true }), 10_000);
    assert.deepEqual(tooBig, { kind: "fail", code: 1009, reason: "message too big" });
    const [corrupt] = parse(frame(Opcode.text, Buffer.from([1, 2, 3, 4, 5, 6, 7, 8]), { rsv1: true }));
    assert.deepEqual(corrupt, { kind: "fail", code: 1007, reason: "invalid compressed data" });
  });

  it("refuses RSV1 where it may not be: not negotiated, on a continuation, on a control frame", () => {
    const reserved = { kind: "fail", code: 1002, reason: "reserved bits set" };
    assert.deepEqual(parse(frame(Opcode.text, compress(text), { rsv1: true }), 1 << 20, false)[0], reserved);
    assert.deepEqual(
      parse(
        Buffer.concat([
          frame(Opcode.text, Buffer.from("a"), { fin: false }),
          frame(Opcode.continuation, Buffer.from("b"), { rsv1: true }),
        ]),
      )[0],
      reserved,
    );
    assert.deepEqual(parse(frame(Opcode.ping, Buffer.from("p"), { rsv1: true }))[0], reserved);
  });
});

describe("compressed server frames", () => {
  it("sets RSV1 and deflates without the tail; the same text is deflated once", () => {
    const text = JSON.stringify({ message: "broadcast ".repeat(100) });
    const f = encodeDeflatedText(text);
    assert.equal(f[0], 0x80 | 0x40 | Opcode.text);
    const len = f[1]! & 0x7f;
    const payload = len === 126 ? f.subarray(4) : f.subarray(2);
    assert.ok(payload.length < text.length / 5, "compressed");
    const inflated = inflateRawSync(Buffer.concat([payload, Buffer.from([0, 0, 0xff, 0xff])]), {
      finishFlush: constants.Z_SYNC_FLUSH,
    });
    assert.equal(inflated.toString(), text);
    assert.equal(encodeDeflatedText(text), f, "one compressed copy per broadcast");
  });
});
