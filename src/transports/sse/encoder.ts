// The Server-Sent Events wire format, as anycable-go's sse/encoder.go writes it: one event per
// reply, `event: <type>` for typed replies (welcome, confirm_subscription, ping, disconnect, ...),
// the payload in `data:` lines (a line break in it starts a new `data:` line, so EventSource
// rejoins it with "\n"), `id: <offset>/<epoch>/<stream>` for messages with a stream position,
// and `retry:` (a year) with a `disconnect` that must not be reconnected. Pure: no runtime APIs.
//
// Four variants, each its own encoder (and hub encode-once group):
// - unwrap (GET requests, e.g. EventSource): a data message carries only its `message` part (a
//   string as its text, anything else as JSON); POST requests get the whole Action Cable JSON;
// - raw (`?raw=1`): typed replies are dropped, only data messages are sent.
import { broadcastMessage, replyFromJson, replyJson } from "../../protocols/actioncable.ts";
import type { BroadcastMeta, DecodeResult, Encoded, Encoder, Frame, Reply } from "../../protocols/encoder.ts";

/** anycable-go's retry for a disconnect without reconnect: a year (ms), so EventSource stays away. */
export const RETRY_NO_RECONNECT_MS = 31_536_000_000;

const utf8 = new TextEncoder();

/** Every line terminator SSE knows (CRLF, CR, LF) starts a new `data:` field. */
const LINE_BREAK = /\r\n|\r|\n/g;

/** The `data:` fields of one event. */
export function dataLines(payload: string): string {
  return `data: ${payload.replace(LINE_BREAK, "\ndata: ")}`;
}

/**
 * An event's fields, without the blank line that ends it. `type` "" is a data message (no
 * `event:`). A field value cannot hold a line break: one in a type or stream name is dropped
 * (the stream name then gets no `id:` at all: an id that cannot be written whole is not written).
 */
export function eventText(
  type: string,
  data: string,
  position?: { offset?: number; epoch?: string; stream_id?: string },
  retryMs?: number,
): string {
  let out = type ? `event: ${type.replace(LINE_BREAK, "")}\n${dataLines(data)}` : dataLines(data);
  if (position?.offset && position.offset > 0 && position.epoch && position.stream_id) {
    const id = `${position.offset}/${position.epoch}/${position.stream_id}`;
    if (!/[\r\n\0]/.test(id)) out += `\nid: ${id}`;
  }
  if (retryMs !== undefined) out += `\nretry: ${retryMs}`;
  return out;
}

export interface SseEncoderOptions {
  /** Send only a data message's `message` (GET requests). */
  unwrap: boolean;
  /** Drop typed replies (`?raw=1`). */
  raw: boolean;
}

export class SseEncoder implements Encoder {
  readonly id: string;
  /** Text, but never the reply JSON itself: the node hands every reply to the encoder. */
  readonly binary = false;
  readonly unwrap: boolean;
  readonly raw: boolean;

  constructor(opts: SseEncoderOptions) {
    this.unwrap = opts.unwrap;
    this.raw = opts.raw;
    this.id = `sse${opts.unwrap ? "" : "-full"}${opts.raw ? "-raw" : ""}`;
  }

  /** SSE clients send nothing over the stream (their commands come with the request). */
  decode(_frame: Frame): DecodeResult {
    return { ok: false, error: "SSE connections carry no client messages" };
  }

  encodeReply(reply: Reply): Encoded {
    const type = reply.type ?? "";
    if (type && this.raw) return null; // raw mode: nothing to send
    let data: string;
    try {
      data = type === "" && this.unwrap ? unwrapped(reply.message) : replyJson(reply);
    } catch {
      return undefined; // a bigint or a cycle in `message`
    }
    const retry = type === "disconnect" && reply.reconnect !== true ? RETRY_NO_RECONNECT_MS : undefined;
    return frame(eventText(type, data, reply, retry));
  }

  /** Transmissions are read into a Reply (as anycable-go unmarshals them) and encoded as one. */
  encodeTransmission(json: string): Encoded {
    const reply = replyFromJson(json);
    if (typeof reply === "string") return undefined;
    return this.encodeReply(reply);
  }

  encodeBroadcast(identifier: string, dataJson: string, meta?: BroadcastMeta): Encoded {
    const type = meta?.type ?? "";
    if (type && this.raw) return null; // raw mode: nothing to send
    let data: string;
    if (type === "" && this.unwrap) {
      data = dataJson;
      // a JSON string is sent as its text; any other value as the JSON it was published as
      if (dataJson.charCodeAt(0) === 34 /* " */) {
        try {
          data = JSON.parse(dataJson) as string;
        } catch {
          return undefined;
        }
      }
    } else {
      data = broadcastMessage(identifier, dataJson, type || undefined, meta);
    }
    return frame(eventText(type, data, meta));
  }
}

function unwrapped(message: unknown): string {
  if (typeof message === "string") return message;
  // Go marshals a nil message as null
  return JSON.stringify(message ?? null);
}

/** One event, terminated by its blank line, as the bytes every subscriber is handed. */
function frame(event: string): Uint8Array {
  return utf8.encode(`${event}\n\n`);
}

const ENCODERS = new Map<string, SseEncoder>();

/** The shared encoder of a variant (stateless; one per variant, so the hub encodes once per variant). */
export function sseEncoder(opts: SseEncoderOptions): SseEncoder {
  const key = `${opts.unwrap}/${opts.raw}`;
  let enc = ENCODERS.get(key);
  if (!enc) {
    enc = new SseEncoder(opts);
    ENCODERS.set(key, enc);
  }
  return enc;
}
