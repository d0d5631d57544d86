// The Pusher HTTP API under /apps/<app_id>/, with Pusher's request signing: what anycable-go has
// (POST /events, GET /channels/<name>/users, with its statuses: 401 for any signature problem,
// 422 for other methods and unparseable bodies) and the rest of Pusher's reference:
// POST /batch_events, GET /channels, GET /channels/<name>, POST /users/<id>/terminate_connections.
import { Buffer } from "node:buffer";
import type { PublicationHandler } from "../../broadcast/broadcaster.ts";
import type { StreamPublication } from "../../broadcast/publication.ts";
import { type Broker, isBrokerError } from "../../broker/broker.ts";
import { bodyReader, bodyTimedOut, DEFAULT_MAX_BODY_BYTES, tooLarge } from "../../http/body.ts";
import { compact, type Logger } from "../../log/logger.ts";
import type { Channels } from "./channels.ts";
import { userIdentifiers } from "./executor.ts";
import {
  ENCRYPTED_PREFIX,
  isPresence,
  MAX_EVENT_DATA_BYTES,
  MAX_EVENT_NAME_LENGTH,
  PRESENCE_PREFIX,
  SOCKET_ID_PATTERN,
  validChannelName,
} from "./protocol.ts";
import { verifyRequest } from "./signatures.ts";

/** Pusher's limits: channels per event, events per batch. */
export const MAX_CHANNELS_PER_EVENT = 100;
export const MAX_BATCH_EVENTS = 10;

export interface ApiOptions {
  appId: string;
  appKey: string;
  secret: string;
  maxBodyBytes?: number;
  now?: () => number;
}

/** The API's base path, e.g. /apps/123. */
export function apiPrefix(appId: string): string {
  return `/apps/${appId}`;
}

type Status = { status: number; body?: string; [STATUS]: true };
const STATUS = Symbol("status");

function status(code: number, body?: string): Status {
  return { status: code, body, [STATUS]: true };
}

function isStatus(v: object): v is Status {
  return STATUS in v;
}

function json(value: unknown, status = 200): Response {
  return new Response(JSON.stringify(value), { status, headers: { "content-type": "application/json" } });
}

function plain(status: number, text?: string): Response {
  return new Response(text === undefined ? null : `${text}\n`, {
    status,
    headers: text === undefined ? undefined : { "content-type": "text/plain" },
  });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

interface EventRequest {
  name: string;
  data: string;
  channels: string[];
  socketId?: string;
  info: Set<string>;
}

/** One event of /events or /batch_events, validated as Pusher validates it. */
function parseEvent(raw: unknown, single: boolean): EventRequest | Status {
  if (!isObject(raw)) return status(400, "event must be a JSON object");
  const { name, data, channels, channel, socket_id: socketId, info } = raw;
  if (typeof name !== "string" || name === "") return status(400, "name must be a non-empty string");
  if (name.length > MAX_EVENT_NAME_LENGTH) return status(400, "name is longer than 200 characters");
  if (typeof data !== "string") return status(400, "data must be a string (JSON-encode it)");
  if (Buffer.byteLength(data) > MAX_EVENT_DATA_BYTES) return status(413, "data is over 10 KB");
  let list: unknown[];
  if (single && channels !== undefined && channels !== null) {
    if (!Array.isArray(channels)) return status(400, "channels must be an array");
    list = channels;
  } else if (typeof channel === "string") {
    list = [channel];
  } else {
    return status(400, single ? "channels or channel is required" : "channel is required");
  }
  if (list.length === 0) return status(400, "no channels");
  if (list.length > MAX_CHANNELS_PER_EVENT) return status(400, "more than 100 channels");
  for (const c of list) {
    if (typeof c !== "string" || !validChannelName(c)) {
      return status(400, `invalid channel name: ${String(c).slice(0, 200)}`);
    }
  }
  const names = list as string[];
  if (names.length > 1 && names.some((c) => c.startsWith(ENCRYPTED_PREFIX))) {
    return status(400, "an event to an encrypted channel goes to that channel only");
  }
  if (socketId !== undefined && socketId !== null) {
    if (typeof socketId !== "string" || !SOCKET_ID_PATTERN.test(socketId)) {
      return status(400, "invalid socket_id");
    }
  }
  if (info !== undefined && info !== null && typeof info !== "string") {
    return status(400, "info must be a comma-separated string");
  }
  return {
    name,
    data,
    channels: names,
    socketId: typeof socketId === "string" ? socketId : undefined,
    info: infoAttributes(typeof info === "string" ? info : null),
  };
}

function infoAttributes(info: string | null): Set<string> {
  return new Set(
    (info ?? "")
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s !== ""),
  );
}

function publications(e: EventRequest): StreamPublication[] {
  const dataJson = JSON.stringify({ event: e.name, data: e.data });
  return e.channels.map((stream) => {
    const pub: StreamPublication = { stream, dataJson };
    if (e.socketId) pub.excludeSocket = e.socketId;
    return pub;
  });
}

