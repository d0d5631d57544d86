// One builder of node-redis client options from the Redis settings (--redis_url, TLS, keepalive),
// used by every part that talks to Redis: the redis and redisx broadcasters and Redis pub/sub.
// Parses URLs the way anycable-go does (redis/config.go): a missing scheme means redis://, a
// trailing slash is ignored, user / password / database come from the URL.
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

/** host:port for log lines (never the credentials). */
export function describeTarget(o: Pick<Options, "url">): string {
  const parsed = parseRedisUrl(o.url);
  return parsed.ok ? `${parsed.target.host}:${parsed.target.port}` : redactUrl(o.url);
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
  const { target } = parsed;
  // anycable-go sets the dialer's TCP keepalive to --redis_keepalive_interval; 0 leaves the
  // system's default, a negative value turns keepalive off.
  const keepAlive =
    o.keepaliveIntervalSec < 0
      ? { keepAlive: false }
      : o.keepaliveIntervalSec > 0
        ? { keepAlive: true, keepAliveInitialDelay: o.keepaliveIntervalSec * 1000 }
        : { keepAlive: true };
  const base = { host: target.host, port: target.port, reconnectStrategy, ...keepAlive };
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
