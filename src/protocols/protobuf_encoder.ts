// actioncable-v1-protobuf and actioncable-v1-ext-protobuf (schema: proto/action_cable/message.proto).
// Clients send action_cable.Message; the server answers with Message (v1) or Reply (ext). The
// `message` bytes field holds the msgpack form of the payload's JSON value.
//
// A small hand-written wire codec rather than the generated code (gen/action_cable/): the
// @bufbuild/protobuf reader does not check the wire type of known fields (a varint where a
// string belongs is read as a length, so a malformed frame can decode as a different command),
// and for these flat messages the hand-written writer is ~2x faster. The field numbers and enum
// values are checked against the generated descriptors in test/unit/protobuf_encoder.test.ts.
import { canonicalReply, replyFromJson } from "./actioncable.ts";
import type {
  BroadcastMeta,
  ClientCommand,
  DecodeResult,
  Encoder,
  Frame,
  HistoryPosition,
  HistoryRequest,
  Reply,
} from "./encoder.ts";
import { msgpackValue, payloadMsgpack } from "./msgpack_encoder.ts";

/** action_cable.Type: reply type name -> number (any other name is no_type = 0). */
export const TYPE_NUMBERS: ReadonlyMap<string, number> = new Map([
  ["no_type", 0],
  ["welcome", 1],
  ["disconnect", 2],
  ["ping", 3],
  ["confirm_subscription", 4],
  ["reject_subscription", 5],
  ["confirm_history", 6],
  ["reject_history", 7],
]);

/** action_cable.Command: number -> command name (0, unset, decodes as "" like a missing JSON key). */
export const COMMAND_NAMES: ReadonlyMap<number, string> = new Map([
  [1, "subscribe"],
  [2, "unsubscribe"],
  [3, "message"],
  [4, "history"],
  [5, "pong"],
  [6, "whisper"],
]);

/** Field numbers. Message is also the v1 server message; Reply the ext one. */
export const MESSAGE_FIELDS = {
  type: 1,
  command: 2,
  identifier: 3,
  data: 4,
  message: 5,
  reason: 6,
  reconnect: 7,
  history: 8,
} as const;
export const HISTORY_REQUEST_FIELDS = { since: 1, streams: 2 } as const;
export const STREAM_HISTORY_REQUEST_FIELDS = { epoch: 2, offset: 3 } as const;
export const REPLY_FIELDS = {
  type: 1,
  identifier: 2,
  message: 3,
  reason: 4,
  reconnect: 5,
  stream_id: 6,
  epoch: 7,
  offset: 8,
  sid: 9,
  restored: 10,
  restored_ids: 11,
} as const;

const VARINT = 0;
const I64 = 1;
const LEN = 2;
const SGROUP = 3;
const EGROUP = 4;
const I32 = 5;
const MAX_GROUP_DEPTH = 64;

class WireError extends Error {}

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const te = new TextEncoder();

/** Reads one message's bytes [pos, end). Every failure throws WireError, caught in decode(). */
class Reader {
  pos: number;
  constructor(
    private readonly buf: Uint8Array,
    start: number,
    readonly end: number,
  ) {
    this.pos = start;
  }

