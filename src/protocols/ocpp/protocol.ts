// OCPP 1.6J on the wire (OCPP-J: JSON arrays over WebSocket, sub-protocol `ocpp1.6`): a station's
// Call / CallResult / CallError frames become internal commands (the executor turns them into node
// commands), and what the application sends the station (transmissions and broadcasts of the OCPP
// channel: `{command, id, payload}`) becomes CallResult (`Ack`), CallError (`Error`) or Call frames
// (any other command: a remote command, with a fresh unique message id when it has none).
// Pure: no runtime APIs besides crypto.randomUUID, no I/O, nothing throws.
//
// Frames (OCPP-J 1.6, section 4):
//   Call       [2, "<uniqueId>", "<Action>", {payload}]
//   CallResult [3, "<uniqueId>", {payload}]
//   CallError  [4, "<uniqueId>", "<errorCode>", "<errorDescription>", {errorDetails}]
//
// One encoder per session: it remembers the ids of the Calls it framed for its station (bounded),
// so the station's answers can be told from answers to nothing.
import type { BroadcastMeta, DecodeResult, Encoded, Encoder, Frame, Reply } from "../encoder.ts";

/** The WebSocket sub-protocol of OCPP 1.6J (and the internal name its sessions carry). */
export const OCPP_PROTOCOL = "ocpp1.6";

export const MessageType = { call: 2, callResult: 3, callError: 4 } as const;

/** OCPP-J 1.6 error codes (section 4.2.3). */
export type ErrorCode =
  | "NotImplemented"
  | "NotSupported"
  | "InternalError"
  | "ProtocolError"
  | "SecurityError"
  | "FormationViolation"
  | "PropertyConstraintViolation"
  | "OccurenceConstraintViolation"
  | "TypeConstraintViolation"
  | "GenericError";

const ERROR_CODES: ReadonlySet<string> = new Set<ErrorCode>([
  "NotImplemented",
  "NotSupported",
  "InternalError",
  "ProtocolError",
  "SecurityError",
  "FormationViolation",
  "PropertyConstraintViolation",
  "OccurenceConstraintViolation",
  "TypeConstraintViolation",
  "GenericError",
]);

/** OCPP-J's bound on a unique message id. */
export const MAX_ID_LENGTH = 36;
/** The id a CallError about a frame whose own id cannot be read carries (OCPP-J 2.0's convention). */
export const UNKNOWN_ID = "-1";
/** Calls to one station awaiting its answer that the encoder remembers (the oldest is forgotten first). */
export const MAX_PENDING_CALLS = 128;

/** Actions a charge point initiates in OCPP 1.6 (the ones the central system answers). */
export const STATION_ACTIONS: ReadonlySet<string> = new Set([
  "Authorize",
  "BootNotification",
  "DataTransfer",
  "DiagnosticsStatusNotification",
  "FirmwareStatusNotification",
  "Heartbeat",
  "MeterValues",
  "StartTransaction",
  "StatusNotification",
  "StopTransaction",
]);

/** Actions the central system initiates in OCPP 1.6: known, but not ones a station may call. */
export const CENTRAL_ACTIONS: ReadonlySet<string> = new Set([
  "CancelReservation",
  "ChangeAvailability",
  "ChangeConfiguration",
  "ClearCache",
  "ClearChargingProfile",
  "GetCompositeSchedule",
  "GetConfiguration",
  "GetDiagnostics",
  "GetLocalListVersion",
  "RemoteStartTransaction",
  "RemoteStopTransaction",
  "ReserveNow",
  "Reset",
  "SendLocalList",
  "SetChargingProfile",
  "TriggerMessage",
  "UnlockConnector",
  "UpdateFirmware",
]);

// Internal commands the decoder produces (never node command names).
export const CALL_COMMAND = "ocpp:call";
export const RESULT_COMMAND = "ocpp:result";
export const ERROR_COMMAND = "ocpp:error";
/** A frame that breaks OCPP-J: `data` is an InvalidFrame, answered with a CallError. */
export const INVALID_COMMAND = "ocpp:invalid";

export interface OcppCall {
  id: string;
  action: string;
  payload: Record<string, unknown>;
}

export interface OcppResult {
  id: string;
  payload: Record<string, unknown>;
}

export interface OcppError {
  id: string;
  code: string;
  description: string;
  details: Record<string, unknown>;
}

