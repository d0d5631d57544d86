// Action Cable JSON protocol (actioncable-v1-json and its extended variant): frame <-> command/reply.
// Pure functions: no runtime APIs, no I/O. The rules shared with the binary formats (command
// fields, reply field order and omission) live here too; the Encoder objects are in *_encoder.ts.

import type {
  ClientCommand,
  DecodeResult,
  HistoryPosition,
  HistoryRequest,
  PresenceEvent,
  Reply,
} from "./encoder.ts";

export const PROTOCOL_JSON = "actioncable-v1-json";
export const PROTOCOL_EXT_JSON = "actioncable-v1-ext-json";
export const SUPPORTED_PROTOCOLS: readonly string[] = [PROTOCOL_JSON, PROTOCOL_EXT_JSON];

export const DisconnectReason = {
  serverRestart: "server_restart",
  remote: "remote",
  idleTimeout: "idle_timeout",
  noPong: "no_pong",
  tooSlow: "too_slow",
  unauthorized: "unauthorized",
  tokenExpired: "token_expired",
} as const;

export type { ClientCommand, DecodeResult } from "./encoder.ts";

/**
 * Decodes a client frame the way Go's json.Unmarshal fills anycable-go's Message struct:
 * anything that is not a JSON object (or null) fails, and so do fields of the wrong type
 * (see commandFromObject); unknown keys are ignored.
 */
export function decodeCommand(frame: string): DecodeResult {
  let parsed: unknown;
  try {
    parsed = JSON.parse(frame);
  } catch (e) {
    return { ok: false, error: `invalid JSON: ${(e as Error).message}` };
  }
  if (parsed === null) return { ok: true, command: { command: "", identifier: "" } };
  if (typeof parsed !== "object" || Array.isArray(parsed)) {
    return {
      ok: false,
      error: `cannot decode ${Array.isArray(parsed) ? "array" : typeof parsed} as a command`,
    };
  }
  return commandFromObject(parsed as Record<string, unknown>);
}

/**
 * The field rules of anycable-go's Message struct, shared by every map-shaped format (JSON,
 * msgpack): `command`/`identifier` strings (null/missing = ""), `data` any value (null/missing =
 * absent), `history` {since: integer, streams: {id: {epoch: string, offset: integer >= 0}}},
 * `presence` {type: string, id: string, info: any}. A field of the wrong type fails the frame,
 * as json.Unmarshal fails. Zero values are dropped so every format yields the same command.
 */
export function commandFromObject(obj: Record<string, unknown>): DecodeResult {
  const command = stringField(obj, "command");
  if (command === undefined) return { ok: false, error: "command must be a string" };
  const identifier = stringField(obj, "identifier");
  if (identifier === undefined) return { ok: false, error: "identifier must be a string" };
  const cmd: ClientCommand = { command, identifier };
  if (obj.data !== undefined && obj.data !== null) cmd.data = obj.data;
  if (obj.history !== undefined && obj.history !== null) {
    const history = historyFromValue(obj.history);
    if (typeof history === "string") return { ok: false, error: history };
    if (history.since !== undefined || history.streams !== undefined) cmd.history = history;
  }
  if (obj.presence !== undefined && obj.presence !== null) {
    const presence = presenceFromValue(obj.presence);
    if (typeof presence === "string") return { ok: false, error: presence };
    cmd.presence = presence;
  }
  return { ok: true, command: cmd };
}

