// The Pusher Channels protocol (version 7) on the wire: client frames -> node commands, node
// replies and broadcasts -> Pusher events, as anycable-go's pusher encoder maps them. Pure: no
// runtime APIs, no I/O, nothing throws.
//
// A Pusher channel is the node subscription `{"channel":"$pusher","stream":"<channel>"}` whose one
// stream is the channel name, so Action Cable clients of a stream of that name and Pusher clients
// of the channel see the same publications (as in anycable-go).
import type { BroadcastMeta, DecodeResult, Encoded, Encoder, Frame, Reply } from "../encoder.ts";

/** The internal protocol name Pusher sessions carry (never negotiated as a sub-protocol). */
export const PUSHER_PROTOCOL = "pusher";
/** The node channel Pusher subscriptions are identified by. */
export const PUSHER_CHANNEL = "$pusher";
/** What connection_established tells clients to ping after (seconds of silence), as anycable-go. */
export const ACTIVITY_TIMEOUT_SEC = 30;
/** Pusher's limit for an event's data (client events and the HTTP API). */
export const MAX_EVENT_DATA_BYTES = 10 * 1024;
/** Pusher's limits on names. */
export const MAX_CHANNEL_NAME_LENGTH = 200;
export const MAX_EVENT_NAME_LENGTH = 200;

export const PRIVATE_PREFIX = "private-";
export const PRESENCE_PREFIX = "presence-";
export const ENCRYPTED_PREFIX = "private-encrypted-";
export const USER_CHANNEL_PREFIX = "#server-to-user-";
export const CLIENT_EVENT_PREFIX = "client-";

/** Error codes as anycable-go sends them: 4009 for refusals (no reconnect), 4200 to reconnect. */
export const ErrorCode = {
  unauthorized: 4009,
  generic: 4200,
} as const;

/** Internal commands the decoder produces besides the node's own (subscribe, whisper, ping, ...). */
export const SIGNIN_COMMAND = "pusher:signin";
/** A frame the decoder could not make sense of: `data` says why; the executor answers pusher:error. */
export const INVALID_COMMAND = "pusher:invalid";

/** `pusher:subscribe` data as the executor needs it. */
export interface SubscribeData {
  channel: string;
  auth?: string;
  channel_data?: string;
}

/** `pusher:signin` data. */
export interface SigninData {
  auth?: string;
  user_data?: string;
}

/** A client event as the node whispers it: the other subscribers get `{event, data, channel[, user_id]}`. */
export interface ClientEvent {
  event: string;
  channel: string;
  data: unknown;
  user_id?: string;
}

export function channelToIdentifier(channel: string): string {
  return `{"channel":"$pusher","stream":${JSON.stringify(channel)}}`;
}

/** The channel of a Pusher identifier, or undefined when it is not one. */
export function identifierToChannel(identifier: string): string | undefined {
  let v: unknown;
  try {
    v = JSON.parse(identifier);
  } catch {
    return undefined;
  }
  if (!isObject(v) || v.channel !== PUSHER_CHANNEL || typeof v.stream !== "string") return undefined;
  return v.stream;
}

/** Pusher's channel name rule: `[A-Za-z0-9_\-=@,.;]`, and `#server-to-user-<id>` for user channels. */
export function validChannelName(name: string): boolean {
  if (name.length === 0 || name.length > MAX_CHANNEL_NAME_LENGTH) return false;
  const rest = name.startsWith(USER_CHANNEL_PREFIX) ? name.slice(USER_CHANNEL_PREFIX.length) : name;
  return rest.length > 0 && /^[A-Za-z0-9_\-=@,.;]+$/.test(rest);
}

export function isPrivate(channel: string): boolean {
  return channel.startsWith(PRIVATE_PREFIX);
}

export function isPresence(channel: string): boolean {
  return channel.startsWith(PRESENCE_PREFIX);
}

/** Channels that need an `auth` signature to subscribe. */
export function needsAuth(channel: string): boolean {
  return isPrivate(channel) || isPresence(channel);
}

