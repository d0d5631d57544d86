// anycable-go's node-to-node messages as they travel through Redis / NATS pub/sub: a StreamMessage
// `{"stream","data","meta"?,"offset"?,"epoch"?}` (empty fields left out, as Go's omitempty does)
// or a RemoteCommandMessage `{"command","payload"}`. The same bytes let anycable-go and
// anycable-ts nodes share one cluster.

import type { RemoteCommand, StreamMessage } from "../broadcast/publication.ts";
import { publicationDataJson } from "../protocols/actioncable.ts";

export function encodeStreamMessage(m: StreamMessage): string {
  const wire: Record<string, unknown> = { stream: m.stream, data: m.dataJson };
  const meta: Record<string, unknown> = {};
  if (m.excludeSocket) meta.exclude_socket = m.excludeSocket;
  if (m.broadcastType) meta.broadcast_type = m.broadcastType;
  if (m.transient) meta.transient = true;
  if (Object.keys(meta).length > 0) wire.meta = meta;
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

export type PubSubMessage =
  | { kind: "broadcast"; message: StreamMessage }
  | { kind: "command"; command: RemoteCommand }
  | { kind: "invalid"; error: string };

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/** anycable-go's PubSubMessageFromJSON followed by what its subscribers do with each kind. */
export function decodePubSubMessage(raw: string): PubSubMessage {
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch (e) {
    return { kind: "invalid", error: (e as Error).message };
  }
  if (!isObject(v)) return { kind: "invalid", error: "not a stream message or a remote command" };
  if (typeof v.stream === "string" && v.stream !== "") {
    if (v.data !== undefined && typeof v.data !== "string")
      return { kind: "invalid", error: '"data" is not a string' };
    const message: StreamMessage = {
      stream: v.stream,
      dataJson: publicationDataJson((v.data as string) ?? ""),
    };
    if (isObject(v.meta)) {
      const { exclude_socket: exclude, broadcast_type: type, transient } = v.meta;
      if (typeof exclude === "string" && exclude !== "") message.excludeSocket = exclude;
      if (typeof type === "string" && type !== "") message.broadcastType = type;
      if (transient === true) message.transient = true;
    }
    if (typeof v.offset === "number" && Number.isSafeInteger(v.offset) && v.offset > 0)
      message.offset = v.offset;
    if (typeof v.epoch === "string" && v.epoch !== "") message.epoch = v.epoch;
    return { kind: "broadcast", message };
  }
  if (v.command === "disconnect") {
    const p = v.payload;
    if (!isObject(p) || typeof p.identifier !== "string") {
      return { kind: "invalid", error: "remote disconnect without an identifier" };
    }
    return {
      kind: "command",
      command: { command: "disconnect", identifier: p.identifier, reconnect: p.reconnect === true },
    };
  }
  return { kind: "invalid", error: "unknown message" };
}
