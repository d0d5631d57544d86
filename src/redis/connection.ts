// One builder of node-redis client options from the Redis settings (--redis_url, TLS, keepalive),
// used by every part that talks to Redis: the redis and redisx broadcasters and Redis pub/sub.
// Parses URLs the way anycable-go does (redis/config.go): a missing scheme means redis://, a
// trailing slash is ignored, user / password / database come from the URL. With
// --redis_sentinels (parseSentinelSetup) the URL's host is the master's name instead; sentinel.ts
// finds the master's address.
import { readFileSync } from "node:fs";
import type { RedisClientOptions } from "redis";
import type { Options } from "./options.ts";

export interface RedisTarget {
  host: string;
  port: number;
  tls: boolean;
  username?: string;
  password?: string;
  database?: number;
}

export type ParsedRedisUrl =
  | { ok: true; target: RedisTarget; extraUrls: number }
  | { ok: false; error: string };

/** Parses one redis:// or rediss:// URL; a comma-separated list (a cluster) keeps the first. */
export function parseRedisUrl(raw: string): ParsedRedisUrl {
  const urls = raw
    .split(",")
    .map((u) => u.trim())
    .filter((u) => u !== "");
  if (urls.length === 0) return { ok: false, error: "empty Redis URL" };
  let text = urls[0].replace(/\/+$/, "");
  if (!text.includes("://")) text = `redis://${text}`;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return { ok: false, error: `invalid Redis URL: ${redactUrl(text)}` };
  }
  if (url.protocol !== "redis:" && url.protocol !== "rediss:") {
    return { ok: false, error: `unsupported Redis URL scheme ${url.protocol} (expected redis: or rediss:)` };
  }
  const target: RedisTarget = {
    host: url.hostname.replace(/^\[(.*)\]$/, "$1") || "localhost",
    port: url.port ? Number(url.port) : 6379,
    tls: url.protocol === "rediss:",
  };
  if (url.username) target.username = decodeURIComponent(url.username);
  if (url.password) target.password = decodeURIComponent(url.password);
  const db = url.pathname.replace(/^\//, "");
  if (db !== "") {
    if (!/^\d+$/.test(db)) return { ok: false, error: `invalid Redis database in URL: ${db}` };
    target.database = Number(db);
  }
  return { ok: true, target, extraUrls: urls.length - 1 };
}

/** host:port (or the master and its sentinels) for log lines, never the credentials. */
export function describeTarget(o: { url: string; sentinels?: string }): string {
  if (o.sentinels !== undefined && o.sentinels.trim() !== "") {
    const parsed = parseSentinelSetup({ url: o.url, sentinels: o.sentinels });
    if (!parsed.ok) return "(invalid Sentinel settings)";
    const { masterName, sentinels } = parsed.setup;
    return `master ${masterName} via sentinels ${sentinels.map((s) => hostPort(s)).join(",")}`;
  }
  const parsed = parseRedisUrl(o.url);
  return parsed.ok ? `${parsed.target.host}:${parsed.target.port}` : redactUrl(o.url);
}

