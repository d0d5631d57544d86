// Parses what the application publishes (HTTP body, later Redis/NATS payloads) into values the
// node applies. Everything in a body is validated before anything is applied.
import { publicationDataJson } from "../protocols/actioncable.ts";

export interface StreamPublication {
  stream: string;
  dataJson: string;
  excludeSocket?: string;
  broadcastType?: string;
  /** Delivered but never stored in history (anycable-go's meta.transient; presence events). */
  transient?: boolean;
}

/** A publication once the broker has seen it: offsets and epoch when the broker keeps history. */
export interface StreamMessage extends StreamPublication {
  offset?: number;
  epoch?: string;
}

/** A command from the application to the nodes (anycable-go's RemoteCommandMessage). */
export interface RemoteDisconnect {
  command: "disconnect";
  identifier: string;
  reconnect: boolean;
}

export type RemoteCommand = RemoteDisconnect;

export type ParsedPublication =
  | { kind: "broadcast"; publications: StreamPublication[] }
  | { kind: "command"; command: RemoteCommand };

export type ParseResult = { ok: true; value: ParsedPublication } | { ok: false; error: string };

function fail(error: string): ParseResult {
  return { ok: false, error };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function parseStreamMessage(raw: unknown, where: string): StreamPublication | string {
  if (!isObject(raw)) return `${where}: expected an object with "stream" and "data"`;
  if (typeof raw.stream !== "string" || raw.stream === "")
    return `${where}: "stream" must be a non-empty string`;
  if (raw.data !== undefined && typeof raw.data !== "string") {
    return `${where}: "data" must be a string (JSON-encode the message)`;
  }
  const pub: StreamPublication = {
    stream: raw.stream,
    dataJson: publicationDataJson((raw.data as string) ?? ""),
  };
  if (raw.meta !== undefined && raw.meta !== null) {
    if (!isObject(raw.meta)) return `${where}: "meta" must be an object`;
    const { exclude_socket: exclude, broadcast_type: type, transient } = raw.meta;
    if (exclude !== undefined && typeof exclude !== "string")
      return `${where}: "meta.exclude_socket" must be a string`;
    if (type !== undefined && typeof type !== "string")
      return `${where}: "meta.broadcast_type" must be a string`;
    if (transient !== undefined && typeof transient !== "boolean")
      return `${where}: "meta.transient" must be a boolean`;
    if (exclude) pub.excludeSocket = exclude;
    if (transient) pub.transient = true;
    if (type) pub.broadcastType = type;
  }
  return pub;
}

export function parsePublication(body: string): ParseResult {
  let raw: unknown;
  try {
    raw = JSON.parse(body);
  } catch (e) {
    return fail(`body is not valid JSON: ${(e as Error).message}`);
  }
  if (Array.isArray(raw)) {
    if (raw.length === 0) return fail("batch is empty");
    const publications: StreamPublication[] = [];
    for (let i = 0; i < raw.length; i++) {
      const pub = parseStreamMessage(raw[i], `batch[${i}]`);
      if (typeof pub === "string") return fail(pub);
      publications.push(pub);
    }
    return { ok: true, value: { kind: "broadcast", publications } };
  }
  if (!isObject(raw)) return fail("body must be a JSON object or an array of objects");
  if (raw.command !== undefined) {
    if (raw.command !== "disconnect") return fail(`unknown remote command: ${JSON.stringify(raw.command)}`);
    const payload = raw.payload;
    if (!isObject(payload) || typeof payload.identifier !== "string") {
      return fail('remote disconnect needs "payload": {"identifier": string, "reconnect": boolean}');
    }
    if (payload.reconnect !== undefined && typeof payload.reconnect !== "boolean") {
      return fail('"payload.reconnect" must be a boolean');
    }
    return {
      ok: true,
      value: {
        kind: "command",
        command: {
          command: "disconnect",
          identifier: payload.identifier,
          reconnect: payload.reconnect === true,
        },
      },
    };
  }
  const pub = parseStreamMessage(raw, "publication");
  if (typeof pub === "string") return fail(pub);
  return { ok: true, value: { kind: "broadcast", publications: [pub] } };
}
