import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create, fromBinary, ScalarType, toBinary } from "@bufbuild/protobuf";
import {
  Command,
  CommandSchema,
  HistoryRequestSchema,
  MessageSchema,
  ReplySchema,
  StreamHistoryRequestSchema,
  Type,
  TypeSchema,
} from "../../gen/action_cable/message_pb.ts";
import type { Reply } from "../../src/protocols/encoder.ts";
import { msgpackValue } from "../../src/protocols/msgpack_encoder.ts";
import {
  COMMAND_NAMES,
  HISTORY_REQUEST_FIELDS,
  MESSAGE_FIELDS,
  protobufEncoder,
  protobufExtEncoder,
  REPLY_FIELDS,
  STREAM_HISTORY_REQUEST_FIELDS,
  TYPE_NUMBERS,
} from "../../src/protocols/protobuf_encoder.ts";
import { clientUnpack, MessageType, ProtobufEncoder, ReplyType } from "../support/anycable_encoders.ts";

// --- a tiny test-side protobuf writer, to build frames the client libraries will not produce
const te = new TextEncoder();
function varint(v: number | bigint): number[] {
  let n = BigInt.asUintN(64, BigInt(v));
  const out: number[] = [];
  while (n >= 0x80n) {
    out.push(Number(n & 0x7fn) | 0x80);
    n >>= 7n;
  }
  out.push(Number(n));
  return out;
}
const tag = (no: number, wire: number) => varint(no * 8 + wire);
const vField = (no: number, v: number | bigint) => [...tag(no, 0), ...varint(v)];
const lField = (no: number, payload: number[]) => [...tag(no, 2), ...varint(payload.length), ...payload];
const sField = (no: number, s: string) => lField(no, [...te.encode(s)]);
const u8 = (a: number[]) => new Uint8Array(a);
/** One unknown field of every wire type, a nested group included. */
const UNKNOWN = [
  ...vField(100, 300),
  ...tag(101, 1),
  ...[1, 2, 3, 4, 5, 6, 7, 8],
  ...sField(102, "ignored"),
  ...tag(103, 5),
  ...[1, 2, 3, 4],
  ...tag(104, 3),
  ...vField(1, 5),
  ...tag(2, 3),
  ...sField(9, "x"),
  ...tag(2, 4),
  ...tag(104, 4),
];

const WIRE_OF_KIND: Record<string, number> = { string: 2, bytes: 2, message: 2, map: 2, list: 2 };
function wireOf(field: (typeof MessageSchema.fields)[number]): number {
  if (field.fieldKind === "scalar") {
    return field.scalar === ScalarType.STRING || field.scalar === ScalarType.BYTES ? 2 : 0;
  }
  if (field.fieldKind === "enum") return 0;
  return WIRE_OF_KIND[field.fieldKind];
}

describe("protobuf encoder: the codec's tables are the schema's (gen/action_cable)", () => {
  const check = (schema: typeof MessageSchema, table: Record<string, number>) => {
    assert.deepEqual(
      Object.fromEntries(schema.fields.map((f) => [f.name, f.number])),
      table,
      `${schema.typeName} field numbers`,
    );
  };
  it("field numbers", () => {
    check(MessageSchema, MESSAGE_FIELDS);
    check(ReplySchema as unknown as typeof MessageSchema, REPLY_FIELDS);
    check(HistoryRequestSchema as unknown as typeof MessageSchema, HISTORY_REQUEST_FIELDS);
    check(StreamHistoryRequestSchema as unknown as typeof MessageSchema, STREAM_HISTORY_REQUEST_FIELDS);
  });
  it("the wire types the decoder expects are the fields' types", () => {
    const expected: Record<string, number> = {
      type: 0,
      command: 0,
      identifier: 2,
      data: 2,
      message: 2,
      reason: 2,
      reconnect: 0,
      history: 2,
    };
    for (const f of MessageSchema.fields) assert.equal(wireOf(f), expected[f.name], f.name);
    const streams = HistoryRequestSchema.fields.find((f) => f.name === "streams")!;
    assert.equal(streams.fieldKind, "map");
    if (streams.fieldKind === "map") {
      assert.equal(streams.mapKey, ScalarType.STRING);
      assert.equal(streams.message?.typeName, "action_cable.StreamHistoryRequest");
    }
  });
  it("enum values", () => {
    assert.deepEqual(
      Object.fromEntries(TypeSchema.values.map((v) => [v.name, v.number])),
      Object.fromEntries(TYPE_NUMBERS),
    );
    assert.deepEqual(
      Object.fromEntries(CommandSchema.values.filter((v) => v.number !== 0).map((v) => [v.number, v.name])),
      Object.fromEntries(COMMAND_NAMES),
    );
  });
});

