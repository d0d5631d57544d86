// actioncable-v1-msgpack and actioncable-v1-ext-msgpack: binary frames, each one msgpack map with
// the JSON protocol's keys. Client frames are decoded with the JSON protocol's field rules;
// replies carry `message` as the msgpack form of the payload's JSON value.
//
// Library: @msgpack/msgpack (pure ECMAScript, no native addon and no eval; strict about trailing
// bytes; per-call length limits). The protobuf encoder reuses msgpackValue/payloadMsgpack below.
import { Decoder, Encoder as MsgpackWriter } from "@msgpack/msgpack";
import { canonicalReply, commandFromObject, replyFromJson } from "./actioncable.ts";
import type { BroadcastMeta, DecodeResult, Encoder, Frame, Reply } from "./encoder.ts";

/** Nesting limit of values we decode or encode (Go's encoding/json allows 10000 too). */
const MAX_DEPTH = 10_000;

const writer = new MsgpackWriter({ ignoreUndefined: true, maxDepth: MAX_DEPTH });

/** The msgpack bytes of a JSON value; undefined for what msgpack/JSON cannot carry. */
export function msgpackValue(value: unknown): Uint8Array | undefined {
  try {
    return writer.encode(value);
  } catch {
    return undefined; // too deep (or a stack overflow), a bigint beyond 64 bits, ...
  }
}

/**
 * Decodes one msgpack value occupying the whole frame. Every length a header announces is bounded
 * by the frame's size, so a forged header cannot make us allocate more than the frame.
 */
export function decodeMsgpack(
  bytes: Uint8Array,
): { ok: true; value: unknown } | { ok: false; error: string } {
  const n = bytes.byteLength;
  try {
    const d = new Decoder({
      maxStrLength: n,
      maxBinLength: n,
      maxArrayLength: n,
      maxMapLength: n,
      maxExtLength: n,
    });
    return { ok: true, value: d.decode(bytes) };
  } catch (e) {
    return { ok: false, error: `invalid msgpack: ${(e as Error).message}` };
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== "object" || v === null) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/**
 * Whether a decoded value is a JSON value (what the node and the RPC backend pass on as JSON):
 * no bin, no ext (timestamps included), no NaN/Infinity, nested at most MAX_DEPTH deep.
 * Iterative, so a deeply nested frame cannot overflow the stack.
 */
export function isJsonValue(root: unknown): boolean {
  const stack: Array<[unknown, number]> = [[root, 0]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (v === null || typeof v === "string" || typeof v === "boolean") continue;
    if (typeof v === "number") {
      if (!Number.isFinite(v)) return false;
      continue;
    }
    if (depth >= MAX_DEPTH) return false;
    if (Array.isArray(v)) {
      for (const x of v) stack.push([x, depth + 1]);
    } else if (isPlainObject(v)) {
      for (const k in v) stack.push([v[k], depth + 1]);
    } else {
      return false;
    }
  }
  return true;
}

// One-entry memo of the last broadcast payload: a publication is encoded for each identifier and
// binary encoder of a stream in a row with the same dataJson, which is then parsed only once.
let lastJson: string | undefined;
let lastValue: unknown;
let lastBytes: Uint8Array | undefined;
const INVALID: unique symbol = Symbol("invalid JSON");

/** The decoded value of a broadcast payload's JSON text (INVALID if it is not JSON). */
export function payloadValue(dataJson: string): unknown {
  if (dataJson !== lastJson) {
    lastJson = dataJson;
    lastBytes = undefined;
    try {
      lastValue = JSON.parse(dataJson);
    } catch {
      lastValue = INVALID;
    }
  }
  return lastValue;
}

/** The msgpack bytes of a broadcast payload's JSON text (memoised with payloadValue). */
export function payloadMsgpack(dataJson: string): Uint8Array | undefined {
  const value = payloadValue(dataJson);
  if (value === INVALID) return undefined;
  lastBytes ??= msgpackValue(value);
  return lastBytes;
}

const utf8 = new TextEncoder();

export class MsgpackEncoder implements Encoder {
  readonly id = "msgpack";
  readonly binary = true;

  decode(frame: Frame): DecodeResult {
    // anycable-go reads a frame's bytes whatever its kind: a text frame is decoded as msgpack too.
    const decoded = decodeMsgpack(typeof frame === "string" ? utf8.encode(frame) : frame);
    if (!decoded.ok) return decoded;
    const obj = decoded.value;
    if (!isPlainObject(obj)) return { ok: false, error: "a msgpack command must be a map" };
    // The node passes these on as JSON: no bin, ext (timestamps), NaN or absurd nesting in them.
    for (const key of ["data", "history", "presence"]) {
      if (obj[key] !== undefined && !isJsonValue(obj[key])) {
        return { ok: false, error: `${key} holds a value JSON cannot represent (bin, ext, NaN or too deep)` };
      }
    }
    return commandFromObject(obj);
  }

  encodeReply(reply: Reply): Frame | undefined {
    return msgpackValue(canonicalReply(reply));
  }

  encodeTransmission(json: string): Frame | undefined {
    const reply = replyFromJson(json);
    return typeof reply === "string" ? undefined : this.encodeReply(reply);
  }

  encodeBroadcast(identifier: string, dataJson: string, meta?: BroadcastMeta): Frame | undefined {
    const message = payloadValue(dataJson);
    if (message === INVALID) return undefined;
    // The broadcast's key order (type, identifier, message, stream position) is canonicalReply's;
    // message stays even when null, like broadcastMessage's "message":null.
    const o: Record<string, unknown> = {};
    if (meta?.type) o.type = meta.type;
    o.identifier = identifier;
    o.message = message;
    if (meta) {
      if (meta.stream_id) o.stream_id = meta.stream_id;
      if (meta.epoch) o.epoch = meta.epoch;
      if (meta.offset) o.offset = meta.offset;
    }
    return msgpackValue(o);
  }
}

/** Typed as the class: its results are never null (Action Cable formats always have a frame). */
export const msgpackEncoder: MsgpackEncoder = new MsgpackEncoder();