  /** Unsigned varint up to 64 bits (exact below 2^53). */
  varint(): number {
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new WireError("truncated varint");
      const b = this.buf[this.pos++];
      if (i === 9 && b > 1) throw new WireError("varint overflows 64 bits");
      result += (b & 0x7f) * mul;
      if (b < 0x80) return result;
      mul *= 128;
    }
    throw new WireError("varint longer than 10 bytes");
  }

  /** A varint as int64 (two's complement). */
  int64(): number {
    const start = this.pos;
    const u = this.varint();
    if (this.pos - start <= 7) return u; // at most 49 bits: exact, and positive
    // Beyond 2^49 the float sum loses the low bits that decide the sign (-1 is 2^64 - 1): redo
    // it exactly.
    let big = 0n;
    for (let i = this.pos - 1; i >= start; i--) big = (big << 7n) | BigInt(this.buf[i] & 0x7f);
    return Number(BigInt.asIntN(64, big));
  }

  /** [fieldNo, wireType]; undefined at the end. */
  tag(): [number, number] | undefined {
    if (this.pos >= this.end) return undefined;
    const t = this.varint();
    if (t > 0xffffffff) throw new WireError("tag overflows 32 bits");
    const fieldNo = Math.floor(t / 8);
    if (fieldNo === 0) throw new WireError("field number 0");
    return [fieldNo, t % 8];
  }

  /** The sub-range of a length-delimited field, never beyond this message's end. */
  delimited(): [number, number] {
    const len = this.varint();
    if (len > this.end - this.pos) throw new WireError("length exceeds the frame");
    const start = this.pos;
    this.pos += len;
    return [start, this.pos];
  }

  string(): string {
    const [start, end] = this.delimited();
    try {
      return utf8.decode(this.buf.subarray(start, end));
    } catch {
      throw new WireError("string is not valid UTF-8");
    }
  }

  sub(): Reader {
    const [start, end] = this.delimited();
    return new Reader(this.buf, start, end);
  }

  private fixed(n: number): void {
    if (n > this.end - this.pos) throw new WireError("truncated fixed-width field");
    this.pos += n;
  }

  /** Skips an unknown field (proto3: unknown fields are ignored), groups included. */
  skip(fieldNo: number, wire: number, depth = 0): void {
    switch (wire) {
      case VARINT:
        this.varint();
        return;
      case I64:
        this.fixed(8);
        return;
      case LEN:
        this.delimited();
        return;
      case I32:
        this.fixed(4);
        return;
      case SGROUP: {
        if (depth >= MAX_GROUP_DEPTH) throw new WireError("groups nested too deeply");
        for (;;) {
          const t = this.tag();
          if (!t) throw new WireError("unterminated group");
          if (t[1] === EGROUP) {
            if (t[0] !== fieldNo) throw new WireError("mismatched end of group");
            return;
          }
          this.skip(t[0], t[1], depth + 1);
        }
      }
      case EGROUP:
        throw new WireError("unexpected end of group");
      default:
        throw new WireError(`invalid wire type ${wire}`);
    }
  }

  /** Fails unless a known field came with the wire type its schema type has. */
  static expect(fieldNo: number, wire: number, want: number): void {
    if (wire !== want) throw new WireError(`field ${fieldNo} has wire type ${wire}, expected ${want}`);
  }
}

function readPosition(r: Reader, into: HistoryPosition): void {
  for (let t = r.tag(); t; t = r.tag()) {
    const [no, wire] = t;
    if (no === STREAM_HISTORY_REQUEST_FIELDS.epoch) {
      Reader.expect(no, wire, LEN);
      into.epoch = r.string();
    } else if (no === STREAM_HISTORY_REQUEST_FIELDS.offset) {
      Reader.expect(no, wire, VARINT);
      into.offset = r.int64();
    } else r.skip(no, wire);
  }
}

/** A map<string, StreamHistoryRequest> entry: key = 1, value = 2 (missing ones are zero values). */
function readStreamEntry(r: Reader, streams: Map<string, HistoryPosition>): void {
  let key = "";
  let value: HistoryPosition | undefined;
  for (let t = r.tag(); t; t = r.tag()) {
    const [no, wire] = t;
    if (no === 1) {
      Reader.expect(no, wire, LEN);
      key = r.string();
    } else if (no === 2) {
      Reader.expect(no, wire, LEN);
      value ??= { epoch: "", offset: 0 };
      readPosition(r.sub(), value);
    } else r.skip(no, wire);
  }
  streams.set(key, value ?? { epoch: "", offset: 0 });
}

/** HistoryRequest fields merged into `acc` (a repeated embedded message merges, per protobuf). */
function readHistory(r: Reader, acc: { since: number; streams: Map<string, HistoryPosition> }): void {
  for (let t = r.tag(); t; t = r.tag()) {
    const [no, wire] = t;
    if (no === HISTORY_REQUEST_FIELDS.since) {
      Reader.expect(no, wire, VARINT);
      acc.since = r.int64();
    } else if (no === HISTORY_REQUEST_FIELDS.streams) {
      Reader.expect(no, wire, LEN);
      readStreamEntry(r.sub(), acc.streams);
    } else r.skip(no, wire);
  }
}