describe("protobuf encoder: the same bytes as @bufbuild/protobuf for valid messages", () => {
  const replies: Reply[] = [
    { type: "welcome", sid: "sid-1", restored: true, restored_ids: ["a", "", "ü"] },
    { type: "ping", message: 1_700_000_000_123 },
    { type: "disconnect", reason: "remote", reconnect: true },
    { type: "disconnect", reason: "unauthorized", reconnect: false },
    { type: "confirm_history", identifier: "x" },
    { identifier: "x", message: { a: [1, "b"] }, stream_id: "s", epoch: "e", offset: 2 ** 40 },
    { type: "presence", identifier: "x", message: null },
  ];
  for (const r of replies) {
    it(JSON.stringify(r), () => {
      const c = r.type === "disconnect" ? { type: r.type, reason: r.reason, reconnect: r.reconnect } : r;
      const message = c.message === undefined || c.message === null ? undefined : msgpackValue(c.message)!;
      const type = TYPE_NUMBERS.get(c.type ?? "") ?? Type.no_type;
      const ext = toBinary(
        ReplySchema,
        create(ReplySchema, {
          type,
          identifier: c.identifier,
          message,
          reason: c.reason,
          reconnect: c.reconnect,
          streamId: c.stream_id,
          epoch: c.epoch,
          offset: BigInt(c.offset ?? 0),
          sid: c.sid,
          restored: c.restored,
          restoredIds: c.restored_ids,
        }),
      );
      assert.deepEqual(protobufExtEncoder.encodeReply(r), ext);
      const v1 = toBinary(
        MessageSchema,
        create(MessageSchema, {
          type,
          identifier: c.identifier,
          message,
          reason: c.reason,
          reconnect: c.reconnect,
        }),
      );
      assert.deepEqual(protobufEncoder.encodeReply(r), v1);
    });
  }
  it("decodes what @bufbuild/protobuf encodes", () => {
    const frame = toBinary(
      MessageSchema,
      create(MessageSchema, {
        command: Command.history,
        identifier: "id ü",
        data: "d",
        history: create(HistoryRequestSchema, {
          since: 1681828329n,
          streams: { a: create(StreamHistoryRequestSchema, { epoch: "e", offset: 9007199254740991n }) },
        }),
      }),
    );
    assert.deepEqual(protobufEncoder.decode(frame), {
      ok: true,
      command: {
        command: "history",
        identifier: "id ü",
        data: "d",
        history: { since: 1681828329, streams: { a: { epoch: "e", offset: 9007199254740991 } } },
      },
    });
  });
  it("rejects the wrong wire type that @bufbuild/protobuf reads as a different field value", () => {
    // identifier (field 3, a string) sent as varint 0: bufbuild reads "0" as the string's length.
    const frame = u8([...vField(2, 1), ...vField(3, 0)]);
    assert.equal(fromBinary(MessageSchema, frame).identifier, "");
    assert.equal(protobufEncoder.decode(frame).ok, false);
  });
});

