// RFC 6455 server framing (src/runtime/ws_frames.ts): client frames in any chunking, every
// protocol violation closed with its code, server frames with the right length forms.
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { describe, it } from "node:test";
import {
  acceptKey,
  encodeBinary,
  encodeClose,
  encodeText,
  FrameParser,
  Opcode,
  type WsEvent,
} from "../../src/runtime/ws_frames.ts";

/** A client frame: masked unless told otherwise. */
function frame(
  opcode: number,
  payload: Uint8Array | string,
  opts: { fin?: boolean; mask?: boolean; rsv?: number } = {},
): Buffer {
  const data = typeof payload === "string" ? Buffer.from(payload) : Buffer.from(payload);
  const fin = opts.fin ?? true;
  const masked = opts.mask ?? true;
  const b0 = (fin ? 0x80 : 0) | ((opts.rsv ?? 0) << 4) | opcode;
  let head: Buffer;
  if (data.length < 126) head = Buffer.from([b0, (masked ? 0x80 : 0) | data.length]);
  else if (data.length < 65536) {
    head = Buffer.from([b0, (masked ? 0x80 : 0) | 126, 0, 0]);
    head.writeUInt16BE(data.length, 2);
  } else {
    head = Buffer.alloc(10);
    head[0] = b0;
    head[1] = (masked ? 0x80 : 0) | 127;
    head.writeUInt32BE(Math.floor(data.length / 2 ** 32), 2);
    head.writeUInt32BE(data.length >>> 0, 6);
  }
  if (!masked) return Buffer.concat([head, data]);
  const mask = Buffer.from([0x12, 0x34, 0x56, 0x78]);
  const body = Buffer.from(data.map((b, i) => b ^ mask[i % 4]!));
  return Buffer.concat([head, mask, body]);
}

function parse(input: Buffer, max = 1 << 20, chunk = input.length): WsEvent[] {
  const bytes = Buffer.from(input); // the parser unmasks in place
  const p = new FrameParser(max);
  const out: WsEvent[] = [];
  for (let i = 0; i < bytes.length; i += chunk) p.push(bytes.subarray(i, i + chunk), out);
  return out;
}

const fail = (code: number) => (events: WsEvent[]) => {
  const last = events.at(-1);
  assert.equal(last?.kind, "fail", JSON.stringify(events));
  assert.equal(last?.kind === "fail" && last.code, code);
};