function stringField(obj: Record<string, unknown>, key: string): string | undefined {
  const v = obj[key];
  if (v === undefined || v === null) return "";
  return typeof v === "string" ? v : undefined;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** A history request (not null) or an error text. */
function historyFromValue(v: unknown): HistoryRequest | string {
  if (!isRecord(v)) return "history must be an object";
  const out: HistoryRequest = {};
  if (v.since !== undefined && v.since !== null) {
    if (typeof v.since !== "number" || !Number.isInteger(v.since)) return "history.since must be an integer";
    if (v.since !== 0) out.since = v.since;
  }
  if (v.streams !== undefined && v.streams !== null) {
    if (!isRecord(v.streams)) return "history.streams must be an object";
    const streams: Array<[string, HistoryPosition]> = [];
    for (const [stream, pos] of Object.entries(v.streams)) {
      const position: HistoryPosition = { epoch: "", offset: 0 };
      if (pos !== null) {
        if (!isRecord(pos)) return "history.streams entries must be objects";
        const epoch = stringField(pos, "epoch");
        if (epoch === undefined) return "history epoch must be a string";
        position.epoch = epoch;
        if (pos.offset !== undefined && pos.offset !== null) {
          if (typeof pos.offset !== "number" || !Number.isInteger(pos.offset) || pos.offset < 0) {
            return "history offset must be a non-negative integer";
          }
          position.offset = pos.offset;
        }
      }
      streams.push([stream, position]);
    }
    // fromEntries defines own properties: a stream named "__proto__" stays a stream.
    if (streams.length > 0) out.streams = Object.fromEntries(streams);
  }
  return out;
}

function presenceFromValue(v: unknown): PresenceEvent | string {
  if (!isRecord(v)) return "presence must be an object";
  const id = stringField(v, "id");
  if (id === undefined) return "presence.id must be a string";
  const type = stringField(v, "type");
  if (type === undefined) return "presence.type must be a string";
  const out: PresenceEvent = { id };
  if (type !== "") out.type = type;
  if (v.info !== undefined && v.info !== null) out.info = v.info;
  return out;
}

/**
 * Picks the sub-protocol to echo from a Sec-WebSocket-Protocol header. Entries are split on ","
 * and trimmed (clients such as Node's ws send "a,b"); the first entry in `supported` wins, and
 * unknown entries (including `anycable-token.*` carriers) are never selected. Returns "" when
 * nothing supported was offered: the upgrade still succeeds.
 */
export function selectProtocol(
  offered: string | null | undefined,
  supported: readonly string[] = SUPPORTED_PROTOCOLS,
): string {
  if (!offered) return "";
  for (const raw of offered.split(",")) {
    // the table's own string, not the header's substring: one copy for every session
    const i = supported.indexOf(raw.trim());
    if (i >= 0) return supported[i]!;
  }
  return "";
}

// --- encoders. Field order and omission follow anycable-go's Reply struct (empty fields omitted).

export function welcomeMessage(sid: string): string {
  return `{"type":"welcome","sid":${JSON.stringify(sid)}}`;
}

export function pingMessage(timestamp: number): string {
  return `{"type":"ping","message":${timestamp}}`;
}

export const PONG_MESSAGE = '{"type":"pong"}';

export function confirmMessage(identifier: string): string {
  return `{"type":"confirm_subscription","identifier":${JSON.stringify(identifier)}}`;
}

export function rejectMessage(identifier: string): string {
  return `{"type":"reject_subscription","identifier":${JSON.stringify(identifier)}}`;
}

/** A disconnect always carries `reconnect`, even when false (clients rely on it). */
export function disconnectMessage(reason: string, reconnect: boolean): string {
  return `{"type":"disconnect","reason":${JSON.stringify(reason)},"reconnect":${reconnect}}`;
}

/**
 * The message a subscriber receives for a broadcast. `data` is the publication's JSON text
 * (already validated by the caller) or, when it is not JSON, sent as a JSON string — exactly as
 * anycable-go falls back. Built once per (stream, identifier) and shared by every subscriber.
 */
export function broadcastMessage(
  identifier: string,
  dataJson: string,
  type?: string,
  position?: { stream_id?: string; epoch?: string; offset?: number },
): string {
  const typePart = type ? `"type":${JSON.stringify(type)},` : "";
  let positionPart = "";
  if (position) {
    if (position.stream_id) positionPart += `,"stream_id":${JSON.stringify(position.stream_id)}`;
    if (position.epoch) positionPart += `,"epoch":${JSON.stringify(position.epoch)}`;
    if (position.offset) positionPart += `,"offset":${position.offset}`;
  }
  return `{${typePart}"identifier":${JSON.stringify(identifier)},"message":${dataJson}${positionPart}}`;
}

/**
 * A reply as an object with the JSON protocol's keys in anycable-go's Reply field order and
 * empty fields omitted (Go's omitempty: "", false, 0, [], null). A disconnect is anycable-go's
 * DisconnectMessage: exactly type, reason and reconnect, the last two always present. The JSON
 * and msgpack encoders serialise this object as it is.
 */
export function canonicalReply(r: Reply): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  if (r.type === "disconnect") {
    o.type = r.type;
    o.reason = r.reason ?? "";
    o.reconnect = r.reconnect ?? false;
    return o;
  }
  if (r.type) o.type = r.type;
  if (r.identifier) o.identifier = r.identifier;
  if (r.message !== undefined && r.message !== null) o.message = r.message;
  if (r.presence !== undefined && r.presence !== null) o.presence = r.presence;
  if (r.reason) o.reason = r.reason;
  if (r.reconnect) o.reconnect = true;
  if (r.stream_id) o.stream_id = r.stream_id;
  if (r.epoch) o.epoch = r.epoch;
  if (r.offset) o.offset = r.offset;
  if (r.sid) o.sid = r.sid;
  if (r.restored) o.restored = true;
  if (r.restored_ids && r.restored_ids.length > 0) o.restored_ids = r.restored_ids;
  return o;
}

