// Pusher's signatures (Pusher's "Authentication and authorization signatures" and HTTP API
// references): channel authorization (private-, presence-), user authentication (pusher:signin),
// HTTP API request signing, and webhook signing. Pure: node:crypto only, nothing throws.
import { createHash, createHmac, timingSafeEqual } from "node:crypto";

/** Lowercase hex HMAC-SHA256 of `input` under `secret`. */
export function sign(secret: string, input: string): string {
  return createHmac("sha256", secret).update(input).digest("hex");
}

/** Constant-time string comparison (lengths are compared through fixed-size digests). */
export function secureEquals(a: string, b: string): boolean {
  const ha = createHash("sha256").update(a).digest();
  const hb = createHash("sha256").update(b).digest();
  return timingSafeEqual(ha, hb);
}

/** The `auth` a client presents for a private channel (`channelData` for a presence one). */
export function channelAuth(
  appKey: string,
  secret: string,
  socketId: string,
  channel: string,
  channelData?: string,
): string {
  const input =
    channelData === undefined ? `${socketId}:${channel}` : `${socketId}:${channel}:${channelData}`;
  return `${appKey}:${sign(secret, input)}`;
}

/** The `auth` of a `pusher:signin`: `<key>:HMAC(secret, "<socket_id>::user::<user_data>")`. */
export function userAuth(appKey: string, secret: string, socketId: string, userData: string): string {
  return `${appKey}:${sign(secret, `${socketId}::user::${userData}`)}`;
}

/** Checks a presented `auth` against the expected one in constant time. */
export function authMatches(presented: unknown, expected: string): boolean {
  return typeof presented === "string" && secureEquals(presented, expected);
}

/** A webhook's `X-Pusher-Signature`: hex HMAC-SHA256 of the body under the secret. */
export function webhookSignature(secret: string, body: string): string {
  return sign(secret, body);
}

/** How far `auth_timestamp` may be from the server's clock (seconds), as Pusher's API allows. */
export const AUTH_TIMESTAMP_WINDOW_SEC = 600;

export interface SignedRequest {
  method: string;
  /** The request path as sent, e.g. /apps/123/events. */
  path: string;
  query: URLSearchParams;
  /** The raw body ("" when none). */
  body: string;
}

export type RequestCheck = { ok: true } | { ok: false; error: string };

/**
 * The string a request's `auth_signature` signs: the method, the path, and every query parameter
 * but `auth_signature`, keys lowercased and sorted, `key=value` (unescaped) joined by `&`.
 */
export function requestStringToSign(method: string, path: string, query: URLSearchParams): string {
  const params = new Map<string, string>();
  for (const [k, v] of query) {
    const key = k.toLowerCase();
    if (key !== "auth_signature" && !params.has(key)) params.set(key, v);
  }
  const sorted = [...params.keys()].sort();
  return `${method.toUpperCase()}\n${path}\n${sorted.map((k) => `${k}=${params.get(k)}`).join("&")}`;
}

/** The signed query string a client (the pusher SDKs) sends; for tests and tools. */
export function signRequest(
  appKey: string,
  secret: string,
  method: string,
  path: string,
  params: Record<string, string>,
  body: string,
  nowSec: number,
): URLSearchParams {
  const query = new URLSearchParams({
    auth_key: appKey,
    auth_timestamp: String(nowSec),
    auth_version: "1.0",
    ...params,
  });
  if (body !== "") query.set("body_md5", md5Hex(body));
  query.set("auth_signature", sign(secret, requestStringToSign(method, path, query)));
  return query;
}

export function md5Hex(body: string): string {
  return createHash("md5").update(body, "utf8").digest("hex");
}

/**
 * Pusher request signing: `auth_key` names the app, `auth_timestamp` is within ±600 s of
 * `nowSec`, a body comes with its `body_md5`, and `auth_signature` signs the request.
 */
export function verifyRequest(
  req: SignedRequest,
  appKey: string,
  secret: string,
  nowSec: number,
): RequestCheck {
  const q = req.query;
  const key = q.get("auth_key");
  if (key === null || !secureEquals(key, appKey)) return { ok: false, error: "unknown auth_key" };
  const ts = q.get("auth_timestamp") ?? "";
  if (!/^-?\d{1,15}$/.test(ts)) return { ok: false, error: "invalid auth_timestamp" };
  const delta = nowSec - Number(ts);
  if (delta > AUTH_TIMESTAMP_WINDOW_SEC || delta < -AUTH_TIMESTAMP_WINDOW_SEC) {
    return { ok: false, error: `auth_timestamp is ${delta} s away from the server's time (window: ±600 s)` };
  }
  const bodyMd5 = q.get("body_md5");
  if (req.body !== "" || bodyMd5 !== null) {
    if (bodyMd5 === null) return { ok: false, error: "body_md5 is missing" };
    if (!secureEquals(bodyMd5, md5Hex(req.body)))
      return { ok: false, error: "body_md5 does not match the body" };
  }
  const signature = q.get("auth_signature");
  if (signature === null) return { ok: false, error: "auth_signature is missing" };
  const expected = sign(secret, requestStringToSign(req.method, req.path, q));
  if (!secureEquals(signature.toLowerCase(), expected)) return { ok: false, error: "invalid auth_signature" };
  return { ok: true };
}
