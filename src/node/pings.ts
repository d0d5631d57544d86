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

export class Pings {
  /** This tick's ping frame per encoder (all but Action Cable JSON, which uses `json` below). */
  private readonly encoded = new Map<Encoder, Encoded>();

  constructor(private readonly opts: PingsOptions) {}

  /** The session just connected: its first ping is due within 0.5x..1.5x of its interval. */
  schedule(session: Session, now: number): void {
    if (session.pingIntervalMs <= 0) return;
    // spread so that a reconnect storm does not ping in step for ever after
    session.nextPingAt = now + session.pingIntervalMs * (0.5 + this.opts.random());
    // anycable-go: the first answer is due a pong timeout after the first ping
    const timeout = this.opts.pongTimeoutMs(session);
    if (timeout > 0) session.pongDeadline = session.nextPingAt + timeout;
  }

  /** Sends every ping that is due, and disconnects the sessions past their pong deadline. */
  tick(sessions: Iterable<Session>, now: number): void {
    let json = "";
    let precision = "";
    let stamp = -1;
    for (const session of sessions) {
      if (session.state !== "connected") continue;
      if (session.pongDeadline > 0 && now >= session.pongDeadline) {
        this.opts.noPong(session);
        continue;
      }
      if (session.pingIntervalMs <= 0 || now < session.nextPingAt) continue;
      // Pings sent in the same tick with the same precision share one frame per encoding.
      const sessionStamp = pingTimestamp(session.pingPrecision, now);
      if (sessionStamp !== stamp || session.pingPrecision !== precision) {
        stamp = sessionStamp;
        precision = session.pingPrecision;
        json = pingMessage(stamp);
        this.encoded.clear();
      }
      const encoder = session.encoder;
      if (encoder.id === "json") session.send(json);
      else {
        if (!this.encoded.has(encoder))
          this.encoded.set(encoder, encoder.encodeReply({ type: "ping", message: stamp }));
        const frame = this.encoded.get(encoder);
        if (frame !== undefined && frame !== null) session.send(frame);
      }
      if (this.opts.nativePings) session.socket.ping?.();
      session.nextPingAt = now + session.pingIntervalMs;
      if (session.pongDeadline === 0) {
        const timeout = this.opts.pongTimeoutMs(session);
        if (timeout > 0) session.pongDeadline = now + timeout;
      }
    }
    this.encoded.clear();
  }
}
