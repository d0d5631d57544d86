// Sub-protocol name -> Encoder, and the choice of sub-protocol at upgrade time.
import { PROTOCOL_EXT_JSON, PROTOCOL_JSON, selectProtocol as selectFrom } from "./actioncable.ts";
import type { Encoder } from "./encoder.ts";
import {
  LEGACY_WS_PROTOCOL,
  legacyWsEncoder,
  TRANSPORT_WS_PROTOCOL,
  transportWsEncoder,
} from "./graphql/protocol.ts";
import { jsonEncoder } from "./json_encoder.ts";
import { msgpackEncoder } from "./msgpack_encoder.ts";
import { OCPP_PROTOCOL, ocppEncoder } from "./ocpp/protocol.ts";
import { protobufEncoder, protobufExtEncoder } from "./protobuf_encoder.ts";
import { PUSHER_PROTOCOL, pusherEncoder } from "./pusher/protocol.ts";

export const PROTOCOL_MSGPACK = "actioncable-v1-msgpack";
export const PROTOCOL_EXT_MSGPACK = "actioncable-v1-ext-msgpack";
export const PROTOCOL_PROTOBUF = "actioncable-v1-protobuf";
export const PROTOCOL_EXT_PROTOBUF = "actioncable-v1-ext-protobuf";

export interface ProtocolInfo {
  /** The Sec-WebSocket-Protocol token. */
  readonly name: string;
  readonly encoder: Encoder;
  /** The extended Action Cable protocol (history, sessions, pong, whisper, presence). */
  readonly extended: boolean;
}

function info(name: string, encoder: Encoder, extended: boolean): ProtocolInfo {
  return Object.freeze({ name, encoder, extended });
}

/** Every sub-protocol we speak, in this order of preference among equals (the client's order wins). */
export const PROTOCOLS: ReadonlyMap<string, ProtocolInfo> = new Map(
  [
    info(PROTOCOL_JSON, jsonEncoder, false),
    info(PROTOCOL_EXT_JSON, jsonEncoder, true),
    info(PROTOCOL_MSGPACK, msgpackEncoder, false),
    info(PROTOCOL_EXT_MSGPACK, msgpackEncoder, true),
    info(PROTOCOL_PROTOBUF, protobufEncoder, false),
    info(PROTOCOL_EXT_PROTOBUF, protobufExtEncoder, true),
  ].map((p) => [p.name, p]),
);

export const ALL_PROTOCOLS: readonly string[] = [...PROTOCOLS.keys()];

/**
 * Foreign protocols served on endpoints of their own (never chosen by sub-protocol): their
 * sessions carry these names, and their executors (node/executor.ts) say what commands mean.
 */
const INTERNAL_PROTOCOLS: ReadonlyMap<string, ProtocolInfo> = new Map([
  [PUSHER_PROTOCOL, info(PUSHER_PROTOCOL, pusherEncoder, false)],
  [TRANSPORT_WS_PROTOCOL, info(TRANSPORT_WS_PROTOCOL, transportWsEncoder, false)],
  [LEGACY_WS_PROTOCOL, info(LEGACY_WS_PROTOCOL, legacyWsEncoder, false)],
  // (each OCPP session carries an encoder of its own: request.encoder)
  [OCPP_PROTOCOL, info(OCPP_PROTOCOL, ocppEncoder, false)],
]);

/**
 * The sub-protocol to echo for a Sec-WebSocket-Protocol header: the first offered entry we speak
 * (entries split on "," and trimmed; `anycable-token.*` entries are never chosen); "" if none.
 */
export function selectProtocol(offered: string | null | undefined): string {
  return selectFrom(offered, ALL_PROTOCOLS);
}

/** The protocol a session speaks; "" (nothing selected) or an unknown name is actioncable-v1-json. */
export function protocolInfo(name: string): ProtocolInfo {
  return PROTOCOLS.get(name) ?? INTERNAL_PROTOCOLS.get(name) ?? PROTOCOLS.get(PROTOCOL_JSON)!;
}
