// GraphQL over WebSocket on the wire: the graphql-ws library's `graphql-transport-ws` protocol and
// the legacy `graphql-ws` protocol of subscriptions-transport-ws. Client frames become internal
// commands (the executor turns them into node commands); node replies, transmissions and
// broadcasts of the GraphQL channel become `next` / `data` / `complete` / `ping` / `ka` frames.
// Pure: no runtime APIs, no I/O, nothing throws.
//
// One GraphQL operation is one Action Cable subscription, identified as graphql-ruby-client's
// ActionCableLink identifies it: `{"channel":"GraphqlChannel","channelId":"<operation id>"}`. The
// channel's action transmits `{result, more}` (graphql-anycable's contract), and so does
// graphql-anycable when it broadcasts a subscription's update.
import type { BroadcastMeta, DecodeResult, Encoded, Encoder, Frame, Reply } from "../encoder.ts";

/** The graphql-ws library's protocol (and the internal name its sessions carry). */
export const TRANSPORT_WS_PROTOCOL = "graphql-transport-ws";
/** subscriptions-transport-ws' legacy protocol (Apollo's original one). */
export const LEGACY_WS_PROTOCOL = "graphql-ws";
export type GraphqlProtocol = typeof TRANSPORT_WS_PROTOCOL | typeof LEGACY_WS_PROTOCOL;

/** graphql-transport-ws close codes (its PROTOCOL.md). */
export const GraphqlCloseCode = {
  badRequest: 4400,
  unauthorized: 4401,
  forbidden: 4403,
  initTimeout: 4408,
  subscriberExists: 4409,
  tooManyInits: 4429,
} as const;

// Internal commands the decoders produce (never node command names, so no client can run a node
// command the executor did not mean).
export const INIT_COMMAND = "graphql:init";
export const SUBSCRIBE_COMMAND = "graphql:subscribe";
export const COMPLETE_COMMAND = "graphql:complete";
export const TERMINATE_COMMAND = "graphql:terminate";
/** A frame that breaks the protocol: `data` is an InvalidFrame. */
export const INVALID_COMMAND = "graphql:invalid";

export interface InvalidFrame {
  reason: string;
  /** The frame was not JSON (the legacy protocol answers connection_error, not error). */
  parse: boolean;
}

/** The operation a subscribe / start carries, as the GraphQL channel's action gets it. */
export interface Operation {
  id: string;
  query: string;
  variables: Record<string, unknown> | null;
  operationName: string | null;
}

/** `data` of INIT_COMMAND: the connection params (undefined when the client sent none). */
export type InitParams = Record<string, unknown> | undefined;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function invalid(reason: string, parse = false): DecodeResult {
  const data: InvalidFrame = { reason, parse };
  return { ok: true, command: { command: INVALID_COMMAND, identifier: "", data } };
}

function command(name: string, data?: unknown): DecodeResult {
  return {
    ok: true,
    command: data === undefined ? { command: name, identifier: "" } : { command: name, identifier: "", data },
  };
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  return typeof v;
}

/** Ids of operations: non-empty strings (graphql-ws); the legacy client sends numbers' text. */
function operationId(msg: Record<string, unknown>): string | undefined {
  const id = msg.id;
  return typeof id === "string" && id !== "" ? id : undefined;
}

function operation(type: string, id: string, payload: unknown): DecodeResult {
  if (!isObject(payload)) return invalid(`"${type}" message expects the 'payload' property to be an object`);
  if (typeof payload.query !== "string")
    return invalid(`"${type}" message payload expects the 'query' property to be a string`);
  const { variables, operationName } = payload;
  if (variables !== undefined && variables !== null && !isObject(variables))
    return invalid(`"${type}" message payload expects the 'variables' property to be an object or null`);
  if (operationName !== undefined && operationName !== null && typeof operationName !== "string")
    return invalid(`"${type}" message payload expects the 'operationName' property to be a string or null`);
  const op: Operation = {
    id,
    query: payload.query,
    variables: (variables as Record<string, unknown> | undefined) ?? null,
    operationName: (operationName as string | undefined) ?? null,
  };
  return command(SUBSCRIBE_COMMAND, op);
}

