import type { HubSubscriber } from "../hub/hub.ts";
import type { Encoded, Encoder, Frame } from "../protocols/encoder.ts";
import { protocolInfo } from "../protocols/registry.ts";
import type { SessionEnv } from "./controller.ts";
import type { ClientSocket, ConnectionRequest } from "./socket.ts";
import { Subscriptions } from "./subscriptions.ts";

export type SessionState = "connecting" | "connected" | "closed";

/** A send result (beside the socket's bytes / -1 / 0): the reply could not be encoded. */
export const UNENCODABLE = -2;

/** Where every session's command chain starts and returns to when its queue drains. */
const SETTLED: Promise<void> = Promise.resolve();

/**
 * Initial cstate/istate of every session, shared and frozen: most sessions never get state, and
 * the node copies it on the first write (Commands.ownIstate, Commands.mergeCstate) instead of
 * giving each one two objects.
 */
export const NO_STATE: Record<string, never> = Object.freeze({});

/**
 * Per-connection state. Kept deliberately small (no timers, no closures per message): the node's
 * single ticker drives pings and slow-client checks for every session.
 */
export class Session implements HubSubscriber {
  state: SessionState = "connecting";
  identifiers = "";
  readonly env: SessionEnv;
  /** identifier -> streams of that subscription (an array: usually one or two streams) */
  readonly subscriptions = new Subscriptions();
  /** Commands run one at a time, in arrival order, like anycable-go's read loop. */
  chain: Promise<void> = SETTLED;
  /** Commands queued or running on `chain`. */
  pending = 0;
  /** Set after a frame anycable-go could not decode: it stops reading from that client. */
  readingStopped = false;
  disconnectable = false;
  /** A server-side close is under way: its final frames must not re-trigger slow-client checks. */
  closing = false;
  nextPingAt = 0;
  pingIntervalMs: number;
  pingPrecision: string;
  /** When the socket was first seen holding unsent data, 0 when it is drained. */
  backpressuredSince = 0;
  lastBuffered = 0;
  /** When the client must have sent something (a pong) by, 0 when no answer is awaited (--pong_timeout). */
  pongDeadline = 0;
  /** Joined a presence set once: its records are kept alive while it is connected. */
  hasPresence = false;
  /** Its restorable state changed since the broker last got a snapshot of it. */
  dirty = false;
  /** Reading from the connection is paused until its queued commands are worked through. */
  readPaused = false;
  /** Created on first use by a call, dropped when the queue drains: aborted if the session closes. */
  private closeController: AbortController | undefined;

  constructor(
    readonly request: ConnectionRequest,
    readonly socket: ClientSocket,
    defaultPingIntervalMs: number,
    defaultPrecision: string,
    private readonly onSend: (session: Session, frame: Frame, result: number) => void,
  ) {
    this.env = { url: request.url, headers: request.headers, cstate: NO_STATE, istate: NO_STATE };
    this.pingIntervalMs =
      request.pingIntervalSec !== undefined ? request.pingIntervalSec * 1000 : defaultPingIntervalMs;
    this.pingPrecision = request.pingPrecision ?? defaultPrecision;
  }

  get sid(): string {
    return this.request.sid;
  }

  get isClosed(): boolean {
    return this.state === "closed";
  }

  /**
   * Aborted once the session is closed (anycable-go's session close context): controller calls
   * still waiting for an RPC slot are dropped, calls in flight are cancelled.
   */
  get signal(): AbortSignal {
    if (!this.closeController) {
      this.closeController = new AbortController();
      if (this.state === "closed") this.closeController.abort();
    }
    return this.closeController.signal;
  }

  /** Cancels the session's pending controller calls; called when it closes. */
  cancelCalls(): void {
    this.closeController?.abort();
  }

  /**
   * The command queue is empty: an idle session keeps neither its last promise nor an
   * AbortController (together a few hundred bytes per idle connection).
   */
  settle(): void {
    this.chain = SETTLED;
    if (this.state !== "closed") this.closeController = undefined;
  }

  /**
   * The session's wire format: the transport's (SSE) or its sub-protocol's (looked up, not stored:
   * no field per session).
   */
  get encoder(): Encoder {
    return this.request.encoder ?? protocolInfo(this.request.protocol).encoder;
  }

  /**
   * A reply as Action Cable JSON text (transmissions, pings, disconnects): sent as is on a JSON
   * session and re-encoded for any other (binary formats, foreign protocols). A transmission the
   * format cannot carry is reported as UNENCODABLE (counted as a failed message, like
   * anycable-go's encoding errors); one it has no form for is skipped.
   */
  deliver(json: string): void {
    if (this.state === "closed") return;
    const encoder = this.encoder;
    if (encoder.id === "json") {
      this.onSend(this, json, this.socket.send(json));
      return;
    }
    const frame = encoder.encodeTransmission(json);
    if (frame === undefined) this.onSend(this, json, UNENCODABLE);
    else if (frame !== null) this.onSend(this, frame, this.socket.send(frame));
  }

  /** A frame this session's encoder produced (undefined: it could not carry the payload; null: nothing to send). */
  sendEncoded(frame: Encoded): void {
    if (this.state === "closed" || frame === null) return;
    if (frame === undefined) this.onSend(this, "", UNENCODABLE);
    else this.onSend(this, frame, this.socket.send(frame));
  }

  /** A frame already in this session's format (a broadcast encoded once per encoding). */
  send(frame: Frame): void {
    if (this.state === "closed") return;
    this.onSend(this, frame, this.socket.send(frame));
  }

  get joinsTopics(): boolean {
    return this.socket.joinTopic !== undefined;
  }

  joinTopic(topic: string): void {
    this.socket.joinTopic?.(topic);
  }

  leaveTopic(topic: string): void {
    this.socket.leaveTopic?.(topic);
  }

  subscriptionIds(): string[] {
    return this.subscriptions.identifiers();
  }
}
