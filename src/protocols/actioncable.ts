// Action Cable JSON protocol (actioncable-v1-json and its extended variant): frame <-> command/reply.
// Pure functions: no runtime APIs, no I/O.

export const PROTOCOL_JSON = "actioncable-v1-json";
export const PROTOCOL_EXT_JSON = "actioncable-v1-ext-json";
export const SUPPORTED_PROTOCOLS: readonly string[] = [PROTOCOL_JSON, PROTOCOL_EXT_JSON];

export const DisconnectReason = {
  serverRestart: "server_restart",
  remote: "remote",
  idleTimeout: "idle_timeout",
  noPong: "no_pong",
  tooSlow: "too_slow",
  unauthorized: "unauthorized",
  tokenExpired: "token_expired",
} as const;

export interface ClientCommand {
  command: string;
  identifier: string;
  data?: unknown;
}

export type DecodeResult = { ok: true; command: ClientCommand } | { ok: false; error: string };

/**
 * Decodes a client frame the way Go's json.Unmarshal fills anycable-go's Message struct:
 * anything that is not a JSON object (or null) fails, and so do `command`/`identifier` of a
 * non-string type; unknown keys are ignored.
 */
export function decodeCommand(frame: string): DecodeResult {
  let parsed: unknown;
  try {
    parsed = JSON.parse(frame);
  } catch (e) {
    return { ok: false, error: `invalid JSON: ${(e as Error).message}` };
  }
  if (parsed === null) return { ok: true, command: { command: "", identifier: "" } };
  if (typeof parsed !== "object" || Array.isArray(parsed)) {
    return {
      ok: false,
      error: `cannot decode ${Array.isArray(parsed) ? "array" : typeof parsed} as a command`,
    };
  }
  const obj = parsed as Record<string, unknown>;
  const command = stringField(obj, "command");
  if (command === undefined) return { ok: false, error: "command must be a string" };
  const identifier = stringField(obj, "identifier");
  if (identifier === undefined) return { ok: false, error: "identifier must be a string" };
  const cmd: ClientCommand = { command, identifier };
  if (obj.data !== undefined && obj.data !== null) cmd.data = obj.data;
  return { ok: true, command: cmd };
}

function stringField(obj: Record<string, unknown>, key: string): string | undefined {
  const v = obj[key];
  if (v === undefined || v === null) return "";
  return typeof v === "string" ? v : undefined;
}

/**
 * Picks the sub-protocol to echo from a Sec-WebSocket-Protocol header. Entries are split on ","
 * and trimmed (clients such as Node's ws send "a,b"); unknown entries (including token carriers)
 * are never selected. Returns "" when nothing supported was offered: the upgrade still succeeds.
 */
export function selectProtocol(offered: string | null | undefined): string {
  if (!offered) return "";
  for (const raw of offered.split(",")) {
    const p = raw.trim();
    if (SUPPORTED_PROTOCOLS.includes(p)) return p;
  }
  return "";
}

// --- encoders. Field order and omission follow anycable-go's Reply struct (empty fields omitted).

export function welcomeMessage(sid: string): string {
  return `{"type":"welcome","sid":${JSON.stringify(sid)}}`;
}

export function pingMessage(timestamp: number): string {
  return `{"type":"ping","message":${timestamp}}`;
}

export const PONG_MESSAGE = '{"type":"pong"}';

export function confirmMessage(identifier: string): string {
  return `{"type":"confirm_subscription","identifier":${JSON.stringify(identifier)}}`;
}

export function rejectMessage(identifier: string): string {
  return `{"type":"reject_subscription","identifier":${JSON.stringify(identifier)}}`;
}

/** A disconnect always carries `reconnect`, even when false (clients rely on it). */
export function disconnectMessage(reason: string, reconnect: boolean): string {
  return `{"type":"disconnect","reason":${JSON.stringify(reason)},"reconnect":${reconnect}}`;
}

/**
 * The message a subscriber receives for a broadcast. `data` is the publication's JSON text
 * (already validated by the caller) or, when it is not JSON, sent as a JSON string — exactly as
 * anycable-go falls back. Built once per (stream, identifier) and shared by every subscriber.
 */
export function broadcastMessage(identifier: string, dataJson: string, type?: string): string {
  const typePart = type ? `"type":${JSON.stringify(type)},` : "";
  return `{${typePart}"identifier":${JSON.stringify(identifier)},"message":${dataJson}}`;
}

/** Converts a publication's `data` string into the JSON text embedded as `message`. */
export function publicationDataJson(data: string): string {
  const trimmed = data.trim();
  if (trimmed !== "" && trimmed !== "null") {
    try {
      JSON.parse(trimmed);
      return trimmed;
    } catch {
      // not JSON: fall through and send it as a string, like anycable-go
    }
  }
  return JSON.stringify(data);
}

export type PingPrecision = "s" | "ms" | "ns";

export function pingTimestamp(precision: string, nowMs: number): number {
  switch (precision) {
    case "ms":
      return Math.floor(nowMs);
    case "ns":
      // Millisecond clock scaled up: JS numbers cannot hold a real nanosecond clock exactly.
      return Math.floor(nowMs) * 1_000_000;
    default:
      return Math.floor(nowMs / 1000);
  }
}
