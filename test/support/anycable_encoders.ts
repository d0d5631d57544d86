// Client-side encoders with @anycable/core's Encoder interface (encode(msg) -> frame,
// decode(frame) -> object | undefined) for the binary Action Cable sub-protocols, written from the
// AnyCable docs (anycable-go/binary_formats) because @anycable/msgpack-encoder and
// @anycable/protobuf-encoder are not on the npm registry here. Used as
//   createCable({ protocol: "actioncable-v1-msgpack", encoder: new MsgpackEncoder() })
// and as the independent client codec of the encoder contract suite.
//
// Deliberately built on other libraries than the server (msgpackr instead of @msgpack/msgpack,
// protobufjs with the schema below instead of the server's hand-written wire codec), so a
// misunderstanding shared by both sides cannot hide.
import type { Encoder } from "@anycable/core";
import { Packr, Unpackr } from "msgpackr";
import protobuf from "protobufjs";

// The schema exactly as the AnyCable documentation gives it (not read from proto/).
const SCHEMA = `
syntax = "proto3";
package action_cable;
enum Type { no_type = 0; welcome = 1; disconnect = 2; ping = 3; confirm_subscription = 4;
  reject_subscription = 5; confirm_history = 6; reject_history = 7; }
enum Command { unknown_command = 0; subscribe = 1; unsubscribe = 2; message = 3; history = 4;
  pong = 5; whisper = 6; }
message StreamHistoryRequest { string epoch = 2; int64 offset = 3; }
message HistoryRequest { int64 since = 1; map<string, StreamHistoryRequest> streams = 2; }
message Message { Type type = 1; Command command = 2; string identifier = 3; string data = 4;
  bytes message = 5; string reason = 6; bool reconnect = 7; HistoryRequest history = 8; }
message Reply { Type type = 1; string identifier = 2; bytes message = 3; string reason = 4;
  bool reconnect = 5; string stream_id = 6; string epoch = 7; int64 offset = 8; string sid = 9;
  bool restored = 10; repeated string restored_ids = 11; }
`;

const root = protobuf.parse(SCHEMA, { keepCase: true }).root;
export const MessageType = root.lookupType("action_cable.Message");
export const ReplyType = root.lookupType("action_cable.Reply");
const TypeEnum = root.lookupEnum("action_cable.Type");
const CommandEnum = root.lookupEnum("action_cable.Command");

// Plain msgpack: no msgpackr records/structures, maps as objects, undefined as nil, 64-bit
// integers as numbers (like the browser library the AnyCable client uses).
const packr = new Packr({ useRecords: false, mapsAsObjects: true, encodeUndefinedAsNil: true });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: "number" });

/** msgpack bytes of a value, with msgpackr. */
export function clientPack(value: unknown): Uint8Array {
  return new Uint8Array(packr.pack(value));
}

/** A msgpack value from bytes, with msgpackr. Throws on malformed input. */
export function clientUnpack(bytes: Uint8Array): unknown {
  // A copy: msgpackr caches a DataView on the array it reads, and the frame is not ours to change.
  return unpackr.unpack(new Uint8Array(bytes));
}

function asBytes(raw: unknown): Uint8Array | undefined {
  if (raw instanceof Uint8Array) return raw;
  if (raw instanceof ArrayBuffer) return new Uint8Array(raw);
  return undefined; // a text frame
}

type Msg = Record<string, unknown>;

export class MsgpackEncoder implements Encoder<object, Uint8Array> {
  encode(msg: object): Uint8Array {
    return clientPack(msg);
  }

  decode(raw: Uint8Array | ArrayBuffer | string): object | undefined {
    const bytes = asBytes(raw);
    if (!bytes) return undefined;
    try {
      const v = clientUnpack(bytes);
      return typeof v === "object" && v !== null ? v : undefined;
    } catch {
      return undefined;
    }
  }
}

function enumNumber(e: protobuf.Enum, name: unknown, what: string): number | undefined {
  if (name === undefined) return undefined;
  const n = typeof name === "string" && Object.hasOwn(e.values, name) ? e.values[name] : undefined;
  if (n === undefined) throw new Error(`${what}: unknown name ${String(name)}`);
  return n;
}

/** actioncable-v1-protobuf: client and server messages are action_cable.Message. */
export class ProtobufEncoder implements Encoder<object, Uint8Array> {
  protected readonly incoming: protobuf.Type = MessageType;

  /** Like the AnyCable client: names -> enum numbers, `message` msgpack-encoded, verified. */
  encode(msg: object): Uint8Array {
    const o: Msg = { ...(msg as Msg) };
    for (const k of Object.keys(o)) if (o[k] === undefined) delete o[k];
    if (o.command !== undefined) o.command = enumNumber(CommandEnum, o.command, "command");
    if (o.type !== undefined) o.type = enumNumber(TypeEnum, o.type, "type");
    if (o.message !== undefined) o.message = clientPack(o.message);
    const err = MessageType.verify(o);
    if (err) throw new Error(err);
    return MessageType.encode(MessageType.fromObject(o)).finish();
  }

  /**
   * Every field with its proto3 default like the AnyCable client (reconnect false, reason "",
   * type "no_type" for a broadcast), `message` msgpack-decoded (absent when empty).
   */
  decode(raw: Uint8Array | ArrayBuffer | string): object | undefined {
    const bytes = asBytes(raw);
    if (!bytes) return undefined;
    try {
      const m = this.incoming.decode(bytes);
      const o = this.incoming.toObject(m, {
        defaults: true,
        enums: String,
        longs: Number,
        arrays: true,
      }) as Msg;
      for (const k of Object.keys(o)) if (o[k] === null) delete o[k]; // unset embedded messages
      const message = o.message as Uint8Array;
      if (message && message.length > 0) o.message = clientUnpack(message);
      else delete o.message;
      return o;
    } catch {
      return undefined;
    }
  }
}

/** actioncable-v1-ext-protobuf: the server answers with action_cable.Reply. */
export class ProtobufEncoderV2 extends ProtobufEncoder {
  protected override readonly incoming: protobuf.Type = ReplyType;
}