export interface InvalidFrame {
  /** The frame's id when it could be read, else UNKNOWN_ID. */
  id: string;
  code: ErrorCode;
  description: string;
  /** The frame was a CallError: it is not answered (no error ping-pong between two peers). */
  silent: boolean;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function ok(command: string, data: unknown): DecodeResult {
  return { ok: true, command: { command, identifier: "", data } };
}

function invalid(id: string, code: ErrorCode, description: string, silent = false): DecodeResult {
  const data: InvalidFrame = { id, code, description, silent };
  return ok(INVALID_COMMAND, data);
}

/** A station's frame -> an internal command (INVALID_COMMAND when it breaks OCPP-J). */
export function decodeFrame(text: string): DecodeResult {
  let msg: unknown;
  try {
    msg = JSON.parse(text);
  } catch {
    return invalid(UNKNOWN_ID, "FormationViolation", "Message is not valid JSON");
  }
  if (!Array.isArray(msg)) return invalid(UNKNOWN_ID, "FormationViolation", "Message is not a JSON array");
  const [type, rawId] = msg;
  const readableId = typeof rawId === "string" && rawId !== "" && rawId.length <= MAX_ID_LENGTH;
  const id = readableId ? rawId : UNKNOWN_ID;
  if (type !== MessageType.call && type !== MessageType.callResult && type !== MessageType.callError) {
    return invalid(id, "FormationViolation", "Unknown message type id");
  }
  const silent = type === MessageType.callError;
  if (msg.length < 2) return invalid(id, "ProtocolError", "Message has no unique id", silent);
  if (typeof rawId !== "string" || rawId === "")
    return invalid(id, "FormationViolation", "Unique id must be a non-empty string", silent);
  if (rawId.length > MAX_ID_LENGTH)
    return invalid(id, "FormationViolation", `Unique id is longer than ${MAX_ID_LENGTH} characters`, silent);
  switch (type) {
    case MessageType.call: {
      if (msg.length < 4) return invalid(id, "ProtocolError", "Call must have 4 elements");
      if (msg.length > 4) return invalid(id, "FormationViolation", "Call must have 4 elements");
      const [, , action, payload] = msg;
      if (typeof action !== "string" || action === "")
        return invalid(id, "FormationViolation", "Action must be a non-empty string");
      if (!isObject(payload)) return invalid(id, "FormationViolation", "Payload must be a JSON object");
      const call: OcppCall = { id, action, payload };
      return ok(CALL_COMMAND, call);
    }
    case MessageType.callResult: {
      if (msg.length < 3) return invalid(id, "ProtocolError", "CallResult must have 3 elements");
      if (msg.length > 3) return invalid(id, "FormationViolation", "CallResult must have 3 elements");
      const payload = msg[2];
      if (!isObject(payload)) return invalid(id, "FormationViolation", "Payload must be a JSON object");
      const result: OcppResult = { id, payload };
      return ok(RESULT_COMMAND, result);
    }
    default: {
      if (msg.length < 5) return invalid(id, "ProtocolError", "CallError must have 5 elements", true);
      if (msg.length > 5) return invalid(id, "FormationViolation", "CallError must have 5 elements", true);
      const [, , code, description, details] = msg;
      if (typeof code !== "string" || typeof description !== "string" || !isObject(details))
        return invalid(
          id,
          "FormationViolation",
          "CallError must carry a code, a description and a details object",
          true,
        );
      const error: OcppError = { id, code, description, details };
      return ok(ERROR_COMMAND, error);
    }
  }
}

// --- frames to the station

export function callFrame(id: string, action: string, payload: unknown): string {
  return `[2,${JSON.stringify(id)},${JSON.stringify(action)},${JSON.stringify(payload ?? {})}]`;
}

export function callResultFrame(id: string, payload: unknown): string {
  return `[3,${JSON.stringify(id)},${JSON.stringify(payload ?? {})}]`;
}

export function callErrorFrame(id: string, code: string, description: string, details: unknown = {}): string {
  return `[4,${JSON.stringify(id)},${JSON.stringify(code)},${JSON.stringify(description)},${JSON.stringify(details ?? {})}]`;
}

/** `BootNotification` -> `boot_notification` (the channel's granular action names). */
export function snakeCase(action: string): string {
  return action
    .replace(/([a-z0-9])([A-Z])/g, "$1_$2")
    .replace(/([A-Z]+)([A-Z][a-z])/g, "$1_$2")
    .toLowerCase();
}

/** OCPP's dateTime: UTC, ISO 8601. */
export function currentTime(now: number): string {
  return new Date(now).toISOString();
}

/** What the application sends the station: the OCPP channel's `{command, id, payload}` messages. */
export interface ChannelMessage {
  command: string;
  id: string;
  payload: unknown;
  /** `Error`'s code and description. */
  code?: string;
  message?: string;
}

/** The channel's message in a transmission's / broadcast's `message`, if it is one. */
export function channelMessage(v: unknown): ChannelMessage | undefined {
  if (!isObject(v) || typeof v.command !== "string" || v.command === "") return undefined;
  const id = v.id === undefined || v.id === null ? "" : v.id;
  if (typeof id !== "string") return undefined;
  const out: ChannelMessage = { command: v.command, id, payload: v.payload ?? {} };
  if (typeof v.code === "string") out.code = v.code;
  if (typeof v.message === "string") out.message = v.message;
  return out;
}

/** The id of an answer (`Ack` / `Error`) in a transmission, whatever its identifier. */
export function answeredId(transmission: string): string | undefined {
  let v: unknown;
  try {
    v = JSON.parse(transmission);
  } catch {
    return undefined;
  }
  if (!isObject(v)) return undefined;
  const m = channelMessage(v.message);
  return m && (m.command === "Ack" || m.command === "Error") && m.id !== "" ? m.id : undefined;
}

function parse(text: string): { ok: true; value: unknown } | { ok: false } {
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return { ok: false };
  }
}