describe("protobuf encoder: decode", () => {
  const base = [...vField(2, 3), ...sField(3, "id"), ...sField(4, '{"action":"x"}')];
  const want = { command: "message", identifier: "id", data: '{"action":"x"}' };
  it("skips unknown fields of every wire type, groups included", () => {
    assert.deepEqual(protobufEncoder.decode(u8([...UNKNOWN, ...base, ...UNKNOWN])), {
      ok: true,
      command: want,
    });
    const history = lField(8, [
      ...UNKNOWN,
      ...vField(1, 7),
      ...lField(2, [
        ...UNKNOWN,
        ...sField(1, "st"),
        ...lField(2, [...UNKNOWN, ...sField(2, "e"), ...vField(3, 4)]),
      ]),
    ]);
    assert.deepEqual(protobufEncoder.decode(u8([...base, ...history])), {
      ok: true,
      command: { ...want, history: { since: 7, streams: { st: { epoch: "e", offset: 4 } } } },
    });
  });
  it("checks and ignores the server-to-client fields a client may send", () => {
    const frame = u8([...vField(1, 3), ...base, ...lField(5, [0xc0]), ...sField(6, "r"), ...vField(7, 1)]);
    assert.deepEqual(protobufEncoder.decode(frame), { ok: true, command: want });
  });
  it("the last value of a repeated scalar wins; repeated history messages merge", () => {
    const frame = u8([
      ...sField(3, "first"),
      ...base,
      ...lField(8, [...vField(1, 1), ...lField(2, [...sField(1, "a"), ...lField(2, vField(3, 1))])]),
      ...lField(8, [...vField(1, 2), ...lField(2, [...sField(1, "b"), ...lField(2, sField(2, "e"))])]),
    ]);
    assert.deepEqual(protobufEncoder.decode(frame), {
      ok: true,
      command: {
        ...want,
        history: { since: 2, streams: { a: { epoch: "", offset: 1 }, b: { epoch: "e", offset: 0 } } },
      },
    });
  });
  it("a map entry without key or value has zero values", () => {
    const frame = u8([...vField(2, 4), ...lField(8, [...lField(2, []), ...lField(2, sField(1, "k"))])]);
    assert.deepEqual(protobufEncoder.decode(frame), {
      ok: true,
      command: {
        command: "history",
        identifier: "",
        history: { streams: { "": { epoch: "", offset: 0 }, k: { epoch: "", offset: 0 } } },
      },
    });
  });
  it("command numbers: 0 is no command, unknown numbers are unknown_command", () => {
    assert.deepEqual(protobufEncoder.decode(u8([])), { ok: true, command: { command: "", identifier: "" } });
    assert.deepEqual(protobufEncoder.decode(u8(vField(2, 6))), {
      ok: true,
      command: { command: "whisper", identifier: "" },
    });
    assert.deepEqual(protobufEncoder.decode(u8(vField(2, 99))), {
      ok: true,
      command: { command: "unknown_command", identifier: "" },
    });
    assert.deepEqual(protobufEncoder.decode(u8(vField(2, -1))), {
      ok: true,
      command: { command: "unknown_command", identifier: "" },
    });
  });
  it("int64 since keeps its sign; offsets round-trip exactly up to 2^53", () => {
    const frame = u8([
      ...vField(2, 4),
      ...lField(8, [
        ...vField(1, -5),
        ...lField(2, [...sField(1, "a"), ...lField(2, vField(3, 2 ** 53 - 1))]),
      ]),
    ]);
    assert.deepEqual(protobufEncoder.decode(frame), {
      ok: true,
      command: {
        command: "history",
        identifier: "",
        history: { since: -5, streams: { a: { epoch: "", offset: 2 ** 53 - 1 } } },
      },
    });
  });
  it('a stream called "__proto__" is an own entry', () => {
    const frame = u8([
      ...vField(2, 4),
      ...lField(8, lField(2, [...sField(1, "__proto__"), ...lField(2, vField(3, 1))])),
    ]);
    const r = protobufEncoder.decode(frame);
    assert.ok(r.ok);
    const streams = r.command.history?.streams ?? {};
    assert.deepEqual(Object.entries(streams), [["__proto__", { epoch: "", offset: 1 }]]);
    assert.equal(Object.getPrototypeOf(streams), Object.prototype);
  });
  it("keeps a leading byte-order mark in strings", () => {
    const r = protobufEncoder.decode(u8([...vField(2, 1), ...sField(3, "\uFEFFid")]));
    assert.deepEqual(r, { ok: true, command: { command: "subscribe", identifier: "\uFEFFid" } });
  });
  it("reads a frame that is a view into a larger buffer", () => {
    const inner = new ProtobufEncoder().encode({ command: "subscribe", identifier: "x" });
    const big = new Uint8Array(inner.length + 8);
    big.fill(0xff);
    big.set(inner, 4);
    assert.deepEqual(protobufEncoder.decode(big.subarray(4, 4 + inner.length)), {
      ok: true,
      command: { command: "subscribe", identifier: "x" },
    });
  });
  it("every strict prefix of a frame either decodes or fails cleanly, never beyond the frame", () => {
    const frame = u8([
      ...base,
      ...lField(8, [...vField(1, 7), ...lField(2, [...sField(1, "st"), ...lField(2, vField(3, 4))])]),
    ]);
    for (let n = 0; n < frame.length; n++) {
      const r = protobufEncoder.decode(frame.subarray(0, n));
      if (r.ok) assert.ok(!r.command.history?.streams, `prefix ${n} cannot hold the whole history`);
    }
  });
});

