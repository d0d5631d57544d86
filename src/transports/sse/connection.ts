// One SSE response as the node's ClientSocket: frames (whole events, encoded by the session's
// SseEncoder) are enqueued on a web-standard ReadableStream that both Bun.serve and Deno.serve
// (and the node:http listener) stream out. Runtime-free.
//
// The stream's queue is the send buffer. The runtime pulls from it only as fast as it can write to
// the client, so the queued bytes are the client's backlog, judged by the node's slow-client rules
// like a WebSocket's (--ws_max_pending_size, --ws_write_timeout). Until the request is answered
// (authentication and subscriptions decide its status) frames only wait in the queue, as in
// anycable-go's connection backlog, and count as written.
import type { Session } from "../../node/session.ts";
import { type ClientSocket, SOCKET_CLOSING } from "../../node/socket.ts";
import type { Frame } from "../../protocols/encoder.ts";
import { RUNTIME_BACKLOG_LIMIT } from "../../runtime/types.ts";

const utf8 = new TextEncoder();

/** The queue is counted in bytes, and nothing is held beyond what was enqueued (no high-water mark). */
const STRATEGY: QueuingStrategy<Uint8Array> = { highWaterMark: 0, size: (chunk) => chunk?.byteLength ?? 0 };

/** What the connection tells its transport (one object for all connections: no closures per stream). */
export interface SseConnectionEvents {
  /** The runtime cancelled the stream: the client went away. */
  gone(conn: SseConnection): void;
  /** The node closed an answered connection: its stream ends once the client has the rest. */
  closing(conn: SseConnection): void;
}

export class SseConnection implements ClientSocket, UnderlyingDefaultSource<Uint8Array> {
  readonly stream: ReadableStream<Uint8Array>;
  session: Session | undefined;
  /** The response carrying the stream was handed to the runtime. */
  answered = false;
  /** The code of the node's close (-1 while open): before the answer, it decides the status. */
  closeCode = -1;
  /** When the node closed it (Date.now()). */
  closedAt = 0;
  /** The stream is over: cancelled by the runtime, cut, or dropped unanswered. */
  ended = false;
  private controller!: ReadableStreamDefaultController<Uint8Array>;

  constructor(private readonly events: SseConnectionEvents) {
    this.stream = new ReadableStream<Uint8Array>(this, STRATEGY);
  }

  // --- the stream's underlying source

  start(controller: ReadableStreamDefaultController<Uint8Array>): void {
    this.controller = controller;
  }

  cancel(): void {
    if (this.ended) return;
    this.ended = true;
    this.events.gone(this);
  }

  // --- ClientSocket

  send(frame: Frame): number {
    if (this.ended || this.closeCode >= 0) return SOCKET_CLOSING;
    const bytes = typeof frame === "string" ? utf8.encode(frame) : frame;
    if (this.queued() > RUNTIME_BACKLOG_LIMIT) return 0;
    this.controller.enqueue(bytes);
    // Before the answer nothing can be read yet: that is not the client being slow.
    if (!this.answered) return bytes.byteLength;
    return this.queued() > 0 ? -1 : bytes.byteLength;
  }

  bufferedAmount(): number {
    return this.answered && !this.ended ? this.queued() : 0;
  }

  close(code: number, _reason: string): void {
    if (this.ended || this.closeCode >= 0) return;
    this.closeCode = code;
    this.closedAt = Date.now();
    if (!this.answered) return;
    this.controller.close();
    this.events.closing(this);
  }

  // --- for the transport

  /**
   * The response carrying the stream is being handed to the runtime. Closed meanwhile (e.g. a
   * remote disconnect right after the subscriptions), the stream ends after what was queued.
   */
  answer(): void {
    this.answered = true;
    if (this.closeCode < 0) return;
    this.controller.close();
    this.events.closing(this);
  }

  /** Bytes enqueued and not yet taken by the runtime. */
  queued(): number {
    const desired = this.controller.desiredSize;
    return desired === null || desired >= 0 ? 0 : -desired;
  }

  /** The closed stream's last bytes were taken by the runtime (or it is over). */
  get flushed(): boolean {
    return this.ended || this.queued() === 0;
  }

  /** Ends the stream at once, unsent events and all (a closed client that does not read). */
  cut(): void {
    if (this.ended) return;
    this.ended = true;
    try {
      this.controller.error(new Error("SSE client too slow"));
    } catch {
      // already closed and drained
    }
  }

  /** The request was answered with an error: the stream is never handed out. */
  discard(): void {
    this.ended = true;
  }
}