export interface OcppEncoderOptions {
  /** A fresh unique message id (default: crypto.randomUUID, 36 characters). */
  newId?: () => string;
  maxPending?: number;
}

/**
 * One station's encoder. Its `id` is its own (an encode-once group of one session): every Call it
 * frames gets an id this encoder remembers, so it must not share frames with another station's.
 */
export class OcppEncoder implements Encoder {
  readonly binary = false;
  /** Calls sent to the station, awaiting its CallResult / CallError: id -> action (insertion order). */
  private readonly pending = new Map<string, string>();
  private readonly newId: () => string;
  private readonly maxPending: number;

  constructor(
    readonly id: string,
    opts: OcppEncoderOptions = {},
  ) {
    this.newId = opts.newId ?? (() => crypto.randomUUID());
    this.maxPending = opts.maxPending ?? MAX_PENDING_CALLS;
  }

  decode(frame: Frame): DecodeResult {
    return decodeFrame(typeof frame === "string" ? frame : new TextDecoder().decode(frame));
  }

  /** The station answered Call `id`: its action, once (undefined for an id it was never sent). */
  settle(id: string): string | undefined {
    const action = this.pending.get(id);
    if (action !== undefined) this.pending.delete(id);
    return action;
  }

  /** Calls awaiting the station's answer. */
  get pendingCalls(): number {
    return this.pending.size;
  }

  encodeReply(reply: Reply): Encoded {
    // welcome, pings, confirmations, disconnects: OCPP has no frame for them
    if (reply.type !== undefined) return null;
    const m = channelMessage(reply.message);
    return m ? this.frame(m) : null;
  }

  encodeTransmission(json: string): Encoded {
    const parsed = parse(json);
    if (!parsed.ok || !isObject(parsed.value)) return undefined;
    return this.encodeReply(parsed.value as Reply);
  }

  encodeBroadcast(_identifier: string, dataJson: string, meta?: BroadcastMeta): Encoded {
    if (meta?.type !== undefined) return null;
    const parsed = parse(dataJson);
    if (!parsed.ok) return undefined;
    const m = channelMessage(parsed.value);
    return m ? this.frame(m) : null;
  }

  private frame(m: ChannelMessage): Encoded {
    try {
      if (m.command === "Ack") return m.id === "" ? null : callResultFrame(m.id, m.payload);
      if (m.command === "Error") {
        if (m.id === "") return null;
        const code = m.code !== undefined && ERROR_CODES.has(m.code) ? m.code : "GenericError";
        return callErrorFrame(m.id, code, m.message ?? "", m.payload);
      }
      const id = m.id !== "" ? m.id : this.newId();
      const frame = callFrame(id, m.command, m.payload);
      this.remember(id, m.command);
      return frame;
    } catch {
      // a payload JSON cannot carry (a bigint, a cycle): counted as a failed message
      return undefined;
    }
  }

  private remember(id: string, action: string): void {
    this.pending.delete(id);
    this.pending.set(id, action);
    if (this.pending.size > this.maxPending) {
      const oldest = this.pending.keys().next().value;
      if (oldest !== undefined) this.pending.delete(oldest);
    }
  }
}

/** The shared encoder the registry knows the protocol by (sessions get their own: newOcppEncoder). */
export const ocppEncoder: OcppEncoder = new OcppEncoder(OCPP_PROTOCOL);

/**
 * Sub-protocol negotiation: `ocpp1.6` when the station offers it (entries split on "," and
 * trimmed); `offered: false` when it offered others only (OCPP-J: complete the handshake without a
 * sub-protocol, then close); a station that offers none is served.
 */
export function selectOcppProtocol(offered: string | null): { echo: string; refused: boolean } {
  const entries = (offered ?? "")
    .split(",")
    .map((e) => e.trim())
    .filter((e) => e !== "");
  if (entries.includes(OCPP_PROTOCOL)) return { echo: OCPP_PROTOCOL, refused: false };
  return { echo: "", refused: entries.length > 0 };
}
