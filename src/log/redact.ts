// Debug lines show what clients and applications sent, as anycable-go's do, minus what grants
// access: a signed stream name is a capability, a URL may carry a JWT (?jid=), cookies and
// authorization headers carry sessions. anycable-go prints all of these at debug level; we print
// the rest of the line and [FILTERED] in their place (a test greps a debug log for them).
import { compact } from "./logger.ts";

export const FILTERED = "[FILTERED]";

// The key inside an identifier, also when the identifier is itself a JSON string inside a frame
// (`\"signed_stream_name\":\"...\"`). Signed names are base64 and hex: no quote or backslash.
const SIGNED_NAME = /(\\?"[a-z_]*signed_stream_name\\?"\s*:\s*\\?")[^"\\]*/g;

/** A frame, identifier or payload with its signed stream names filtered. */
export function redactSigned(text: string): string {
  return text.includes("signed_stream_name") ? text.replace(SIGNED_NAME, `$1${FILTERED}`) : text;
}

const SECRET_NAME = /token|jwt|jid|secret|key|sig|auth|pass|session|cookie/i;

/** A URL with the values of its credential-like query parameters (and `extra` ones) filtered. */
export function redactUrl(url: string, extra: readonly string[] = []): string {
  const q = url.indexOf("?");
  if (q < 0) return url;
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return `${url.slice(0, q)}?${FILTERED}`;
  }
  let changed = false;
  for (const name of new Set(u.searchParams.keys())) {
    if (!SECRET_NAME.test(name) && !extra.includes(name)) continue;
    u.searchParams.set(name, FILTERED);
    changed = true;
  }
  return changed ? u.toString() : url;
}

/** Header values filtered where the name looks like a credential (Cookie, Authorization, X-Api-Key...). */
export function redactHeaders(
  headers: Readonly<Record<string, string>>,
  extra: readonly string[] = [],
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    const n = name.toLowerCase();
    out[name] = SECRET_NAME.test(n) || extra.some((x) => n === `x-${x.toLowerCase()}`) ? FILTERED : value;
  }
  return out;
}

/** A client frame for a log line: signed names filtered, then cut (binary frames as their size). */
export function frameForLog(frame: string | Uint8Array, max = 100): string {
  return compact(typeof frame === "string" ? redactSigned(frame) : frame, max);
}
