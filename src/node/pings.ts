// Action Cable pings for every session from the node's one ticker (no timer per connection), and
// the pong deadlines of --pong_timeout: once a ping went out, the client has that long to send
// anything (a `pong`, any command, a native pong frame) or it is disconnected with `no_pong`.
import { pingMessage, pingTimestamp } from "../protocols/actioncable.ts";
import type { Encoded, Encoder } from "../protocols/encoder.ts";
import type { Session } from "./session.ts";

export interface PingsOptions {
  /** Also send a WebSocket-level ping (--enable_native_pings). */
  nativePings: boolean;
  /** Pseudo-random source for the first ping's offset. */
  random: () => number;
  /** The session's pong timeout in ms, 0 when it is not held to one. */
  pongTimeoutMs(session: Session): number;
  /** The session missed its pong deadline. */
  noPong(session: Session): void;
}

/**
 * The wheel's slot: the ticker's period (app/lifecycle.ts), so one tick takes one slot's sessions.
 * Visiting only the sessions due in a tick, instead of every session every tick, took the idle cost
 * of 10,000 connected sessions from 8 to ~2 ms/s of CPU with pings off (and so from 38 to ~32 with
 * them on, raw Bun sending the same pings: 30; /proc/<pid>/stat over 9 s, 2026-12-03).
 */
const SLOT_MS = 250;

const slotOf = (t: number) => Math.floor(t / SLOT_MS);

export class Pings {
  /** This tick's ping frame per encoder (all but Action Cable JSON, which uses `json` below). */
  private readonly encoded = new Map<Encoder, Encoded>();
  /**
   * slot -> the sessions with a ping or a pong deadline due in it. An entry may be stale (the
   * session closed, answered, or was rescheduled): a visit checks the session's own deadlines.
   */
  private readonly wheel = new Map<number, Session[]>();
  /** The first slot no tick has taken yet (-1: no tick yet). */
  private nextSlot = -1;

  constructor(private readonly opts: PingsOptions) {}

  /** The session just connected: its first ping is due within 0.5x..1.5x of its interval. */
  schedule(session: Session, now: number): void {
    if (session.pingIntervalMs <= 0) return;
    // spread so that a reconnect storm does not ping in step for ever after
    session.nextPingAt = now + session.pingIntervalMs * (0.5 + this.opts.random());
    this.add(session, slotOf(session.nextPingAt));
    // anycable-go: the first answer is due a pong timeout after the first ping
    const timeout = this.opts.pongTimeoutMs(session);
    if (timeout > 0) {
      session.pongDeadline = session.nextPingAt + timeout;
      this.add(session, slotOf(session.pongDeadline));
    }
  }

  private add(session: Session, slot: number): void {
    const at = this.nextSlot >= 0 && slot < this.nextSlot ? this.nextSlot : slot;
    const list = this.wheel.get(at);
    if (list) list.push(session);
    else this.wheel.set(at, [session]);
  }

  /** Sends every ping that is due, and disconnects the sessions past their pong deadline. */
  tick(now: number): void {
    const last = slotOf(now);
    this.nextSlot = last + 1;
    const taken: Session[][] = [];
    for (const [slot, list] of this.wheel) {
      if (slot > last) continue;
      this.wheel.delete(slot);
      taken.push(list);
    }
    this.json = "";
    this.precision = "";
    this.stamp = -1;
    for (const list of taken) for (const session of list) this.visit(session, now);
    this.encoded.clear();
  }

  private json = "";
  private precision = "";
  private stamp = -1;

  private visit(session: Session, now: number): void {
    if (session.state !== "connected") return;
    if (session.pongDeadline > 0) {
      if (now >= session.pongDeadline) {
        this.opts.noPong(session);
        return;
      }
      // due later within a slot already taken: the next tick looks again
      if (slotOf(session.pongDeadline) < this.nextSlot) this.add(session, this.nextSlot);
    }
    if (session.pingIntervalMs <= 0) return;
    if (now < session.nextPingAt) {
      if (slotOf(session.nextPingAt) < this.nextSlot) this.add(session, this.nextSlot);
      return;
    }
    // Pings sent in the same tick with the same precision share one frame per encoding.
    const sessionStamp = pingTimestamp(session.pingPrecision, now);
    if (sessionStamp !== this.stamp || session.pingPrecision !== this.precision) {
      this.stamp = sessionStamp;
      this.precision = session.pingPrecision;
      this.json = pingMessage(sessionStamp);
      this.encoded.clear();
    }
    const encoder = session.encoder;
    if (encoder.id === "json") session.send(this.json);
    else {
      if (!this.encoded.has(encoder))
        this.encoded.set(encoder, encoder.encodeReply({ type: "ping", message: sessionStamp }));
      const frame = this.encoded.get(encoder);
      if (frame !== undefined && frame !== null) session.send(frame);
    }
    if (this.opts.nativePings) session.socket.ping?.();
    session.nextPingAt = now + session.pingIntervalMs;
    this.add(session, slotOf(session.nextPingAt));
    if (session.pongDeadline === 0) {
      const timeout = this.opts.pongTimeoutMs(session);
      if (timeout > 0) {
        session.pongDeadline = now + timeout;
        this.add(session, slotOf(session.pongDeadline));
      }
    }
  }
}
