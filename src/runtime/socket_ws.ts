// A server WebSocket on a node:net socket (the Deno listener, deno_http.ts): RFC 6455 framing from
// ws_frames.ts, writes straight into the socket, whose own buffer is the backlog the node watches.
import type { Buffer } from "node:buffer";
import type { Socket } from "node:net";
import { type ClientSocket, SOCKET_CLOSING } from "../node/socket.ts";
import type { Frame } from "../protocols/encoder.ts";
import { RUNTIME_BACKLOG_LIMIT, type WebSocketHandlers } from "./types.ts";
import { DEFLATE_MIN_SIZE } from "./ws_deflate.ts";
import {
  encodeBinary,
  encodeClose,
  encodeControl,
  encodeDeflatedBinary,
  encodeDeflatedText,
  encodeText,
  FrameParser,
  Opcode,
  WsClose,
  type WsEvent,
} from "./ws_frames.ts";

const plain = (frame: Frame): Buffer => (typeof frame === "string" ? encodeText(frame) : encodeBinary(frame));
const deflated = (frame: Frame): Buffer =>
  typeof frame === "string" ? encodeDeflatedText(frame) : encodeDeflatedBinary(frame);

const OPEN = 1;
const CLOSING = 2;
const CLOSED = 3;

/** What the listener keeps track of: sockets closing (to be cut at a deadline) and gone. */
export interface SocketHooks<D> {
  /** A close frame went out (or came in): the connection should end soon. */
  closing(ws: SocketWebSocket<D>): void;
  /** The connection is gone (closed by either side, or cut). */
  gone(ws: SocketWebSocket<D>): void;
}

export class SocketWebSocket<D> implements ClientSocket {
  private state = OPEN;
  private code: number = WsClose.abnormal;
  private reason = "";
  /** The handlers were told of the close (at the close frame, or when the connection went). */
  private closeNotified = false;
  private readonly parser: FrameParser;
  private readonly events: WsEvent[] = [];

  constructor(
    readonly socket: Socket,
    private readonly handlers: WebSocketHandlers<D> | undefined,
    private readonly data: D,
    maxMessageSize: number,
    private readonly hooks: SocketHooks<D>,
    /** permessage-deflate was negotiated for this connection. */
    private readonly deflate = false,
  ) {
    this.parser = new FrameParser(maxMessageSize, deflate);
  }

  /** Called once the 101 is written: opens the session, then reads (bytes after the handshake first). */
  start(head: Buffer): void {
    const sock = this.socket;
    sock.setNoDelay(true);
    sock.setTimeout(0);
    sock.on("data", (chunk: Buffer) => this.receive(chunk));
    sock.on("drain", () => {
      if (this.state === OPEN) this.handlers?.drain(this.data);
    });
    // The client half-closed: nothing more will come; finish our side too.
    sock.on("end", () => {
      if (!sock.writableEnded) sock.end();
    });
    sock.on("error", () => {});
    sock.on("close", () => this.gone());
    this.handlers?.open(this, this.data);
    if (head.length > 0) this.receive(head);
    sock.resume();
  }

  send(frame: Frame): number {
    if (this.state !== OPEN) return SOCKET_CLOSING;
    const before = this.socket.writableLength;
    // the same bound as Bun's backpressureLimit: refused, the node lets the client go
    if (before > RUNTIME_BACKLOG_LIMIT) return 0;
    const bytes = this.deflate && frame.length >= DEFLATE_MIN_SIZE ? deflated(frame) : plain(frame);
    this.socket.write(bytes);
    // queued behind data the client has not taken yet
    return before > 0 ? -1 : bytes.length;
  }

  bufferedAmount(): number {
    return this.state === OPEN ? this.socket.writableLength : 0;
  }

  /**
   * The close frame goes out behind whatever is still unsent, then the connection ends; a client
   * that does not read cannot hold it: the listener cuts it at its deadline (hooks.closing).
   */
  close(code: number, reason: string): void {
    if (this.state !== OPEN) return;
    this.state = CLOSING;
    this.code = code;
    this.reason = reason;
    this.hooks.closing(this);
    this.socket.write(encodeClose(code, reason));
    this.socket.end();
  }

  ping(): void {
    if (this.state === OPEN) this.socket.write(encodeControl(Opcode.ping));
  }

  pauseReading(): void {
    this.socket.pause();
  }

  resumeReading(): void {
    this.socket.resume();
  }

  /** Cuts the connection at once, unsent data included. */
  destroy(): void {
    this.socket.destroy();
  }

  get closed(): boolean {
    return this.state === CLOSED;
  }

  private receive(chunk: Buffer): void {
    const events = this.events;
    try {
      this.parser.push(chunk, events);
      for (let i = 0; i < events.length; i++) this.handle(events[i]!);
    } catch {
      // nothing may throw out of a socket callback (it would end the process): cut this client
      this.socket.destroy();
    } finally {
      events.length = 0;
    }
  }

  private handle(ev: WsEvent): void {
    switch (ev.kind) {
      case "text":
      case "binary":
        if (this.state === OPEN) this.handlers?.message(this.data, ev.data, ev.size);
        return;
      case "ping":
        if (this.state === OPEN) this.socket.write(encodeControl(Opcode.pong, ev.payload));
        return;
      case "pong":
        if (this.state === OPEN) this.handlers?.pong?.(this.data);
        return;
      case "close":
        if (this.state === OPEN) {
          // the client's closing handshake: answer with its code, then end the connection
          this.state = CLOSING;
          this.code = ev.code;
          this.reason = ev.reason;
          this.hooks.closing(this);
          this.socket.write(encodeClose(ev.code === WsClose.noStatus ? WsClose.noStatus : ev.code));
          this.socket.end();
          // The node learns it now, as Bun tells on the close frame: until the TCP connection is
          // gone it would send into a closing socket and take the refusals for slowness.
          this.notifyClosed();
        } else if (!this.socket.writableEnded) {
          // the answer to our close
          this.socket.end();
        }
        return;
      case "fail":
        this.close(ev.code, ev.reason);
        return;
    }
  }

  private gone(): void {
    if (this.state === CLOSED) return;
    this.state = CLOSED;
    this.hooks.gone(this);
    this.notifyClosed();
  }

  private notifyClosed(): void {
    if (this.closeNotified) return;
    this.closeNotified = true;
    this.handlers?.close(this.data, this.code, this.reason);
  }
}
