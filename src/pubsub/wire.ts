// The JSON that nodes exchange over a pub/sub engine (Redis, NATS), anycable-go's field for field (common.go
// StreamMessage / RemoteCommandMessage, PubSubMessageFromJSON), so anycable-go and anycable-ts
// nodes can share one engine during a rolling migration:
//   {"stream":"s","data":"<string>","meta":{"exclude_socket":..,"broadcast_type":..,"transient":true},"offset":3,"epoch":"e"}
//   {"command":"disconnect","payload":{"identifier":"...","reconnect":true}}
// Empty / zero fields are left out, as Go's omitempty does.
import type { RemoteCommand, StreamMessage } from "../broadcast/publication.ts";
import { publicationDataJson } from "../protocols/actioncable.ts";

export function encodeStreamMessage(m: StreamMessage): string {
  // `data` carries dataJson: both servers turn a JSON text into the same client message as the
  // original string it came from (a non-JSON string became a JSON string literal).
  const wire: Record<string, unknown> = { stream: m.stream, data: m.dataJson };
  if (m.excludeSocket || m.broadcastType || m.transient) {
    const meta: Record<string, unknown> = {};
    if (m.excludeSocket) meta.exclude_socket = m.excludeSocket;
    if (m.broadcastType) meta.broadcast_type = m.broadcastType;
    if (m.transient) meta.transient = true;
    wire.meta = meta;
  }
  if (m.offset) wire.offset = m.offset;
  if (m.epoch) wire.epoch = m.epoch;
  return JSON.stringify(wire);
}

export function encodeRemoteCommand(c: RemoteCommand): string {
  return JSON.stringify({
    command: c.command,
    payload: { identifier: c.identifier, reconnect: c.reconnect },
  });
}

export type DecodedPubSubMessage =
  | { kind: "broadcast"; message: StreamMessage }
  | { kind: "command"; command: RemoteCommand }
  /** Valid but nothing to do here (a batch, an unknown command): anycable-go ignores these too. */
  | { kind: "ignored"; reason: string }
  | { kind: "invalid"; error: string };

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function decodeStream(raw: Record<string, unknown>): StreamMessage | string {
  if (raw.data !== undefined && raw.data !== null && typeof raw.data !== "string")
    return '"data" must be a string';
  const message: StreamMessage = {
    stream: raw.stream as string,
    dataJson: publicationDataJson((raw.data as string | undefined) ?? ""),
  };
  if (isObject(raw.meta)) {
    const { exclude_socket: exclude, broadcast_type: type, transient } = raw.meta;
    if (typeof exclude === "string" && exclude !== "") message.excludeSocket = exclude;
    if (typeof type === "string" && type !== "") message.broadcastType = type;
    if (transient === true) message.transient = true;
  } else if (raw.meta !== undefined && raw.meta !== null) {
    return '"meta" must be an object';
  }
  if (raw.offset !== undefined && raw.offset !== null) {
    if (typeof raw.offset !== "number" || !Number.isInteger(raw.offset) || raw.offset < 0) {
      return '"offset" must be a non-negative integer';
    }
    if (raw.offset > 0) message.offset = raw.offset;
  }
  if (raw.epoch !== undefined && raw.epoch !== null) {
    if (typeof raw.epoch !== "string") return '"epoch" must be a string';
    if (raw.epoch !== "") message.epoch = raw.epoch;
  }
  return message;
}

/** Reads what another node (anycable-ts or anycable-go) published, in PubSubMessageFromJSON's order. */
export function decodePubSubMessage(text: string): DecodedPubSubMessage {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    return { kind: "invalid", error: `not JSON: ${(e as Error).message}` };
  }
  if (Array.isArray(raw)) {
    // anycable-go parses batches but its subscribers drop them: nodes never publish batches.
    return { kind: "ignored", reason: "batch" };
  }
  if (!isObject(raw)) return { kind: "invalid", error: "not a JSON object" };
  if (typeof raw.stream === "string" && raw.stream !== "") {
    const message = decodeStream(raw);
    if (typeof message === "string") return { kind: "invalid", error: message };
    return { kind: "broadcast", message };
  }
  if (typeof raw.command === "string" && raw.command !== "") {
    if (raw.command !== "disconnect") return { kind: "ignored", reason: `unknown command ${raw.command}` };
    const payload = raw.payload;
    if (!isObject(payload) || typeof payload.identifier !== "string") {
      return { kind: "invalid", error: 'disconnect needs "payload": {"identifier": string}' };
    }
    return {
      kind: "command",
      command: {
        command: "disconnect",
        identifier: payload.identifier,
        reconnect: payload.reconnect === true,
      },
    };
  }
  return { kind: "invalid", error: "invalid publication format" };
}