/** A client frame of either protocol -> an internal command (INVALID_COMMAND when it breaks the protocol). */
export function decodeFrame(protocol: GraphqlProtocol, text: string): DecodeResult {
  let msg: unknown;
  try {
    msg = JSON.parse(text);
  } catch {
    return invalid("Invalid message received: not JSON", true);
  }
  if (!isObject(msg)) return invalid("Invalid message received: expected a JSON object");
  const type = msg.type;
  if (typeof type !== "string") return invalid("Message is missing the 'type' property");
  const legacy = protocol === LEGACY_WS_PROTOCOL;
  if (type === "connection_init") {
    const payload = msg.payload;
    if (payload !== undefined && payload !== null && !isObject(payload))
      return invalid(
        `"connection_init" message expects the 'payload' property to be an object, got ${describe(payload)}`,
      );
    return command(INIT_COMMAND, payload ?? undefined);
  }
  if (legacy) {
    switch (type) {
      case "start": {
        const id = operationId(msg);
        if (id === undefined)
          return invalid(`"start" message expects the 'id' property to be a non-empty string`);
        return operation(type, id, msg.payload);
      }
      case "stop": {
        const id = operationId(msg);
        if (id === undefined)
          return invalid(`"stop" message expects the 'id' property to be a non-empty string`);
        return command(COMPLETE_COMMAND, id);
      }
      case "connection_terminate":
        return command(TERMINATE_COMMAND);
    }
    return invalid("Invalid message type!");
  }
  switch (type) {
    case "ping":
      return { ok: true, command: { command: "ping", identifier: "" } };
    case "pong":
      return { ok: true, command: { command: "pong", identifier: "" } };
    case "subscribe": {
      const id = operationId(msg);
      if (id === undefined)
        return invalid(`"subscribe" message expects the 'id' property to be a non-empty string`);
      return operation(type, id, msg.payload);
    }
    case "complete": {
      const id = operationId(msg);
      if (id === undefined)
        return invalid(`"complete" message expects the 'id' property to be a non-empty string`);
      return command(COMPLETE_COMMAND, id);
    }
  }
  return invalid(`Invalid message type: ${type.slice(0, 100)}`);
}

// --- server frames

export function ackFrame(): string {
  return `{"type":"connection_ack"}`;
}

export const KEEPALIVE_FRAME = `{"type":"ka"}`;

function idJson(id: string): string {
  return JSON.stringify(id);
}

export function completeFrame(id: string): string {
  return `{"id":${idJson(id)},"type":"complete"}`;
}

/** An operation's error: graphql-ws sends a list of GraphQL errors, the legacy protocol one error. */
export function errorFrame(protocol: GraphqlProtocol, id: string, message: string): string {
  const error = JSON.stringify({ message });
  const payload = protocol === LEGACY_WS_PROTOCOL ? error : `[${error}]`;
  // (the legacy protocol's error about a frame that names no operation has no id)
  const idField = id === "" ? "" : `"id":${idJson(id)},`;
  return `{${idField}"type":"error","payload":${payload}}`;
}

/** The legacy protocol's answer to a frame it could not parse, and to a refused connection_init. */
export function connectionErrorFrame(message: string): string {
  return `{"type":"connection_error","payload":${JSON.stringify({ message })}}`;
}

function resultFrame(protocol: GraphqlProtocol, id: string, resultJson: string): string {
  const type = protocol === LEGACY_WS_PROTOCOL ? "data" : "next";
  return `{"id":${idJson(id)},"type":"${type}","payload":${resultJson}}`;
}

/** The operation id of a GraphQL channel identifier (`channelId`), whatever the channel's name. */
export function operationOf(identifier: string): string | undefined {
  if (identifier === "") return undefined;
  let v: unknown;
  try {
    v = JSON.parse(identifier);
  } catch {
    return undefined;
  }
  return isObject(v) && typeof v.channelId === "string" ? v.channelId : undefined;
}

/** The identifier of operation `id` on the GraphQL channel `channel` (graphql-ruby-client's shape). */
export function operationIdentifier(channel: string, id: string): string {
  return JSON.stringify({ channel, channelId: id });
}

/** `{result, more}`: the GraphQL channel's contract. */
interface ChannelMessage {
  resultJson?: string;
  more: boolean;
}

