// Where the NATS broker keeps things in JetStream: anycable-go's layout (broker/nats.go) for
// history, sessions and the epoch, so anycable-go and anycable-ts nodes can share one NATS, and
// anycable-ts's own buckets for presence (anycable-go's NATS broker has none). Pure functions.
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";

/** Session snapshots, one key per session id (anycable-go: bucket TTL = --sessions_ttl). */
export const SESSIONS_BUCKET = "_anycable_";
/** The epoch every node stamps on its messages (anycable-go: TTL 10 × max(history, sessions TTL)). */
export const EPOCH_BUCKET = "_anycable_epoch_";
export const EPOCH_KEY = "_epoch_";
/** Presence records, one key per (stream, presence id): anycable-ts only. */
export const PRESENCE_BUCKET = "_anycable_presence_";
/** Node heartbeats, so a survivor can sweep a dead node's presence: anycable-ts only. */
export const PRESENCE_NODES_BUCKET = "_anycable_presence_nodes_";
/** anycable-go's JetStream stream (and subject) of a stream: `_ac_<stream>`. */
export const STREAM_PREFIX = "_ac_";
/** Streams anycable-go cannot name (see jetstreamName) get a hashed name under this prefix. */
export const HASHED_STREAM_PREFIX = "_acx_";

/** nats-server refuses longer stream names ("stream name is too long, maximum allowed is 255"). */
const MAX_STREAM_NAME_BYTES = 255;
// What nats-server (and nats.go's client check) refuse in a stream name: whitespace it names,
// subject separators and wildcards, path separators; control characters are refused here too.
const BAD_STREAM_NAME = /[ \t\r\n\f.*>/\\\u0000-\u001f\u007f]/;

const sha256 = (s: string): string => createHash("sha256").update(s).digest("base64url");

/**
 * The JetStream stream of a stream: `_ac_<stream>` exactly as anycable-go names it whenever
 * nats-server accepts that name. Names it refuses (a `.`, `*`, `>`, `/`, `\`, whitespace or control
 * character, or longer than 255 bytes with the prefix) — which anycable-go cannot keep history for
 * at all — get `_acx_<base64url sha256 of the name>`, which no `_ac_` name can equal.
 */
export function jetstreamName(stream: string): string {
  const raw = STREAM_PREFIX + stream;
  if (stream !== "" && !BAD_STREAM_NAME.test(stream) && Buffer.byteLength(raw) <= MAX_STREAM_NAME_BYTES) {
    return raw;
  }
  return HASHED_STREAM_PREFIX + sha256(stream);
}

/** Whether a session id can be a KV key as it is (anycable-go uses the sid itself as the key). */
export function isKvKey(key: string): boolean {
  return /^[-/=\w]+(\.[-/=\w]+)*$/.test(key) && key.length <= 1024;
}

/** Longer tokens are hashed: a PUB line must stay under nats-server's max_control_line (4 KiB). */
const MAX_TOKEN_CHARS = 200;
const SAFE_BYTE = /[A-Za-z0-9_-]/;

/**
 * One KV key token for any text (a stream name, a presence id, a node id): bytes outside
 * [A-Za-z0-9_-] become `=XX` (upper-case hex), the empty text is `=`, and a result longer than
 * 200 characters is `==<base64url sha256>`. Reversible up to the hash, and injective: an escape
 * is always `=` and two hex digits, so `==` and a lone `=` occur only in those two forms.
 */
export function keyToken(text: string): string {
  if (text === "") return "=";
  let out = "";
  for (const byte of Buffer.from(text, "utf8")) {
    const ch = String.fromCharCode(byte);
    out += byte < 0x80 && SAFE_BYTE.test(ch) ? ch : `=${byte.toString(16).toUpperCase().padStart(2, "0")}`;
    if (out.length > MAX_TOKEN_CHARS) return `==${sha256(text)}`;
  }
  return out;
}

/** The presence record key of `pid` in `stream`: `<stream token>.<presence id token>`. */
export function presenceKey(stream: string, pid: string): string {
  return `${keyToken(stream)}.${keyToken(pid)}`;
}

/** The key filter of every presence record of `stream`. */
export function presenceFilter(stream: string): string {
  return `${keyToken(stream)}.*`;
}

/** What a presence record holds: the id and info everyone sees, and which node serves each session. */
export interface PresenceValue {
  /** The stream's name (its key token may be a hash). */
  stream: string;
  id: string;
  info?: unknown;
  /** sid -> node id */
  sessions: Record<string, string>;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/** A presence record read back, or undefined when it is not one of ours (foreign or corrupt). */
export function parsePresenceValue(text: string): PresenceValue | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!isObject(v) || typeof v.stream !== "string" || typeof v.id !== "string" || !isObject(v.sessions)) {
    return undefined;
  }
  const entries = Object.entries(v.sessions);
  if (!entries.every(([, node]) => typeof node === "string")) return undefined;
  // own keys, so a sid "__proto__" stays a key
  const sessions = Object.fromEntries(entries) as Record<string, string>;
  const out: PresenceValue = { stream: v.stream, id: v.id, sessions };
  if (v.info !== undefined && v.info !== null) out.info = v.info;
  return out;
}

export function presenceValueJson(v: PresenceValue): string {
  // Object.fromEntries keeps a sid "__proto__" an own key
  return JSON.stringify({
    stream: v.stream,
    id: v.id,
    info: v.info,
    sessions: Object.fromEntries(Object.entries(v.sessions)),
  });
}

/** A node's heartbeat: alive until `exp` (ms); `reaper`/`until` while a survivor sweeps it. */
export interface NodeValue {
  exp: number;
  reaper?: string;
  until?: number;
}

export function parseNodeValue(text: string): NodeValue | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!isObject(v) || typeof v.exp !== "number" || !Number.isFinite(v.exp)) return undefined;
  const out: NodeValue = { exp: v.exp };
  if (typeof v.reaper === "string") out.reaper = v.reaper;
  if (typeof v.until === "number") out.until = v.until;
  return out;
}

/** An epoch as nodes write it: anycable-go's 4 nanoid characters; anything short and printable passes. */
export function isEpoch(text: string): boolean {
  return /^[\x21-\x7e]{1,64}$/.test(text);
}