export function createPusherApi(
  handler: PublicationHandler,
  broker: Broker,
  channels: Channels,
  opts: ApiOptions,
  logger: Logger,
): (req: Request) => Promise<Response> {
  const log = logger.with({ context: "pusher" });
  const prefix = apiPrefix(opts.appId);
  const readBody = bodyReader(log, opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES);
  const now = opts.now ?? (() => Math.floor(Date.now() / 1000));

  /** The info a channel query asked for: user_count only for presence channels (else 400). */
  async function channelAttributes(
    channel: string,
    attrs: Set<string>,
  ): Promise<Record<string, unknown> | Status> {
    const out: Record<string, unknown> = {};
    if (attrs.has("user_count")) {
      if (!isPresence(channel)) return status(400, "user_count is only available for presence channels");
      const n = await channels.userCount(channel);
      if (typeof n !== "number") return status(500, n.error);
      out.user_count = n;
    }
    if (attrs.has("subscription_count")) out.subscription_count = channels.localCount(channel);
    return out;
  }

  async function trigger(events: EventRequest[], batch: boolean): Promise<Response> {
    const pubs = events.flatMap(publications);
    try {
      handler.handle({ kind: "broadcast", publications: pubs });
    } catch (err) {
      log.error("failed to handle Pusher event", { error: err });
      return plain(500);
    }
    log.debug("event received", {
      event: events.map((e) => e.name).join(","),
      channels: events.flatMap((e) => e.channels).join(","),
    });
    if (events.every((e) => e.info.size === 0)) return json({});
    if (batch) {
      const out: Record<string, unknown>[] = [];
      for (const e of events) {
        const a = await channelAttributes(e.channels[0] ?? "", e.info);
        out.push(isStatus(a) ? {} : a);
      }
      return json({ batch: out });
    }
    const e = events[0]!;
    const out: Record<string, unknown> = {};
    for (const c of e.channels) {
      const a = await channelAttributes(c, e.info);
      out[c] = isStatus(a) ? {} : a;
    }
    return json({ channels: out });
  }

  async function route(
    method: string,
    rest: string,
    query: URLSearchParams,
    body: string,
  ): Promise<Response> {
    if (method === "POST" && (rest === "/events" || rest === "/batch_events")) {
      let raw: unknown;
      try {
        raw = JSON.parse(body);
      } catch {
        handler.handleInvalid();
        log.warn("failed to parse Pusher event", { data: compact(body) });
        return plain(422, "body is not valid JSON");
      }
      const events: EventRequest[] = [];
      if (rest === "/events") {
        const e = parseEvent(raw, true);
        if (isStatus(e)) return plain(e.status, e.body);
        events.push(e);
      } else {
        const list = isObject(raw) ? raw.batch : undefined;
        if (!Array.isArray(list) || list.length === 0) return plain(400, "batch must be a non-empty array");
        if (list.length > MAX_BATCH_EVENTS) return plain(400, "more than 10 events in a batch");
        for (const item of list) {
          const e = parseEvent(item, false);
          if (isStatus(e)) return plain(e.status, e.body);
          events.push(e);
        }
      }
      return trigger(events, rest === "/batch_events");
    }
    const terminate = /^\/users\/([^/]+)\/terminate_connections$/.exec(rest);
    if (method === "POST" && terminate) {
      const userId = decodeURIComponent(terminate[1]!);
      handler.handle({
        kind: "command",
        command: { command: "disconnect", identifier: userIdentifiers(userId), reconnect: false },
      });
      return json({});
    }
    if (method !== "GET") return plain(404);
    const attrs = infoAttributes(query.get("info"));
    if (rest === "/channels") {
      const filter = query.get("filter_by_prefix") ?? "";
      if (attrs.has("user_count") && !filter.startsWith(PRESENCE_PREFIX)) {
        return plain(400, "user_count needs filter_by_prefix=presence-");
      }
      const out: Record<string, unknown> = {};
      for (const c of [...channels.localChannels()].sort()) {
        if (!c.startsWith(filter)) continue;
        const a = await channelAttributes(c, attrs);
        if (isStatus(a)) return plain(a.status, a.body);
        out[c] = a;
      }
      return json({ channels: out });
    }
    const users = /^\/channels\/([^/]+)\/users$/.exec(rest);
    if (users) {
      const channel = decodeURIComponent(users[1]!);
      if (!isPresence(channel)) return plain(400, "users are only available for presence channels");
      if (!broker.supportsPresence) return plain(501);
      const info = await broker.presenceInfo(channel, { returnRecords: true });
      if (isBrokerError(info)) {
        log.debug("failed to get presence info", { channel, error: info.error });
        return plain(400);
      }
      return json({ users: (info.records ?? []).map((r) => ({ id: r.id })) });
    }
    const one = /^\/channels\/([^/]+)$/.exec(rest);
    if (one) {
      const channel = decodeURIComponent(one[1]!);
      if (attrs.has("user_count") && !isPresence(channel)) {
        return plain(400, "user_count is only available for presence channels");
      }
      const info = await channels.info(channel, attrs.has("user_count"));
      if ("error" in info) return plain(500, info.error);
      const out: Record<string, unknown> = { occupied: info.occupied };
      if (info.user_count !== undefined) out.user_count = info.user_count;
      if (attrs.has("subscription_count")) out.subscription_count = info.subscription_count;
      return json(out);
    }
    return plain(404);
  }

  return async (req) => {
    const url = new URL(req.url);
    if (req.method !== "POST" && req.method !== "GET") {
      log.debug("invalid request method", { method: req.method });
      return plain(422);
    }
    let body = "";
    if (req.method === "POST") {
      const read = await readBody(req);
      if (!read.ok) {
        if (read.reason === "too_large") return tooLarge();
        if (read.reason === "timeout") return bodyTimedOut();
        return plain(422);
      }
      body = read.text;
    }
    const check = verifyRequest(
      { method: req.method, path: url.pathname, query: url.searchParams, body },
      opts.appKey,
      opts.secret,
      now(),
    );
    if (!check.ok) {
      log.debug("Pusher API request refused", { path: url.pathname, error: check.error });
      return plain(401, check.error);
    }
    return route(req.method, url.pathname.slice(prefix.length), url.searchParams, body);
  };
}