function channelMessage(v: unknown): ChannelMessage | undefined {
  if (!isObject(v)) return undefined;
  const more = v.more !== false;
  // A subscription's first answer is `{result: {data: null}, more: true}`: an acknowledgement with
  // nothing to show, skipped as graphql-ruby-client's ActionCableLink skips it (no data, no errors).
  const r = v.result;
  if (!isObject(r) || ((r.data === undefined || r.data === null) && r.errors === undefined)) return { more };
  try {
    return { resultJson: JSON.stringify(v.result), more };
  } catch {
    return undefined;
  }
}

/** Whether a transmission of operation `identifier` ends it (`more: false`): the executor completes it. */
export function endsOperation(transmission: string, identifier: string): boolean {
  let v: unknown;
  try {
    v = JSON.parse(transmission);
  } catch {
    return false;
  }
  return isObject(v) && v.identifier === identifier && isObject(v.message) && v.message.more === false;
}

function parse(text: string): { ok: true; value: unknown } | { ok: false } {
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return { ok: false };
  }
}

export class GraphqlEncoder implements Encoder {
  readonly binary = false;
  readonly id: GraphqlProtocol;
  // One broadcast is encoded once per subscriber (each operation has its own identifier): the
  // publication's parse is kept for the next subscriber of the same one.
  private lastData: string | undefined;
  private lastMessage: ChannelMessage | undefined | null;

  constructor(readonly protocol: GraphqlProtocol) {
    this.id = protocol;
  }

  decode(frame: Frame): DecodeResult {
    return decodeFrame(this.protocol, typeof frame === "string" ? frame : new TextDecoder().decode(frame));
  }

  encodeReply(reply: Reply): Encoded {
    const legacy = this.protocol === LEGACY_WS_PROTOCOL;
    switch (reply.type) {
      case "welcome":
        return ackFrame();
      case "ping":
        return legacy ? KEEPALIVE_FRAME : `{"type":"ping"}`;
      case "pong":
        return legacy ? null : `{"type":"pong"}`;
      case "disconnect":
        // graphql-ws has only close codes for it; the legacy protocol refuses a connection_init so
        return legacy && reply.reconnect === false
          ? connectionErrorFrame(reply.reason ?? "unauthorized")
          : null;
      case "confirm_subscription":
      case "reject_subscription":
        // the executor answers a rejection itself (it knows the operation failed to start)
        return null;
    }
    if (reply.type !== undefined) return null;
    return this.messageFrame(reply.identifier ?? "", channelMessage(reply.message));
  }

  encodeTransmission(json: string): Encoded {
    const parsed = parse(json);
    if (!parsed.ok || !isObject(parsed.value)) return undefined;
    return this.encodeReply(parsed.value as Reply);
  }

  encodeBroadcast(identifier: string, dataJson: string, meta?: BroadcastMeta): Encoded {
    if (meta?.type === "presence") return null;
    if (dataJson !== this.lastData) {
      const parsed = parse(dataJson);
      this.lastData = dataJson;
      this.lastMessage = parsed.ok ? (channelMessage(parsed.value) ?? null) : undefined;
    }
    const message = this.lastMessage;
    if (message === undefined) return undefined;
    return this.messageFrame(identifier, message ?? undefined);
  }

  /** null when it is not the channel's message, or one with nothing to tell (more, no result). */
  private messageFrame(identifier: string, message: ChannelMessage | undefined): Encoded {
    const id = operationOf(identifier);
    if (id === undefined || message === undefined) return null;
    if (message.resultJson !== undefined) return resultFrame(this.protocol, id, message.resultJson);
    // a broadcast `{more: false}` (graphql-ruby's server-side unsubscribe) ends the operation
    return message.more ? null : completeFrame(id);
  }
}

export const transportWsEncoder: GraphqlEncoder = new GraphqlEncoder(TRANSPORT_WS_PROTOCOL);
export const legacyWsEncoder: GraphqlEncoder = new GraphqlEncoder(LEGACY_WS_PROTOCOL);

/**
 * The protocol for an upgrade's Sec-WebSocket-Protocol: the first offered one we speak (entries
 * split on "," and trimmed); none of them: the legacy protocol, which AnyCable served first.
 */
export function selectGraphqlProtocol(offered: string | null): { protocol: GraphqlProtocol; echo: string } {
  for (const entry of (offered ?? "").split(",")) {
    const p = entry.trim();
    if (p === TRANSPORT_WS_PROTOCOL || p === LEGACY_WS_PROTOCOL) return { protocol: p, echo: p };
  }
  return { protocol: LEGACY_WS_PROTOCOL, echo: "" };
}