export function hostPort(a: { host: string; port: number }): string {
  return a.host.includes(":") ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

/** One sentinel to ask for the master's address (and, through it, the other sentinels). */
export interface SentinelNode {
  host: string;
  port: number;
  username?: string;
  password?: string;
}

export interface SentinelSetup {
  /** The host of --redis_url, case kept (Sentinel's master names are case-sensitive). */
  masterName: string;
  sentinels: SentinelNode[];
  /** How to talk to the data node once its address is known (credentials and db from the URL). */
  data: Omit<RedisTarget, "host" | "port">;
}

export type ParsedSentinels = { ok: true; setup: SentinelSetup } | { ok: false; error: string };

/**
 * --redis_sentinels and --redis_url in Sentinel mode, as anycable-go reads them: the sentinels are
 * comma-separated `[redis://][user:password@]host[:port]` entries (port 6379 when left out, as
 * anycable-go's URL parser does); the URL's host is the master name and its user, password and
 * database are the data node's (the database of the first sentinel entry when the URL has none).
 * The data node is reached over TLS when the URL or the first sentinel entry says rediss://; the
 * sentinels themselves are plain, as in anycable-go. Each entry may carry its own credentials; an
 * entry without any uses the first entry's (anycable-go uses the first entry's for all).
 */
export function parseSentinelSetup(o: { url: string; sentinels: string }): ParsedSentinels {
  const entries = o.sentinels
    .split(",")
    .map((e) => e.trim())
    .filter((e) => e !== "");
  if (entries.length === 0) {
    return { ok: false, error: `invalid --redis_sentinels "${o.sentinels}": no sentinel address` };
  }
  const targets: RedisTarget[] = [];
  for (const entry of entries) {
    const parsed = parseRedisUrl(entry);
    const error = !parsed.ok
      ? parsed.error
      : parsed.target.port === 0
        ? "port 0"
        : emptyHost(entry)
          ? "no host"
          : undefined;
    if (error !== undefined || !parsed.ok) {
      return {
        ok: false,
        error: `invalid --redis_sentinels entry "${redactEntry(entry)}" (expected [redis://][user:password@]host:port): ${error}`,
      };
    }
    targets.push(parsed.target);
  }
  const master = parseRedisUrl(o.url);
  if (!master.ok) return { ok: false, error: `invalid --redis_url: ${master.error}` };
  if (master.extraUrls > 0) {
    return { ok: false, error: "--redis_url must be one URL naming the master with --redis_sentinels" };
  }
  if (emptyHost(o.url)) {
    return {
      ok: false,
      error:
        "--redis_url must name the Sentinel master as its host with --redis_sentinels (e.g. redis://mymaster/0)",
    };
  }
  const first = targets[0];
  const sentinels = targets.map((t): SentinelNode => {
    const own = t.username !== undefined || t.password !== undefined;
    const creds = own ? t : first;
    const node: SentinelNode = { host: t.host, port: t.port };
    if (creds.username !== undefined) node.username = creds.username;
    if (creds.password !== undefined) node.password = creds.password;
    return node;
  });
  const data: SentinelSetup["data"] = { tls: master.target.tls || first.tls };
  if (master.target.username !== undefined) data.username = master.target.username;
  if (master.target.password !== undefined) data.password = master.target.password;
  const database = master.target.database ?? first.database;
  if (database !== undefined) data.database = database;
  return { ok: true, setup: { masterName: master.target.host, sentinels, data } };
}

/** An entry with its credentials (if any) masked, scheme or not. */
function redactEntry(entry: string): string {
  return entry.replace(/^((?:[a-z][a-z0-9+.-]*:\/\/)?)[^@/]*@/i, "$1***@");
}

function withScheme(raw: string): string {
  const text = raw.trim().replace(/\/+$/, "");
  return text.includes("://") ? text : `redis://${text}`;
}

/** The URL has no host (parseRedisUrl then says localhost, which cannot be a master's name). */
function emptyHost(raw: string): boolean {
  try {
    return new URL(withScheme(raw.split(",")[0])).hostname === "";
  } catch {
    return false;
  }
}

/** The URL without credentials or database, for messages: `redis://localhost:6379`. */
export function describeUrl(url: string): string {
  const parsed = parseRedisUrl(url);
  if (!parsed.ok) return redactUrl(url);
  const { host, port, tls } = parsed.target;
  return `${tls ? "rediss" : "redis"}://${host.includes(":") ? `[${host}]` : host}:${port}`;
}

function redactUrl(url: string): string {
  return url.replace(/\/\/[^@/]*@/, "//***@");
}

export type ReconnectStrategy = (retries: number, cause: Error) => number | false | Error;

export type ReadFile = (path: string) => string;

/**
 * node-redis options for one connection. Throws (a startup error) when the URL is invalid or a
 * TLS file cannot be read, as anycable-go fails to start then.
 */
export function clientOptions(
  o: Options,
  reconnectStrategy: ReconnectStrategy,
  readFile: ReadFile = (p) => readFileSync(p, "utf8"),
): RedisClientOptions {
  const parsed = parseRedisUrl(o.url);
  if (!parsed.ok) throw new Error(parsed.error);
  return targetOptions(parsed.target, o, reconnectStrategy, readFile);
}

/**
 * anycable-go sets the dialer's TCP keepalive to --redis_keepalive_interval; 0 leaves the system's
 * default, a negative value turns keepalive off.
 */
export function keepAliveOptions(o: Pick<Options, "keepaliveIntervalSec">): {
  keepAlive: boolean;
  keepAliveInitialDelay?: number;
} {
  if (o.keepaliveIntervalSec < 0) return { keepAlive: false };
  if (o.keepaliveIntervalSec > 0) {
    return { keepAlive: true, keepAliveInitialDelay: o.keepaliveIntervalSec * 1000 };
  }
  return { keepAlive: true };
}

/** node-redis options for one connection to `target` (a URL's, or a master found by Sentinel). */
export function targetOptions(
  target: RedisTarget,
  o: Options,
  reconnectStrategy: ReconnectStrategy | false,
  readFile: ReadFile = (p) => readFileSync(p, "utf8"),
): RedisClientOptions {
  const base = { host: target.host, port: target.port, reconnectStrategy, ...keepAliveOptions(o) };
  let socket: RedisClientOptions["socket"];
  if (target.tls) {
    const tls: Record<string, unknown> = {
      ...base,
      tls: true,
      // anycable-go skips verification unless --redis_tls_verify (rediss:// on managed Redis
      // services often comes with certificates for another name).
      rejectUnauthorized: o.tlsVerify,
    };
    if (o.tlsCaCertPath) tls.ca = readFile(o.tlsCaCertPath);
    if (o.tlsClientCertPath && o.tlsClientKeyPath) {
      tls.cert = readFile(o.tlsClientCertPath);
      tls.key = readFile(o.tlsClientKeyPath);
    }
    socket = tls as RedisClientOptions["socket"];
  } else {
    socket = { ...base, tls: false };
  }
  const options: RedisClientOptions = {
    socket,
    // Commands are sent only while connected; callers keep their own bounded backlogs.
    disableOfflineQueue: true,
  };
  if (target.username) options.username = target.username;
  if (target.password) options.password = target.password;
  if (target.database !== undefined) options.database = target.database;
  return options;
}
