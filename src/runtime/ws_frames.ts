// RFC 6455 framing for the server side of a WebSocket, for the Deno listener (deno_http.ts), which
// runs WebSockets on the sockets of node:http instead of Deno.upgradeWebSocket: Deno's own
// WebSocket cannot be cut while writes are pending, nor give its socket a deadline.
// The one extension is permessage-deflate (ws_deflate.ts), when negotiated: RSV1 marks the first
// frame of a compressed message; every other RSV bit must be 0.
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import { deflatePayload, inflatePayload } from "./ws_deflate.ts";

export const Opcode = { continuation: 0, text: 1, binary: 2, close: 8, ping: 9, pong: 10 } as const;

/** Close codes the parser ends a connection with. */
export const WsClose = {
  normal: 1000,
  noStatus: 1005,
  abnormal: 1006,
  protocolError: 1002,
  invalidPayload: 1007,
  messageTooBig: 1009,
} as const;

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

export function acceptKey(key: string): string {
  return createHash("sha1")
    .update(key + GUID)
    .digest("base64");
}

/** What a chunk of client bytes turned into. */
export type WsEvent =
  | { kind: "text"; data: string; size: number }
  | { kind: "binary"; data: Uint8Array; size: number }
  | { kind: "ping"; payload: Buffer }
  | { kind: "pong" }
  | { kind: "close"; code: number; reason: string }
  /** The client broke the protocol: close with this code, read nothing more. */
  | { kind: "fail"; code: number; reason: string };

const utf8 = new TextDecoder("utf-8", { fatal: true });
const EMPTY = Buffer.alloc(0);

/** Validity of a close code sent by a client (RFC 6455 7.4). */
function validCloseCode(code: number): boolean {
  if (code >= 3000 && code <= 4999) return true;
  return code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006;
}

/**
 * Incremental parser of client frames: masked, possibly fragmented, control frames in between.
 * Messages above `maxMessageSize` fail with 1009 as soon as the header announces them.
 */
export class FrameParser {
  private chunks: Buffer[] = [];
  /** Index of the first unconsumed chunk. */
  private start = 0;
  private buffered = 0;
  private fragments: Buffer[] = [];
  private fragmentsSize = 0;
  private fragmentOpcode = -1;
  /** The message being assembled had RSV1 on its first frame: inflate it once complete. */
  private compressed = false;
  private failed = false;

  constructor(
    private readonly maxMessageSize: number,
    /** permessage-deflate was negotiated: RSV1 is allowed on a message's first frame. */
    private readonly deflate = false,
  ) {}

  /** Parses what `chunk` completes. The chunk is consumed: payloads are unmasked in place. */
  push(chunk: Buffer, out: WsEvent[]): void {
    if (this.failed) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    while (!this.failed && this.parseOne(out)) {}
  }

  /** Parses one complete frame if buffered; false when more bytes are needed. */
  private parseOne(out: WsEvent[]): boolean {
    if (this.buffered < 2) return false;
    const head = this.peek(Math.min(this.buffered, 14));
    const b0 = head[0]!;
    const b1 = head[1]!;
    const fin = (b0 & 0x80) !== 0;
    const opcode = b0 & 0x0f;
    const rsv = b0 & 0x70;
    const rsv1 = rsv === 0x40 && this.deflate && (opcode === Opcode.text || opcode === Opcode.binary);
    if (rsv !== 0 && !rsv1) return this.fail(out, WsClose.protocolError, "reserved bits set");
    if ((b1 & 0x80) === 0) return this.fail(out, WsClose.protocolError, "unmasked client frame");
    let len = b1 & 0x7f;
    let offset = 2;
    if (len === 126) {
      if (head.length < 4) return false;
      len = head.readUInt16BE(2);
      offset = 4;
    } else if (len === 127) {
      if (head.length < 10) return false;
      const high = head.readUInt32BE(2);
      if (high > 0x1fffff) return this.fail(out, WsClose.messageTooBig, "frame too big");
      len = high * 2 ** 32 + head.readUInt32BE(6);
      offset = 10;
    }
    const control = opcode >= 8;
    if (control) {
      if (!fin || len > 125) return this.fail(out, WsClose.protocolError, "invalid control frame");
      if (opcode > Opcode.pong) return this.fail(out, WsClose.protocolError, "unknown opcode");
    } else {
      if (opcode > Opcode.binary) return this.fail(out, WsClose.protocolError, "unknown opcode");
      if (opcode === Opcode.continuation && this.fragmentOpcode < 0)
        return this.fail(out, WsClose.protocolError, "continuation without a message");
      if (opcode !== Opcode.continuation && this.fragmentOpcode >= 0)
        return this.fail(out, WsClose.protocolError, "message interleaved with a fragmented one");
      const total = this.fragmentsSize + len;
      if (this.maxMessageSize > 0 && total > this.maxMessageSize)
        return this.fail(out, WsClose.messageTooBig, "message too big");
    }
    if (this.buffered < offset + 4 + len) return false;
    this.skip(offset);
    const mask = this.take(4);
    const payload = this.take(len);
    for (let i = 0; i < payload.length; i++) payload[i]! ^= mask[i & 3]!;
    if (control) this.control(opcode, payload, out);
    else {
      if (opcode !== Opcode.continuation) this.compressed = rsv1;
      this.data(opcode, fin, payload, out);
    }
    return true;
  }