describe("protobuf encoder: v1 (Message) and ext (Reply) server messages", () => {
  const bytes = (f: unknown) => [...(f as Uint8Array)];
  it("v1 welcome has no sid field; ext carries sid, restored and restored_ids", () => {
    const r: Reply = { type: "welcome", sid: "s", restored: true, restored_ids: ["a", ""] };
    assert.deepEqual(bytes(protobufEncoder.encodeReply(r)), vField(1, 1));
    assert.deepEqual(bytes(protobufExtEncoder.encodeReply(r)), [
      ...vField(1, 1),
      ...sField(9, "s"),
      ...vField(10, 1),
      ...sField(11, "a"),
      ...sField(11, ""),
    ]);
    const decoded = ReplyType.toObject(ReplyType.decode(protobufExtEncoder.encodeReply(r) as Uint8Array));
    assert.deepEqual(decoded.restored_ids, ["a", ""]);
  });
  it("a broadcast uses identifier/message fields 3/5 (v1) and 2/3 (ext), message msgpack-encoded", () => {
    const payload = bytes(msgpackValue({ a: 1 }));
    assert.deepEqual(bytes(protobufEncoder.encodeBroadcast("x", '{"a":1}', { stream_id: "s", offset: 1 })), [
      ...sField(3, "x"),
      ...lField(5, payload),
    ]);
    assert.deepEqual(
      bytes(protobufExtEncoder.encodeBroadcast("x", '{"a":1}', { stream_id: "s", offset: 1 })),
      [...sField(2, "x"), ...lField(3, payload), ...sField(6, "s"), ...vField(8, 1)],
    );
  });
  it("a null payload is a present msgpack nil", () => {
    const frame = protobufExtEncoder.encodeBroadcast("x", "null") as Uint8Array;
    assert.deepEqual([...frame], [...sField(2, "x"), ...lField(3, [0xc0])]);
    const decoded = ReplyType.decode(frame) as unknown as { message: Uint8Array };
    assert.equal(clientUnpack(decoded.message), null);
  });
  it("type names outside the enum are no_type (omitted); enum names are their numbers", () => {
    assert.deepEqual(bytes(protobufEncoder.encodeBroadcast("x", "1", { type: "presence" })), [
      ...sField(3, "x"),
      ...lField(5, [0x01]),
    ]);
    assert.deepEqual(bytes(protobufEncoder.encodeReply({ type: "reject_history", identifier: "x" })), [
      ...vField(1, 7),
      ...sField(3, "x"),
    ]);
    assert.deepEqual(bytes(protobufEncoder.encodeReply({ type: "constructor" })), []);
  });
  it("disconnect: reconnect false is the proto3 default (absent), true is written", () => {
    assert.deepEqual(
      bytes(protobufEncoder.encodeReply({ type: "disconnect", reason: "r", reconnect: false })),
      [...vField(1, 2), ...sField(6, "r")],
    );
    assert.deepEqual(
      bytes(protobufExtEncoder.encodeReply({ type: "disconnect", reason: "r", reconnect: true })),
      [...vField(1, 2), ...sField(4, "r"), ...vField(5, 1)],
    );
    const m = MessageType.toObject(
      MessageType.decode(protobufEncoder.encodeReply({ type: "disconnect" }) as Uint8Array),
      {
        defaults: true,
      },
    );
    assert.equal(m.reconnect, false);
  });
  it("offsets that are not non-negative safe integers are not encoded", () => {
    assert.equal(protobufExtEncoder.encodeReply({ identifier: "x", offset: -1 }), undefined);
    assert.equal(protobufExtEncoder.encodeReply({ identifier: "x", offset: 1.5 }), undefined);
    assert.equal(protobufExtEncoder.encodeBroadcast("x", "1", { offset: -1 }), undefined);
    assert.deepEqual(bytes(protobufExtEncoder.encodeBroadcast("x", "1", { offset: 2 ** 40 })).slice(-7), [
      ...vField(8, 2 ** 40),
    ]);
  });
  it("ids tell the two apart (the encode-once cache key)", () => {
    assert.equal(protobufEncoder.id, "protobuf");
    assert.equal(protobufExtEncoder.id, "protobuf-ext");
  });
});
