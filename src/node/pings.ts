// Action Cable pings for every session from the node's one ticker (no timer per connection).
import { pingMessage, pingTimestamp } from "../protocols/actioncable.ts";
import type { Encoder, Frame } from "../protocols/encoder.ts";
import type { Session } from "./session.ts";

export class Pings {
  /** This tick's ping frame per encoder (binary sessions only; JSON uses `json` below). */
  private readonly encoded = new Map<Encoder, Frame | undefined>();

  constructor(
    /** Also send a WebSocket-level ping (--enable_native_pings). */
    private readonly nativePings: boolean,
    /** Pseudo-random source for the first ping's offset. */
    private readonly random: () => number,
  ) {}

  /** The session just connected: its first ping is due within 0.5x..1.5x of its interval. */
  schedule(session: Session, now: number): void {
    // spread so that a reconnect storm does not ping in step for ever after
    if (session.pingIntervalMs > 0) session.nextPingAt = now + session.pingIntervalMs * (0.5 + this.random());
  }

  /** Sends every ping that is due. */
  tick(sessions: Iterable<Session>, now: number): void {
    let json = "";
    let precision = "";
    let stamp = -1;
    for (const session of sessions) {
      if (session.state !== "connected" || session.pingIntervalMs <= 0 || now < session.nextPingAt) continue;
      // Pings sent in the same tick with the same precision share one frame per encoding.
      const sessionStamp = pingTimestamp(session.pingPrecision, now);
      if (sessionStamp !== stamp || session.pingPrecision !== precision) {
        stamp = sessionStamp;
        precision = session.pingPrecision;
        json = pingMessage(stamp);
        this.encoded.clear();
      }
      const encoder = session.encoder;
      if (!encoder.binary) session.send(json);
      else {
        if (!this.encoded.has(encoder))
          this.encoded.set(encoder, encoder.encodeReply({ type: "ping", message: stamp }));
        const frame = this.encoded.get(encoder);
        if (frame !== undefined) session.send(frame);
      }
      if (this.nativePings) session.socket.ping?.();
      session.nextPingAt = now + session.pingIntervalMs;
    }
    this.encoded.clear();
  }
}