describe("FrameParser", () => {
  it("parses text and binary messages in any chunking, empty ones included", () => {
    const bytes = Buffer.concat([
      frame(Opcode.text, "héllo"),
      frame(Opcode.binary, new Uint8Array([1, 2, 3])),
      frame(Opcode.text, ""),
      frame(Opcode.text, "x".repeat(300)),
      frame(Opcode.binary, new Uint8Array(70_000).fill(7)),
    ]);
    for (const chunk of [bytes.length, 1, 3, 7, 1000]) {
      const events = parse(bytes, 1 << 20, chunk);
      assert.deepEqual(
        events.map((e) => e.kind),
        ["text", "binary", "text", "text", "binary"],
        `chunk ${chunk}`,
      );
      assert.deepEqual(events[0], { kind: "text", data: "héllo", size: 6 });
      assert.deepEqual(events[1]?.kind === "binary" && [...events[1].data], [1, 2, 3]);
      assert.deepEqual(events[2], { kind: "text", data: "", size: 0 });
      assert.equal(events[3]?.kind === "text" && events[3].data.length, 300);
      const big = events[4];
      assert.ok(big?.kind === "binary" && big.data.length === 70_000 && big.data.every((b) => b === 7));
    }
  });

  it("joins fragments, with control frames in between", () => {
    const bytes = Buffer.concat([
      frame(Opcode.text, "ab", { fin: false }),
      frame(Opcode.ping, "p"),
      frame(Opcode.continuation, "cd", { fin: false }),
      frame(Opcode.continuation, "ef"),
    ]);
    const events = parse(bytes, 100, 2);
    assert.equal(events[0]?.kind, "ping");
    assert.equal(events[0]?.kind === "ping" && events[0].payload.toString(), "p");
    assert.deepEqual(events[1], { kind: "text", data: "abcdef", size: 6 });
  });

  it("reads close frames: code and reason, or none", () => {
    const payload = Buffer.concat([Buffer.from([0x03, 0xe8]), Buffer.from("bye")]);
    assert.deepEqual(parse(frame(Opcode.close, payload)), [{ kind: "close", code: 1000, reason: "bye" }]);
    assert.deepEqual(parse(frame(Opcode.close, "")), [{ kind: "close", code: 1005, reason: "" }]);
    fail(1002)(parse(frame(Opcode.close, new Uint8Array([3]))));
    fail(1002)(parse(frame(Opcode.close, new Uint8Array([0x03, 0xed])))); // 1005 may not be sent
    fail(1002)(parse(frame(Opcode.close, new Uint8Array([0x03, 0xe7])))); // 999
  });

  it("fails protocol violations with 1002 and reads nothing after", () => {
    fail(1002)(parse(frame(Opcode.text, "x", { mask: false })));
    fail(1002)(parse(frame(Opcode.text, "x", { rsv: 4 })));
    fail(1002)(parse(frame(3, "x")));
    fail(1002)(parse(frame(11, "x")));
    fail(1002)(parse(frame(Opcode.ping, "x".repeat(126))));
    fail(1002)(parse(frame(Opcode.ping, "x", { fin: false })));
    fail(1002)(parse(frame(Opcode.continuation, "x")));
    fail(1002)(parse(Buffer.concat([frame(Opcode.text, "a", { fin: false }), frame(Opcode.text, "b")])));
    const events = parse(Buffer.concat([frame(Opcode.text, "x", { mask: false }), frame(Opcode.text, "y")]));
    assert.equal(events.length, 1);
  });

  it("fails a text message that is not UTF-8 with 1007, fragmented or not", () => {
    fail(1007)(parse(frame(Opcode.text, new Uint8Array([0x68, 0xff, 0xfe]))));
    // a character split across fragments is fine; an unfinished one at the end is not
    const e = Buffer.from("é");
    const split = Buffer.concat([
      frame(Opcode.text, e.subarray(0, 1), { fin: false }),
      frame(Opcode.continuation, e.subarray(1)),
    ]);
    assert.deepEqual(parse(split), [{ kind: "text", data: "é", size: 2 }]);
    fail(1007)(parse(frame(Opcode.text, e.subarray(0, 1))));
    // binary messages are bytes: anything goes
    assert.equal(parse(frame(Opcode.binary, new Uint8Array([0xff])))[0]?.kind, "binary");
    fail(1007)(parse(frame(Opcode.close, new Uint8Array([0x03, 0xe8, 0xff]))));
  });

  it("fails a message over the limit with 1009 as soon as its header says so", () => {
    const big = frame(Opcode.text, "x".repeat(2000));
    fail(1009)(parse(big.subarray(0, 8), 1000));
    const fragmented = Buffer.concat([
      frame(Opcode.binary, new Uint8Array(600), { fin: false }),
      frame(Opcode.continuation, new Uint8Array(600)),
    ]);
    fail(1009)(parse(fragmented, 1000));
    assert.equal(parse(frame(Opcode.text, "x".repeat(1000)), 1000)[0]?.kind, "text");
  });
});

describe("server frames", () => {
  const lengthForm = (f: Buffer) => f[1]!;

  it("use the 7-, 16- and 64-bit length forms", () => {
    assert.equal(lengthForm(encodeText("x".repeat(125))), 125);
    assert.equal(lengthForm(encodeText("x".repeat(126))), 126);
    assert.equal(encodeText("x".repeat(126)).readUInt16BE(2), 126);
    assert.equal(lengthForm(encodeBinary(new Uint8Array(65535))), 126);
    const f = encodeBinary(new Uint8Array(65536));
    assert.equal(lengthForm(f), 127);
    assert.equal(f.readUInt32BE(6), 65536);
    assert.equal(f.length, 65536 + 10);
    assert.equal(encodeText("é")[0], 0x81);
    assert.equal(encodeText("é")[1], 2);
    assert.equal(encodeBinary(new Uint8Array([1]))[0], 0x82);
  });

  it("close frames carry the code and a reason cut to 123 bytes, never inside a character", () => {
    const f = encodeClose(1000, "é".repeat(100));
    assert.equal(f[0], 0x88);
    const payload = f.subarray(2);
    assert.equal(payload.readUInt16BE(0), 1000);
    assert.ok(payload.length - 2 <= 123);
    assert.equal(Buffer.from(payload.subarray(2).toString()).length, payload.length - 2);
    assert.deepEqual([...encodeClose(1005)], [0x88, 0]);
  });

  it("accept key per RFC 6455's example", () => {
    assert.equal(acceptKey("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  });
});