  private data(opcode: number, fin: boolean, payload: Buffer, out: WsEvent[]): void {
    if (!fin) {
      if (opcode !== Opcode.continuation) this.fragmentOpcode = opcode;
      this.fragments.push(payload);
      this.fragmentsSize += payload.length;
      return;
    }
    let message = payload;
    let kind = opcode;
    if (opcode === Opcode.continuation) {
      this.fragments.push(payload);
      message = Buffer.concat(this.fragments, this.fragmentsSize + payload.length);
      kind = this.fragmentOpcode;
      this.fragments = [];
      this.fragmentsSize = 0;
      this.fragmentOpcode = -1;
    }
    if (this.compressed) {
      this.compressed = false;
      const inflated = inflatePayload(message, this.maxMessageSize);
      if (!inflated.ok) {
        this.fail(out, inflated.tooBig ? WsClose.messageTooBig : WsClose.invalidPayload, inflated.reason);
        return;
      }
      message = inflated.data;
    }
    if (kind === Opcode.text) {
      let text: string;
      try {
        text = utf8.decode(message);
      } catch {
        // RFC 6455 8.1: a text message that is not UTF-8 fails the connection with 1007 (as Bun does)
        this.fail(out, WsClose.invalidPayload, "invalid UTF-8 in a text message");
        return;
      }
      out.push({ kind: "text", data: text, size: message.length });
    } else {
      out.push({
        kind: "binary",
        data: new Uint8Array(message.buffer, message.byteOffset, message.length),
        size: message.length,
      });
    }
  }

  private control(opcode: number, payload: Buffer, out: WsEvent[]): void {
    if (opcode === Opcode.ping) out.push({ kind: "ping", payload });
    else if (opcode === Opcode.pong) out.push({ kind: "pong" });
    else {
      // close
      if (payload.length === 0) {
        out.push({ kind: "close", code: WsClose.noStatus, reason: "" });
        return;
      }
      if (payload.length === 1) {
        this.fail(out, WsClose.protocolError, "invalid close frame");
        return;
      }
      const code = payload.readUInt16BE(0);
      if (!validCloseCode(code)) {
        this.fail(out, WsClose.protocolError, "invalid close code");
        return;
      }
      let reason: string;
      try {
        reason = utf8.decode(payload.subarray(2));
      } catch {
        this.fail(out, WsClose.invalidPayload, "invalid UTF-8 in a close reason");
        return;
      }
      out.push({ kind: "close", code, reason });
    }
  }

  private fail(out: WsEvent[], code: number, reason: string): boolean {
    this.failed = true;
    this.chunks = [];
    this.start = 0;
    this.buffered = 0;
    this.fragments = [];
    out.push({ kind: "fail", code, reason });
    return false;
  }

  /** The first `n` (at most 14) buffered bytes; a copy only when they span chunks. */
  private peek(n: number): Buffer {
    const first = this.chunks[this.start]!;
    if (first.length >= n) return first;
    const parts: Buffer[] = [];
    let got = 0;
    for (let i = this.start; i < this.chunks.length && got < n; i++) {
      parts.push(this.chunks[i]!);
      got += this.chunks[i]!.length;
    }
    return Buffer.concat(parts, got).subarray(0, n);
  }

  private skip(n: number): void {
    this.take(n);
  }

