// What an SSE request subscribes to, as anycable-go's sse/sse.go reads it. Pure.
//
// GET: one subscription from the query, the first of `identifier`, `channel`, `stream` (public
// stream), `signed_stream`, `turbo_signed_stream_name` that is set; history from the
// `Last-Event-ID` header (`<offset>/<epoch>/<stream>`, the stream may hold "/") and from
// `history_since` (Unix seconds). POST: one command per non-empty line of a JSONL body (each line
// subscribes to its `identifier`, whatever its `command`, as in anycable-go).
import { decodeCommand } from "../../protocols/actioncable.ts";
import type { ClientCommand, HistoryRequest } from "../../protocols/encoder.ts";

export const SIGNED_STREAMS_CHANNEL = "$pubsub";
export const TURBO_STREAMS_CHANNEL = "Turbo::StreamsChannel";

/** anycable-go's cap on a POST body (its defaultMaxBodySize). */
export const MAX_POST_BODY_BYTES = 65_536;

export type Parsed = { ok: true; commands: ClientCommand[] } | { ok: false; error: string };

const U64_MAX = (1n << 64n) - 1n;
const I64_MIN = -(1n << 63n);
const I64_MAX = (1n << 63n) - 1n;

/**
 * JSON text as Go's encoding/json writes a string: also `<`, `>`, `&`, U+2028 and U+2029 escaped,
 * so identifiers built from query parameters are byte-identical to anycable-go's.
 */
export function goJsonString(s: string): string {
  return JSON.stringify(s).replace(
    /[<>&\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/** {"k":"v",...} with the keys in the order given (the callers pass them sorted, as Go marshals maps). */
function goJsonObject(entries: Array<[string, string]>): string {
  return `{${entries.map(([k, v]) => `${goJsonString(k)}:${goJsonString(v)}`).join(",")}}`;
}

/** The channel identifier a GET request names, or "" when it names none. */
export function identifierFromQuery(params: URLSearchParams): string {
  const identifier = params.get("identifier");
  if (identifier) return identifier;
  const channel = params.get("channel");
  if (channel) return goJsonObject([["channel", channel]]);
  const stream = params.get("stream");
  if (stream) {
    return goJsonObject([
      ["channel", SIGNED_STREAMS_CHANNEL],
      ["stream_name", stream],
    ]);
  }
  const signed = params.get("signed_stream");
  if (signed) {
    return goJsonObject([
      ["channel", SIGNED_STREAMS_CHANNEL],
      ["signed_stream_name", signed],
    ]);
  }
  const turbo = params.get("turbo_signed_stream_name");
  if (turbo) {
    return goJsonObject([
      ["channel", TURBO_STREAMS_CHANNEL],
      ["signed_stream_name", turbo],
    ]);
  }
  return "";
}

/**
 * The history position in a `Last-Event-ID`: undefined when it is not `<offset>/<epoch>/<stream>`
 * (an id without three parts is ignored), an error when the offset is not an unsigned integer.
 */
export function parseLastEventId(
  lastId: string,
): { stream: string; epoch: string; offset: number } | { error: string } | undefined {
  const first = lastId.indexOf("/");
  const second = first < 0 ? -1 : lastId.indexOf("/", first + 1);
  if (second < 0) return undefined;
  const offset = lastId.slice(0, first);
  if (!/^\d+$/.test(offset) || BigInt(offset) > U64_MAX) {
    return { error: `failed to parse last event id: ${lastId}` };
  }
  return { offset: Number(offset), epoch: lastId.slice(first + 1, second), stream: lastId.slice(second + 1) };
}

/** Go's strconv.ParseInt(s, 10, 64). */
function parseInt64(s: string): number | undefined {
  if (!/^[+-]?\d+$/.test(s)) return undefined;
  const n = BigInt(s);
  if (n < I64_MIN || n > I64_MAX) return undefined;
  return Number(n);
}

/** The subscribe command of a GET request; an error when it names no channel or has a bad position. */
export function commandFromQuery(params: URLSearchParams, lastEventId: string | null): Parsed {
  const identifier = identifierFromQuery(params);
  if (identifier === "") return { ok: false, error: "no channel provided" };
  const history: HistoryRequest = {};
  if (lastEventId) {
    const position = parseLastEventId(lastEventId);
    if (position && "error" in position) return { ok: false, error: position.error };
    if (position) {
      history.streams = Object.fromEntries([
        [position.stream, { epoch: position.epoch, offset: position.offset }],
      ]);
    }
  }
  const since = params.get("history_since");
  if (since) {
    const value = parseInt64(since);
    if (value === undefined) return { ok: false, error: `failed to parse history since value: ${since}` };
    if (value !== 0) history.since = value;
  }
  const command: ClientCommand = { command: "subscribe", identifier };
  if (history.streams || history.since !== undefined) command.history = history;
  return { ok: true, commands: [command] };
}

/** The commands of a POST body (JSONL); one line that is not a command fails the whole request. */
export function commandsFromBody(body: string): Parsed {
  const commands: ClientCommand[] = [];
  for (const line of body.split("\n")) {
    if (line === "") continue;
    const decoded = decodeCommand(line);
    if (!decoded.ok) return { ok: false, error: `failed to parse command: ${decoded.error}` };
    commands.push(decoded.command);
  }
  return { ok: true, commands };
}

/** `raw` as anycable-go reads it (`true`, `1`, `t`, `y`, any case). */
export function isRaw(params: URLSearchParams): boolean {
  const raw = (params.get("raw") ?? "").toLowerCase();
  return raw === "true" || raw === "1" || raw === "t" || raw === "y";
}