/** Private and presence channels carry client events, except encrypted ones (the server cannot). */
export function allowsClientEvents(channel: string): boolean {
  return needsAuth(channel) && !channel.startsWith(ENCRYPTED_PREFIX);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function invalid(reason: string): DecodeResult {
  return { ok: true, command: { command: INVALID_COMMAND, identifier: "", data: reason } };
}

/** `data` of a pusher: event: an object, or (leniently) an object's JSON text. */
function objectData(v: unknown): Record<string, unknown> | undefined {
  if (isObject(v)) return v;
  if (typeof v !== "string") return undefined;
  try {
    const parsed = JSON.parse(v) as unknown;
    return isObject(parsed) ? parsed : undefined;
  } catch {
    return undefined;
  }
}

function optionalString(o: Record<string, unknown>, key: string): string | undefined | false {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  return typeof v === "string" ? v : false;
}

/**
 * A client frame -> a node command. Frames anycable-go cannot decode (not JSON, not an object, an
 * unknown event, fields of the wrong type) become INVALID_COMMAND, which the executor answers with
 * a `pusher:error` and keeps reading (anycable-go stops reading from such a client).
 */
export function decodeFrame(text: string): DecodeResult {
  let msg: unknown;
  try {
    msg = JSON.parse(text);
  } catch {
    return invalid("Invalid JSON");
  }
  if (!isObject(msg)) return invalid("Invalid message: expected a JSON object");
  const event = msg.event;
  if (typeof event !== "string") return invalid("Invalid message: event must be a string");
  switch (event) {
    case "pusher:ping":
      return { ok: true, command: { command: "ping", identifier: "" } };
    case "pusher:pong":
      return { ok: true, command: { command: "pong", identifier: "" } };
    case "pusher:subscribe":
    case "pusher:unsubscribe": {
      const data = objectData(msg.data);
      if (!data || typeof data.channel !== "string")
        return invalid(`Invalid ${event}: data.channel is missing`);
      const auth = optionalString(data, "auth");
      const channelData = optionalString(data, "channel_data");
      if (auth === false || channelData === false) {
        return invalid(`Invalid ${event}: auth and channel_data must be strings`);
      }
      const sub: SubscribeData = { channel: data.channel };
      if (auth !== undefined) sub.auth = auth;
      if (channelData !== undefined) sub.channel_data = channelData;
      return {
        ok: true,
        command: {
          command: event === "pusher:subscribe" ? "subscribe" : "unsubscribe",
          identifier: channelToIdentifier(data.channel),
          data: sub,
        },
      };
    }
    case "pusher:signin": {
      const data = objectData(msg.data);
      if (!data) return invalid("Invalid pusher:signin: data is missing");
      const auth = optionalString(data, "auth");
      const userData = optionalString(data, "user_data");
      if (auth === false || userData === false) {
        return invalid("Invalid pusher:signin: auth and user_data must be strings");
      }
      const signin: SigninData = {};
      if (auth !== undefined) signin.auth = auth;
      if (userData !== undefined) signin.user_data = userData;
      return { ok: true, command: { command: SIGNIN_COMMAND, identifier: "", data: signin } };
    }
  }
  if (event.startsWith(CLIENT_EVENT_PREFIX)) {
    if (typeof msg.channel !== "string") return invalid("Invalid client event: channel must be a string");
    const clientEvent: ClientEvent = { event, channel: msg.channel, data: msg.data ?? null };
    return {
      ok: true,
      command: { command: "whisper", identifier: channelToIdentifier(msg.channel), data: clientEvent },
    };
  }
  return invalid(`Unsupported event: ${event.slice(0, MAX_EVENT_NAME_LENGTH)}`);
}

// --- server events, in anycable-go's field order (event, data, channel)

export const PING_FRAME = `{"event":"pusher:ping","data":{}}`;
export const PONG_FRAME = `{"event":"pusher:pong","data":{}}`;

export function eventFrame(event: string, data: unknown, channel?: string): string {
  const ch = channel === undefined ? "" : `,"channel":${JSON.stringify(channel)}`;
  const d = data === undefined ? "" : `,"data":${JSON.stringify(data)}`;
  return `{"event":${JSON.stringify(event)}${d}${ch}}`;
}

/** `pusher:error`; `code` null for errors that do not end the connection (as Pusher sends them). */
export function errorFrame(message: string, code: number | null): string {
  return `{"event":"pusher:error","data":{"message":${JSON.stringify(message)},"code":${code === null ? "null" : code}}}`;
}

export function connectionEstablishedFrame(socketId: string): string {
  return eventFrame(
    "pusher:connection_established",
    JSON.stringify({ socket_id: socketId, activity_timeout: ACTIVITY_TIMEOUT_SEC }),
  );
}

/** A presence channel's members as subscription_succeeded lists them. */
export interface PresenceMembers {
  count: number;
  ids: string[];
  hash: Record<string, unknown>;
}

export function subscriptionSucceededData(members?: PresenceMembers): string {
  return members ? JSON.stringify({ presence: members }) : "{}";
}

function memberFrame(type: string, channel: string, id: string, info: unknown): string | null {
  if (type === "join") {
    const member = info === undefined || info === null ? { user_id: id } : { user_id: id, user_info: info };
    return eventFrame("pusher_internal:member_added", JSON.stringify(member), channel);
  }
  if (type === "leave")
    return eventFrame("pusher_internal:member_removed", JSON.stringify({ user_id: id }), channel);
  return null;
}

/** A publication's message as a Pusher event on `channel`: it needs a string `event` (else nothing is sent). */
function messageFrame(channel: string, message: unknown): string | null {
  if (!isObject(message) || typeof message.event !== "string" || message.event === "") return null;
  const data = Object.hasOwn(message, "data") ? message.data : message;
  let frame = eventFrame(message.event, data, channel);
  if (typeof message.user_id === "string") {
    frame = `${frame.slice(0, -1)},"user_id":${JSON.stringify(message.user_id)}}`;
  }
  return frame;
}

function parseJson(text: string): { ok: true; value: unknown } | { ok: false } {
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return { ok: false };
  }
}

