// The Encoder seam: one implementation per wire format of the Action Cable sub-protocols
// (json, msgpack, protobuf v1, protobuf ext). Pure: no runtime APIs, no I/O, nothing throws.
//
// The node speaks in ClientCommand (in) and Reply / JSON text (out); an Encoder turns frames into
// commands and replies into frames. Encoders are stateless values shared by every session.

/** A WebSocket message: text for the JSON encoder, bytes for the binary ones. */
export type Frame = string | Uint8Array;

/** The last position a client saw in one stream (extended protocol). */
export interface HistoryPosition {
  epoch: string;
  offset: number;
}

/**
 * The `history` part of a subscribe/history command. Zero values are omitted (`since` 0, no
 * streams), like the fields of anycable-go's HistoryRequest, so every encoder yields one form.
 */
export interface HistoryRequest {
  /** UNIX time in seconds. */
  since?: number;
  streams?: Record<string, HistoryPosition>;
}

/** The `presence` part of join/leave commands (formats that carry it: JSON, msgpack). */
export interface PresenceEvent {
  type?: string;
  id: string;
  info?: unknown;
}

export interface ClientCommand {
  command: string;
  identifier: string;
  /** `message`: JSON text of the action; `whisper`: any JSON value. Absent when null/missing. */
  data?: unknown;
  /** Absent when the frame had none (or only zero values). */
  history?: HistoryRequest;
  presence?: PresenceEvent;
}

export type DecodeResult = { ok: true; command: ClientCommand } | { ok: false; error: string };

/**
 * A server-to-client message. Field names are the JSON protocol's keys; empty fields are omitted
 * on the wire (a `disconnect` always carries `reason` and `reconnect`).
 */
export interface Reply {
  type?: string;
  identifier?: string;
  /** The decoded JSON value of the payload (a ping's timestamp, a transmission's data, ...). */
  message?: unknown;
  presence?: unknown;
  reason?: string;
  reconnect?: boolean;
  stream_id?: string;
  epoch?: string;
  offset?: number;
  sid?: string;
  restored?: boolean;
  restored_ids?: string[];
}

/**
 * Per-publication metadata of a broadcast: the same object can be passed for every identifier
 * and encoder of one publication (the hot path allocates nothing per call).
 */
export interface BroadcastMeta {
  /** Broadcast type (e.g. "presence"); protobuf carries only the enum's names (else no_type). */
  type?: string;
  /** Stream position assigned by the broker (absent with no broker). */
  stream_id?: string;
  epoch?: string;
  offset?: number;
}

/**
 * What an encoder returns: a frame; undefined when the message holds a value the format cannot
 * carry (counted as a failed message); null when the format has nothing to send for it (a foreign
 * protocol skipping a message its clients have no form for, as anycable-go's nil frame).
 */
export type Encoded = Frame | undefined | null;

export interface Encoder {
  /**
   * Encode-once cache key ("json", "msgpack", "protobuf", "protobuf-ext"): sub-protocols that
   * share an encoder share its id, and two encoders with one id produce identical bytes.
   */
  readonly id: string;
  /** Frames are sent as binary WebSocket messages (else text). */
  readonly binary: boolean;
  /** A client frame; its kind (text / binary) is ignored, as anycable-go reads only its bytes. */
  decode(frame: Frame): DecodeResult;
  /** undefined when the reply holds a value the format cannot carry (e.g. a cycle, a bigint). */
  encodeReply(reply: Reply): Encoded;
  /**
   * A transmission from the RPC backend / controllers, as JSON text. The JSON encoder returns it
   * unchanged; binary encoders re-encode it and return undefined when it is not a JSON object
   * with the reply fields' types (anycable-go would fail to unmarshal it).
   */
  encodeTransmission(json: string): Encoded;
  /**
   * A broadcast to subscribers of `identifier`; `dataJson` is the publication's JSON text (see
   * publicationDataJson). Hot path: called once per (stream, identifier, encoder) per broadcast.
   * undefined only when `dataJson` is not JSON or too deeply nested for the format.
   */
  encodeBroadcast(identifier: string, dataJson: string, meta?: BroadcastMeta): Encoded;
}