/** Decodes a client's action_cable.Message into a command. */
export function decodeProtobufCommand(frame: Frame): DecodeResult {
  // anycable-go reads a frame's bytes whatever its kind: a text frame is decoded as protobuf too.
  const bytes = typeof frame === "string" ? te.encode(frame) : frame;
  const r = new Reader(bytes, 0, bytes.byteLength);
  let command = "";
  let identifier = "";
  let data = "";
  let history: { since: number; streams: Map<string, HistoryPosition> } | undefined;
  try {
    for (let t = r.tag(); t; t = r.tag()) {
      const [no, wire] = t;
      switch (no) {
        case MESSAGE_FIELDS.type:
        case MESSAGE_FIELDS.reconnect:
          Reader.expect(no, wire, VARINT);
          r.varint(); // server-to-client fields: checked, then ignored
          break;
        case MESSAGE_FIELDS.command: {
          Reader.expect(no, wire, VARINT);
          const n = r.varint();
          command = n === 0 ? "" : (COMMAND_NAMES.get(n) ?? "unknown_command");
          break;
        }
        case MESSAGE_FIELDS.identifier:
          Reader.expect(no, wire, LEN);
          identifier = r.string();
          break;
        case MESSAGE_FIELDS.data:
          Reader.expect(no, wire, LEN);
          data = r.string();
          break;
        case MESSAGE_FIELDS.message:
          Reader.expect(no, wire, LEN);
          r.delimited();
          break;
        case MESSAGE_FIELDS.reason:
          Reader.expect(no, wire, LEN);
          r.string();
          break;
        case MESSAGE_FIELDS.history:
          Reader.expect(no, wire, LEN);
          history ??= { since: 0, streams: new Map() };
          readHistory(r.sub(), history);
          break;
        default:
          r.skip(no, wire);
      }
    }
  } catch (e) {
    if (e instanceof WireError) return { ok: false, error: `invalid protobuf: ${e.message}` };
    return { ok: false, error: `invalid protobuf: ${String(e)}` };
  }
  const cmd: ClientCommand = { command, identifier };
  // proto3 cannot tell "" from absent: an empty data is no data, as in the other formats' zero rule.
  if (data !== "") cmd.data = data;
  if (history) {
    const h: HistoryRequest = {};
    if (history.since !== 0) h.since = history.since;
    if (history.streams.size > 0) {
      for (const v of history.streams.values()) {
        if (v.offset < 0) return { ok: false, error: "history offset must be a non-negative integer" };
      }
      h.streams = Object.fromEntries(history.streams); // own properties, "__proto__" included
    }
    if (h.since !== undefined || h.streams !== undefined) cmd.history = h;
  }
  return { ok: true, command: cmd };
}

