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
 * The session's own istate to write to: sessions start with the shared frozen NO_STATE, or a shared
 * frozen one-subscription map (Commands.sharedIstate); the first write gives them their own copy.
 */
export function ownIstate(session: Session): Record<string, Record<string, string>> {
  const istate = session.istate;
  // keyed by client-chosen identifiers: no prototype, so "__proto__" is a key like any other
  if (istate === NO_STATE) session.istate = Object.create(null);
  else if (Object.isFrozen(istate)) session.istate = Object.assign(Object.create(null), istate);
  return session.istate;
}

type SendHook = (session: Session, frame: Frame, result: number) => void;

/** What every session of one node has alike: one object for all of them, not three fields each. */
interface SessionShared {
  pingIntervalMs: number;
  pingPrecision: string;
  onSend: SendHook;
}

let lastShared: SessionShared | undefined;

function sharedFor(pingIntervalMs: number, pingPrecision: string, onSend: SendHook): SessionShared {
  const s = lastShared;
  if (s && s.pingIntervalMs === pingIntervalMs && s.pingPrecision === pingPrecision && s.onSend === onSend)
    return s;
  lastShared = { pingIntervalMs, pingPrecision, onSend };
  return lastShared;
}

// The session's booleans, as bits of one field (see `flags`).
const READING_STOPPED = 1;
const DISCONNECTABLE = 2;
const CLOSING = 4;
const HAS_PRESENCE = 8;
const DIRTY = 16;
const READ_PAUSED = 32;

/**
 * Per-connection state. Kept deliberately small (no timers, no closures per message): the node's
 * single ticker drives pings and slow-client checks for every session.
 *
 * JSC sizes an instance by its field count in steps (≤12 fields: 112 B, ≤18: 160 B, ≤22: 224 B;
 * measured with Bun.generateHeapSnapshot, 2026-12-03): the booleans share one `flags` field behind
 * accessors (accessors cost an instance nothing), and what all sessions of a node have alike is one
 * shared object, which keeps a session at 15 fields, 160 B instead of 224 B.
 */
export class Session implements HubSubscriber, SessionEnv {
  state: SessionState = "connecting";
  identifiers = "";
  /** Connection state (cstate), merged from every response. */
  cstate: Record<string, string> = NO_STATE;
  /** Channel state (istate) per subscription identifier. */
  istate: Record<string, Record<string, string>> = NO_STATE;
  /** identifier -> streams of that subscription (an array: usually one or two streams) */
  readonly subscriptions = new Subscriptions();
  /** Commands run one at a time, in arrival order, like anycable-go's read loop. */
  chain: Promise<void> = SETTLED;
  /** Commands queued or running on `chain`. */
  pending = 0;
  private flags = 0;
  nextPingAt = 0;
  /** When the socket was first seen holding unsent data, 0 when it is drained. */
  backpressuredSince = 0;
  lastBuffered = 0;
  /** When the client must have sent something (a pong) by, 0 when no answer is awaited (--pong_timeout). */
  pongDeadline = 0;
  /** Created on first use by a call, dropped when the queue drains: aborted if the session closes. */
  private closeController: AbortController | undefined;
  private readonly shared: SessionShared;

  constructor(
    readonly request: ConnectionRequest,
    readonly socket: ClientSocket,
    defaultPingIntervalMs: number,
    defaultPrecision: string,
    onSend: SendHook,
  ) {
    this.shared = sharedFor(defaultPingIntervalMs, defaultPrecision, onSend);
  }

  /**
   * What controllers see of the connection: the session itself (its URL, headers and states),
   * rather than a 48 B object of its own per connection.
   */
  get env(): SessionEnv {
    return this;
  }

  get url(): string {
    return this.request.url;
  }

  get headers(): Record<string, string> {
    return this.request.headers;
  }

  /** The client's own interval (?pi=) or the server's. */
  get pingIntervalMs(): number {
    const own = this.request.pingIntervalSec;
    return own !== undefined ? own * 1000 : this.shared.pingIntervalMs;
  }

  get pingPrecision(): string {
    return this.request.pingPrecision ?? this.shared.pingPrecision;
  }

  private onSend(session: Session, frame: Frame, result: number): void {
    this.shared.onSend(session, frame, result);
  }

  private flag(bit: number, on: boolean): void {
    this.flags = on ? this.flags | bit : this.flags & ~bit;
  }

  /** Set after a frame anycable-go could not decode: it stops reading from that client. */
  get readingStopped(): boolean {
    return (this.flags & READING_STOPPED) !== 0;
  }
  set readingStopped(on: boolean) {
    this.flag(READING_STOPPED, on);
  }

  get disconnectable(): boolean {
    return (this.flags & DISCONNECTABLE) !== 0;
  }
  set disconnectable(on: boolean) {
    this.flag(DISCONNECTABLE, on);
  }

  /** A server-side close is under way: its final frames must not re-trigger slow-client checks. */
  get closing(): boolean {
    return (this.flags & CLOSING) !== 0;
  }
  set closing(on: boolean) {
    this.flag(CLOSING, on);
  }

  /** Joined a presence set once: its records are kept alive while it is connected. */
  get hasPresence(): boolean {
    return (this.flags & HAS_PRESENCE) !== 0;
  }
  set hasPresence(on: boolean) {
    this.flag(HAS_PRESENCE, on);
  }

  /** Its restorable state changed since the broker last got a snapshot of it. */
  get dirty(): boolean {
    return (this.flags & DIRTY) !== 0;
  }
  set dirty(on: boolean) {
    this.flag(DIRTY, on);
  }

  /** Reading from the connection is paused until its queued commands are worked through. */
  get readPaused(): boolean {
    return (this.flags & READ_PAUSED) !== 0;
  }
  set readPaused(on: boolean) {
    this.flag(READ_PAUSED, on);
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