  /**
   * Removes and returns the first `n` buffered bytes (a view into a chunk, or a copy when they
   * span chunks). Chunks are consumed by index, so a message trickled in tiny packets costs linear
   * time, not quadratic.
   */
  private take(n: number): Buffer {
    if (n === 0) return EMPTY;
    this.buffered -= n;
    const chunks = this.chunks;
    const first = chunks[this.start]!;
    let out: Buffer;
    if (first.length === n) {
      out = first;
      this.start++;
    } else if (first.length > n) {
      chunks[this.start] = first.subarray(n);
      out = first.subarray(0, n);
    } else {
      out = Buffer.allocUnsafe(n);
      let at = 0;
      while (at < n) {
        const c = chunks[this.start]!;
        const need = n - at;
        if (c.length <= need) {
          c.copy(out, at);
          at += c.length;
          this.start++;
        } else {
          c.copy(out, at, 0, need);
          chunks[this.start] = c.subarray(need);
          at = n;
        }
      }
    }
    if (this.start === chunks.length) {
      chunks.length = 0;
      this.start = 0;
    } else if (this.start > 64 && this.start * 2 > chunks.length) {
      chunks.splice(0, this.start);
      this.start = 0;
    }
    return out;
  }
}

/** RSV1: the message is compressed (permessage-deflate). */
const RSV1 = 0x40;

function header(opcode: number, len: number, flags = 0): Buffer {
  if (len < 126) {
    const h = Buffer.allocUnsafe(2);
    h[0] = 0x80 | flags | opcode;
    h[1] = len;
    return h;
  }
  if (len < 65536) {
    const h = Buffer.allocUnsafe(4);
    h[0] = 0x80 | flags | opcode;
    h[1] = 126;
    h.writeUInt16BE(len, 2);
    return h;
  }
  const h = Buffer.allocUnsafe(10);
  h[0] = 0x80 | flags | opcode;
  h[1] = 127;
  h.writeUInt32BE(Math.floor(len / 2 ** 32), 2);
  h.writeUInt32BE(len >>> 0, 6);
  return h;
}

// A broadcast sends the same string to every subscriber: frame it once.
let lastText: string | undefined;
let lastTextFrame: Buffer | undefined;

/** One unmasked, unfragmented server frame. */
export function encodeText(text: string): Buffer {
  if (text === lastText && lastTextFrame) return lastTextFrame;
  const len = Buffer.byteLength(text);
  const h = header(Opcode.text, len);
  const frame = Buffer.allocUnsafe(h.length + len);
  h.copy(frame, 0);
  frame.write(text, h.length, "utf8");
  lastText = text;
  lastTextFrame = frame;
  return frame;
}

// The same for compressed frames: a broadcast is deflated once, whoever it goes to.
let lastDeflatedText: string | undefined;
let lastDeflatedFrame: Buffer | undefined;

/** One compressed (RSV1) text frame. */
export function encodeDeflatedText(text: string): Buffer {
  if (text === lastDeflatedText && lastDeflatedFrame) return lastDeflatedFrame;
  const frame = deflatedFrame(Opcode.text, Buffer.from(text, "utf8"));
  lastDeflatedText = text;
  lastDeflatedFrame = frame;
  return frame;
}

/** One compressed (RSV1) binary frame. */
export function encodeDeflatedBinary(data: Uint8Array): Buffer {
  return deflatedFrame(Opcode.binary, data);
}

function deflatedFrame(opcode: number, payload: Uint8Array): Buffer {
  const body = deflatePayload(payload);
  const h = header(opcode, body.length, RSV1);
  const frame = Buffer.allocUnsafe(h.length + body.length);
  h.copy(frame, 0);
  body.copy(frame, h.length);
  return frame;
}

export function encodeBinary(data: Uint8Array): Buffer {
  const h = header(Opcode.binary, data.byteLength);
  const frame = Buffer.allocUnsafe(h.length + data.byteLength);
  h.copy(frame, 0);
  frame.set(data, h.length);
  return frame;
}

export function encodeControl(opcode: number, payload: Uint8Array = new Uint8Array(0)): Buffer {
  const h = header(opcode, payload.byteLength);
  return Buffer.concat([h, payload]);
}

/** A close frame; the reason is cut to fit a control frame (123 bytes). */
export function encodeClose(code: number, reason = ""): Buffer {
  if (code === WsClose.noStatus || code === WsClose.abnormal) return encodeControl(Opcode.close);
  let text = reason;
  while (Buffer.byteLength(text) > 123) text = text.slice(0, -1);
  const r = Buffer.from(text);
  const payload = Buffer.allocUnsafe(2 + r.length);
  payload.writeUInt16BE(code, 0);
  r.copy(payload, 2);
  return encodeControl(Opcode.close, payload);
}
