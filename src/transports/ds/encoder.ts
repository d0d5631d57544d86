// The Durable Streams wire format (anycable-go's ds/encoder.go, ds/poll.go, ds/sse.go). Items are
// the publications' data as JSON; a response body or an SSE `data` event carries a JSON array of
// them; an SSE `control` event tells the next offset and cursor. Pure.
//
// The node hands live messages to a DS session through one shared encoder (encoded once per
// broadcast for every DS client of the stream): a frame is the message's position and its item,
// `<offset>::<epoch>\n<item>`, which each connection turns into its own answer (a long-poll body
// with headers, or SSE events with that client's cursor). Everything but stream messages with a
// position (welcome, confirmations, pings, presence, messages without a broker offset) has no
// form here and is skipped, as anycable-go's encoders return no frame for them.
import type { StreamMessage } from "../../broadcast/publication.ts";
import type { BroadcastMeta, DecodeResult, Encoded, Encoder, Frame } from "../../protocols/encoder.ts";
import { encodeOffset } from "./params.ts";

export class DsEncoder implements Encoder {
  readonly id = "ds";
  readonly binary = false;

  decode(_frame: Frame): DecodeResult {
    return { ok: false, error: "Durable Streams connections carry no client messages" };
  }

  encodeReply(): Encoded {
    return null;
  }

  encodeTransmission(): Encoded {
    return null;
  }

  encodeBroadcast(_identifier: string, dataJson: string, meta?: BroadcastMeta): Encoded {
    if (meta?.type) return null;
    if (!meta?.offset || !meta.epoch) return null;
    return `${encodeOffset(meta.offset, meta.epoch)}\n${dataJson}`;
  }
}

export const DS_ENCODER = new DsEncoder();

export interface LiveItem {
  offset: number;
  epoch: string;
  /** The opaque offset token. */
  token: string;
  item: string;
}

const utf8 = new TextDecoder();

/** Reads a frame of DS_ENCODER back; undefined for anything else. */
export function liveItem(frame: Frame): LiveItem | undefined {
  const text = typeof frame === "string" ? frame : utf8.decode(frame);
  const nl = text.indexOf("\n");
  if (nl < 0) return undefined;
  const token = text.slice(0, nl);
  const sep = token.indexOf("::");
  if (sep < 0) return undefined;
  const offset = Number(token.slice(0, sep));
  if (!Number.isSafeInteger(offset)) return undefined;
  return { offset, epoch: token.slice(sep + 2), token, item: text.slice(nl + 1) };
}

/** A JSON array of items. */
export function jsonBatch(items: readonly string[]): string {
  return `[${items.join(",")}]`;
}

/** The items of history messages (their data as the JSON it was published as). */
export function historyItems(messages: readonly StreamMessage[]): string[] {
  return messages.map((m) => m.dataJson);
}

/**
 * anycable-go writes `data:` without a space. A line break in JSON text is only whitespace (in a
 * string it is escaped), but it would end the `data:` field: it becomes a space (anycable-go
 * writes a pretty-printed publication as it came and breaks the event).
 */
export function sseDataEvent(items: readonly string[]): string {
  return `event: data\ndata:${jsonBatch(items).replace(/\r\n|\r|\n/g, " ")}\n\n`;
}

export function sseControlEvent(offset: string, cursor: string, upToDate: boolean): string {
  const control: Record<string, unknown> = { streamNextOffset: offset };
  if (cursor) control.streamCursor = cursor;
  if (upToDate) control.upToDate = true;
  return `event: control\ndata:${JSON.stringify(control)}\n\n`;
}

/**
 * The ETag of a catch-up answer: the positions of its first message and of the stream's tail (the
 * body is the messages between them, which never change within an epoch). Only the characters an
 * entity tag may hold.
 */
export function catchUpEtag(history: readonly StreamMessage[], tail: string): string {
  const first = history.length > 0 ? encodeOffset(history[0]!.offset ?? 0, history[0]!.epoch ?? "") : "none";
  return `"${`${first}-${tail}`.replace(/[^\x21\x23-\x7e]/g, "_")}"`;
}

/** If-None-Match (RFC 9110 §13.1.2): `*` or a list of tags, weakly compared. */
export function etagMatches(header: string | null, etag: string): boolean {
  if (header === null) return false;
  const tag = etag.replace(/^W\//, "");
  return header.split(",").some((t) => {
    const v = t.trim();
    return v === "*" || v.replace(/^W\//, "") === tag;
  });
}