export class PusherEncoder implements Encoder {
  readonly id = "pusher";
  readonly binary = false;

  decode(frame: Frame): DecodeResult {
    return decodeFrame(typeof frame === "string" ? frame : new TextDecoder().decode(frame));
  }

  encodeReply(reply: Reply): Encoded {
    switch (reply.type) {
      case "welcome":
        return connectionEstablishedFrame(reply.sid ?? "");
      case "ping":
        return PING_FRAME;
      case "pong":
        return PONG_FRAME;
      case "disconnect":
        return errorFrame(reply.reason ?? "", reply.reconnect ? ErrorCode.generic : ErrorCode.unauthorized);
      case "reject_subscription":
        return errorFrame("rejected", ErrorCode.unauthorized);
      case "confirm_subscription": {
        const channel = identifierToChannel(reply.identifier ?? "");
        if (channel === undefined) return undefined;
        const data = reply.message === undefined || reply.message === null ? "{}" : reply.message;
        return eventFrame("pusher_internal:subscription_succeeded", data, channel);
      }
    }
    const channel = identifierToChannel(reply.identifier ?? "");
    if (channel === undefined) return null;
    if (reply.type === "presence" && isObject(reply.message)) {
      const { type, id, info } = reply.message;
      return typeof type === "string" && typeof id === "string" ? memberFrame(type, channel, id, info) : null;
    }
    return messageFrame(channel, reply.message);
  }

  encodeTransmission(json: string): Encoded {
    const parsed = parseJson(json);
    if (!parsed.ok || !isObject(parsed.value)) return undefined;
    return this.encodeReply(parsed.value as Reply);
  }

  encodeBroadcast(identifier: string, dataJson: string, meta?: BroadcastMeta): Encoded {
    const channel = identifierToChannel(identifier);
    if (channel === undefined) return null;
    const parsed = parseJson(dataJson);
    if (!parsed.ok) return undefined;
    const message = parsed.value;
    if (meta?.type === "presence") {
      if (!isObject(message) || typeof message.type !== "string" || typeof message.id !== "string")
        return null;
      return memberFrame(message.type, channel, message.id, message.info);
    }
    return messageFrame(channel, message);
  }
}

export const pusherEncoder: PusherEncoder = new PusherEncoder();

/** A socket id as Pusher's clients and SDKs expect it (`<digits>.<digits>`). */
export const SOCKET_ID_PATTERN = /^\d+\.\d+$/;

/** A fresh socket id: two random 32-bit numbers (anycable-go uses the clock and 20 random bits). */
export function newSocketId(): string {
  const r = new Uint32Array(2);
  crypto.getRandomValues(r);
  return `${r[0]}.${r[1]}`;
}