/** canonicalReply as JSON text; byte-identical to welcomeMessage, pingMessage, ... for their shapes. */
export function replyJson(r: Reply): string {
  return JSON.stringify(canonicalReply(r));
}

const REPLY_STRING_KEYS = ["type", "identifier", "reason", "stream_id", "epoch", "sid"] as const;

/**
 * A transmission's JSON text as a Reply, with the field types of anycable-go's Reply struct
 * (null = absent, unknown keys ignored); an error text when it is not JSON, not an object, or a
 * field has the wrong type. Binary encoders re-encode transmissions through this.
 */
export function replyFromJson(json: string): Reply | string {
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch (e) {
    return `invalid JSON: ${(e as Error).message}`;
  }
  if (!isRecord(v)) return "a transmission must be a JSON object";
  const r: Reply = {};
  for (const key of REPLY_STRING_KEYS) {
    const s = stringField(v, key);
    if (s === undefined) return `${key} must be a string`;
    if (s !== "") r[key] = s;
  }
  if (v.message !== undefined && v.message !== null) r.message = v.message;
  if (v.presence !== undefined && v.presence !== null) {
    const presence = presenceFromValue(v.presence);
    if (typeof presence === "string") return presence;
    r.presence = presence;
  }
  for (const key of ["reconnect", "restored"] as const) {
    const b = v[key];
    if (b === undefined || b === null) continue;
    if (typeof b !== "boolean") return `${key} must be a boolean`;
    r[key] = b;
  }
  if (v.offset !== undefined && v.offset !== null) {
    if (typeof v.offset !== "number" || !Number.isInteger(v.offset) || v.offset < 0) {
      return "offset must be a non-negative integer";
    }
    r.offset = v.offset;
  }
  if (v.restored_ids !== undefined && v.restored_ids !== null) {
    if (!Array.isArray(v.restored_ids) || !v.restored_ids.every((x) => typeof x === "string")) {
      return "restored_ids must be an array of strings";
    }
    r.restored_ids = v.restored_ids as string[];
  }
  return r;
}

/** Converts a publication's `data` string into the JSON text embedded as `message`. */
export function publicationDataJson(data: string): string {
  const trimmed = data.trim();
  if (trimmed !== "" && trimmed !== "null") {
    try {
      JSON.parse(trimmed);
      return trimmed;
    } catch {
      // not JSON: fall through and send it as a string, like anycable-go
    }
  }
  return JSON.stringify(data);
}

export type PingPrecision = "s" | "ms" | "ns";

export function pingTimestamp(precision: string, nowMs: number): number {
  switch (precision) {
    case "ms":
      return Math.floor(nowMs);
    case "ns":
      // Millisecond clock scaled up: JS numbers cannot hold a real nanosecond clock exactly.
      return Math.floor(nowMs) * 1_000_000;
    default:
      return Math.floor(nowMs / 1000);
  }
}
