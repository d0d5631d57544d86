// The node's ClientSocket for a Durable Streams request. The node hands every DS session the
// frames of DS_ENCODER (a stream message and its position); a long-poll request waits for the
// first of them, an SSE request writes each as a data + control event pair to its stream.
//
// Both subscribe before they read history, so nothing published in between is missed: frames that
// arrive while history is being read are held, and those history did not have are sent after it
// (anycable-go reads history first and subscribes after, losing what came in that gap).
import { type ClientSocket, CloseCode, SOCKET_CLOSING } from "../../node/socket.ts";
import type { Frame } from "../../protocols/encoder.ts";
import type { SseConnection } from "../sse/connection.ts";
import { type LiveItem, liveItem, sseControlEvent, sseDataEvent } from "./encoder.ts";

/** Frames held while an SSE request reads history; past it the stream ends after history (see below). */
export const MAX_HELD_FRAMES = 1024;

function frameBytes(frame: Frame): number {
  return typeof frame === "string" ? frame.length : frame.byteLength;
}

/** A long-poll request: the first live message answers it; a close (shutdown, disconnect) ends it. */
export class DsPollSocket implements ClientSocket {
  /** The first live message, once it came. */
  first: LiveItem | undefined;
  /** The code of the node's close (-1 while open). */
  closeCode = -1;
  private wake: (() => void) | undefined;

  send(frame: Frame): number {
    if (this.closeCode >= 0) return SOCKET_CLOSING;
    if (this.first === undefined) {
      const item = liveItem(frame);
      if (item) {
        this.first = item;
        this.wake?.();
      }
    }
    return frameBytes(frame);
  }

  bufferedAmount(): number {
    return 0;
  }

  close(code: number): void {
    if (this.closeCode >= 0) return;
    this.closeCode = code;
    this.wake?.();
  }

  /** Resolves when a message came or the socket closed (at once if either happened already). */
  settled(): Promise<void> {
    if (this.first !== undefined || this.closeCode >= 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.wake = resolve;
    });
  }

  /** Ends the wait without a message (the poll interval passed, the client went away). */
  expire(): void {
    this.close(CloseCode.normal);
  }
}

/** An SSE request: live messages as `data` + `control` events with this client's cursor. */
export class DsSseSocket implements ClientSocket {
  /** Frames that came while history was read; undefined once history is written. */
  private held: LiveItem[] | undefined = [];
  /** More frames came while holding than MAX_HELD_FRAMES. */
  overflowed = false;

  constructor(
    readonly conn: SseConnection,
    readonly cursor: string,
  ) {}

  send(frame: Frame): number {
    const item = liveItem(frame);
    if (!item) return frameBytes(frame);
    if (this.held) {
      if (this.held.length < MAX_HELD_FRAMES) this.held.push(item);
      else this.overflowed = true;
      return frameBytes(frame);
    }
    return this.conn.send(this.event(item));
  }

  bufferedAmount(): number {
    return this.conn.bufferedAmount();
  }

  close(code: number, reason: string): void {
    this.conn.close(code, reason);
  }

  /**
   * History was written, up to `offset` in `epoch` (0 and "" when it had nothing): the held
   * messages past it go out, in order, and live ones follow as they come. Returns false when
   * messages were dropped while holding (the stream should end so the client resumes from its
   * last offset, which loses nothing).
   */
  release(epoch: string, offset: number): boolean {
    const held = this.held ?? [];
    this.held = undefined;
    for (const item of held) {
      if (epoch !== "" && item.epoch === epoch && item.offset <= offset) continue;
      this.conn.send(this.event(item));
    }
    return !this.overflowed;
  }

  private event(item: LiveItem): string {
    return sseDataEvent([item.item]) + sseControlEvent(item.token, this.cursor, false);
  }
}