/** A growable byte buffer with the protobuf field writers (zero values are not written, proto3). */
class Writer {
  private buf = new Uint8Array(256);
  private pos = 0;

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
  }

  private rawVarint(v: number): void {
    this.ensure(10);
    while (v >= 0x80) {
      this.buf[this.pos++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buf[this.pos++] = v;
  }

  /** A non-negative integer field (enum, bool, int64 offset). */
  uint(fieldNo: number, v: number): void {
    if (v === 0) return;
    this.rawVarint(fieldNo * 8 + VARINT);
    this.rawVarint(v);
  }

  bytes(fieldNo: number, b: Uint8Array): void {
    if (b.byteLength === 0) return;
    this.rawVarint(fieldNo * 8 + LEN);
    this.rawVarint(b.byteLength);
    this.ensure(b.byteLength);
    this.buf.set(b, this.pos);
    this.pos += b.byteLength;
  }

  string(fieldNo: number, s: string | undefined, always = false): void {
    if (!s) {
      // A repeated string's "" element is still an element: tag and zero length.
      if (always) {
        this.rawVarint(fieldNo * 8 + LEN);
        this.rawVarint(0);
      }
      return;
    }
    this.bytes(fieldNo, te.encode(s));
  }

  finish(): Uint8Array {
    return this.buf.slice(0, this.pos);
  }
}

function typeNumber(type: unknown): number {
  return typeof type === "string" ? (TYPE_NUMBERS.get(type) ?? 0) : 0;
}

function isOffset(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

export class ProtobufEncoder implements Encoder {
  readonly binary = true;
  /** "protobuf": server messages are action_cable.Message; "protobuf-ext": action_cable.Reply. */
  readonly id: "protobuf" | "protobuf-ext";

  constructor(readonly extended: boolean) {
    this.id = extended ? "protobuf-ext" : "protobuf";
  }

  decode(frame: Frame): DecodeResult {
    return decodeProtobufCommand(frame);
  }

  encodeReply(reply: Reply): Frame | undefined {
    const c = canonicalReply(reply); // the omission and disconnect rules of every format
    let message: Uint8Array | undefined;
    if (c.message !== undefined) {
      message = msgpackValue(c.message);
      if (!message) return undefined;
    }
    if (this.extended && c.offset !== undefined && !isOffset(c.offset)) return undefined;
    return this.write(c, message);
  }

  encodeTransmission(json: string): Frame | undefined {
    const reply = replyFromJson(json);
    return typeof reply === "string" ? undefined : this.encodeReply(reply);
  }

  encodeBroadcast(identifier: string, dataJson: string, meta?: BroadcastMeta): Frame | undefined {
    const message = payloadMsgpack(dataJson);
    if (!message) return undefined;
    const w = new Writer();
    const f = this.extended ? REPLY_FIELDS : MESSAGE_FIELDS;
    w.uint(f.type, typeNumber(meta?.type));
    w.string(f.identifier, identifier);
    w.bytes(f.message, message);
    if (this.extended && meta) {
      if (meta.offset && !isOffset(meta.offset)) return undefined;
      w.string(REPLY_FIELDS.stream_id, meta.stream_id);
      w.string(REPLY_FIELDS.epoch, meta.epoch);
      w.uint(REPLY_FIELDS.offset, meta.offset ?? 0);
    }
    return w.finish();
  }

  private write(c: Record<string, unknown>, message: Uint8Array | undefined): Uint8Array {
    const w = new Writer();
    const str = (v: unknown) => (typeof v === "string" ? v : undefined);
    if (!this.extended) {
      w.uint(MESSAGE_FIELDS.type, typeNumber(c.type));
      w.string(MESSAGE_FIELDS.identifier, str(c.identifier));
      if (message) w.bytes(MESSAGE_FIELDS.message, message);
      w.string(MESSAGE_FIELDS.reason, str(c.reason));
      w.uint(MESSAGE_FIELDS.reconnect, c.reconnect === true ? 1 : 0);
      return w.finish();
    }
    w.uint(REPLY_FIELDS.type, typeNumber(c.type));
    w.string(REPLY_FIELDS.identifier, str(c.identifier));
    if (message) w.bytes(REPLY_FIELDS.message, message);
    w.string(REPLY_FIELDS.reason, str(c.reason));
    w.uint(REPLY_FIELDS.reconnect, c.reconnect === true ? 1 : 0);
    w.string(REPLY_FIELDS.stream_id, str(c.stream_id));
    w.string(REPLY_FIELDS.epoch, str(c.epoch));
    w.uint(REPLY_FIELDS.offset, typeof c.offset === "number" ? c.offset : 0);
    w.string(REPLY_FIELDS.sid, str(c.sid));
    w.uint(REPLY_FIELDS.restored, c.restored === true ? 1 : 0);
    if (Array.isArray(c.restored_ids)) {
      for (const id of c.restored_ids) w.string(REPLY_FIELDS.restored_ids, String(id), true);
    }
    return w.finish();
  }
}

export const protobufEncoder: Encoder = new ProtobufEncoder(false);
export const protobufExtEncoder: Encoder = new ProtobufEncoder(true);
