// What a Durable Streams read request asks for, as anycable-go's ds/ds.go and ds/encoder.go read
// it: the stream is the URL path below --ds_path (it may contain "/"), `offset` an opaque
// `<offset>::<epoch>` token or one of the reserved "-1" (from the start), "0" / "" (the same) and
// "now" (only what comes next), `live` "long-poll" or "sse" (both need an offset), `cursor` the
// client's echo of Stream-Cursor, and a signed stream name in `?signed=` or `X-Signed`. Pure.

export const START_OFFSET = "-1";
export const NOW_OFFSET = "now";
const SEPARATOR = "::";

export type LiveMode = "" | "long-poll" | "sse";

export interface DsParams {
  /** The stream named by the path (decoded). */
  stream: string;
  /** The signed stream name, "" when none was given. */
  signed: string;
  /** The offset as the client sent it ("-1" when it sent none). */
  rawOffset: string;
  offset: number;
  /** "" for the reserved offsets. */
  epoch: string;
  live: LiveMode;
  /** The client's cursor ("" when none). */
  cursor: string;
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

/** The opaque offset of a stream position; "0" for a stream that has none yet (no epoch). */
export function encodeOffset(offset: number, epoch: string): string {
  return epoch === "" ? "0" : `${offset}${SEPARATOR}${epoch}`;
}

/** anycable-go's DecodeOffset: the number must be an unsigned integer; the epoch may be missing. */
export function decodeOffset(raw: string): Parsed<{ offset: number; epoch: string }> {
  if (raw === "" || raw === "0" || raw === START_OFFSET || raw === NOW_OFFSET) {
    return { ok: true, value: { offset: 0, epoch: "" } };
  }
  const sep = raw.indexOf(SEPARATOR);
  const num = sep < 0 ? raw : raw.slice(0, sep);
  if (!/^\d+$/.test(num) || !Number.isSafeInteger(Number(num))) {
    return { ok: false, error: `invalid offset: ${JSON.stringify(raw)}` };
  }
  // Go's strings.Split: the epoch is what lies between the first and a second separator
  const rest = sep < 0 ? "" : raw.slice(sep + SEPARATOR.length);
  const next = rest.indexOf(SEPARATOR);
  return { ok: true, value: { offset: Number(num), epoch: next < 0 ? rest : rest.slice(0, next) } };
}

/** Reads a request at `base` (the --ds_path, without a trailing slash). */
export function dsParams(url: URL, base: string, headers: Headers): Parsed<DsParams> {
  let path = url.pathname.slice(base.length);
  if (path.startsWith("/")) path = path.slice(1);
  let stream: string;
  try {
    stream = decodeURIComponent(path);
  } catch {
    return { ok: false, error: "malformed stream name in the URL" };
  }
  if (stream === "") return { ok: false, error: "stream is missing in the URL" };
  const q = url.searchParams;
  const live = q.get("live") ?? "";
  if (live !== "" && live !== "long-poll" && live !== "sse") return { ok: false, error: "invalid live mode" };
  let rawOffset = q.get("offset") ?? "";
  if (rawOffset === "" && live !== "") return { ok: false, error: "offset is missing for live mode" };
  if (rawOffset === "") rawOffset = START_OFFSET;
  const decoded = decodeOffset(rawOffset);
  if (!decoded.ok) return decoded;
  return {
    ok: true,
    value: {
      stream,
      signed: q.get("signed") || headers.get("x-signed") || "",
      rawOffset,
      offset: decoded.value.offset,
      epoch: decoded.value.epoch,
      live,
      cursor: q.get("cursor") ?? "",
    },
  };
}

/** DS §8.1: cursors count 20-second intervals from 2024-10-09T00:00:00Z. */
const CURSOR_EPOCH_MS = Date.UTC(2024, 9, 9);
const CURSOR_INTERVAL_MS = 20_000;

/**
 * The Stream-Cursor of a response: the current interval, or, when the client already holds that
 * one or a later one, a later one still (1–60 intervals on), so a CDN that collapses requests by
 * cursor never serves the client the same cached answer twice.
 */
export function nextCursor(clientCursor: string, nowMs: number, jitter: () => number = Math.random): string {
  let interval = Math.floor((nowMs - CURSOR_EPOCH_MS) / CURSOR_INTERVAL_MS);
  if (/^-?\d+$/.test(clientCursor)) {
    const client = Number(clientCursor);
    if (Number.isSafeInteger(client) && client >= interval) interval = client + 1 + Math.floor(jitter() * 60);
  }
  return String(interval);
}
