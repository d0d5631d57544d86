// Pieces of anycable-go's HTTP layer that decide what a connection request carries.

/**
 * Compiles anycable-go (chi) route patterns: `{name}` matches one path segment, a trailing `*`
 * matches the rest of the path.
 */
export function compilePathPattern(pattern: string): RegExp {
  let re = "";
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i]!;
    if (ch === "{") {
      const end = pattern.indexOf("}", i);
      if (end > i) {
        re += "[^/]+";
        i = end;
        continue;
      }
    }
    if (ch === "*" && i === pattern.length - 1) {
      re += ".*";
      continue;
    }
    re += ch.replace(/[.+?^${}()|[\]\\*]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}

export function pathMatcher(patterns: readonly string[]): (path: string) => boolean {
  const exact = new Set(patterns.filter((p) => !p.includes("{") && !p.endsWith("*")));
  const regexps = patterns.filter((p) => !exact.has(p)).map(compilePathPattern);
  return (path) => exact.has(path) || regexps.some((r) => r.test(path));
}

/**
 * `--allowed_origins`: comma list of hosts, `*` prefix for suffix matches; empty allows all.
 * Like anycable-go, a request without an Origin header is refused once a list is set.
 */
export function originChecker(origins: string): (origin: string | null) => boolean {
  if (!origins) return () => true;
  const hosts = origins
    .toLowerCase()
    .split(",")
    .filter((h) => h !== "");
  return (origin) => {
    let host = "";
    try {
      host = origin ? new URL(origin.toLowerCase()).host : "";
    } catch {
      return false;
    }
    for (const h of hosts) {
      if (h.startsWith("*") && host.endsWith(h.slice(1))) return true;
      if (host === h) return true;
    }
    return false;
  };
}

/** Keeps only the cookies named in `filter` (all of them when the filter is empty). */
export function filterCookies(value: string, filter: readonly string[]): string {
  if (filter.length === 0) return value;
  const wanted = new Set(filter);
  let out = "";
  for (const cookie of value.split(";")) {
    const parts = cookie.split("=");
    if (parts.length !== 2) continue;
    if (wanted.has(parts[0]!)) out += `${cookie};`;
  }
  return out;
}

/** Headers proxied to the application (`--headers`, `--proxy-cookies`), plus REMOTE_ADDR. */
export function extractHeaders(
  headers: Headers,
  names: readonly string[],
  cookieFilter: readonly string[],
  remoteAddr: string,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of names) {
    if (!name) continue;
    let value = headers.get(name) ?? "";
    if (name.toLowerCase() === "cookie") value = filterCookies(value, cookieFilter);
    if (value !== "") out[name] = value;
  }
  out.REMOTE_ADDR = remoteAddr;
  return out;
}

const NANOID_ALPHABET = "_-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/** Random bytes drawn in bulk: one getRandomValues call per ~200 ids instead of one per id. */
const randomPool = new Uint8Array(4096);
let poolOffset = randomPool.length;

/** Random URL-safe id (nanoid alphabet; 21 characters by default, as anycable-go's session ids). */
export function nanoid(size = 21): string {
  if (poolOffset + size > randomPool.length) {
    crypto.getRandomValues(randomPool);
    poolOffset = 0;
  }
  let id = "";
  for (let i = 0; i < size; i++) id += NANOID_ALPHABET[randomPool[poolOffset + i]! & 63];
  poolOffset += size;
  return id;
}
