// Slow clients. A client that cannot keep up is let go with `too_slow` rather than letting its
// socket's unsent data grow without bound: when the runtime drops a frame (past its own backlog
// limit, RUNTIME_BACKLOG_LIMIT), when the unsent bytes are above --ws_max_pending_size and did not
// shrink since the previous check, or when they stop shrinking for --ws_write_timeout.
//
// Slowness is judged over time, on the ticker, never on one turn's burst: a runtime writes to the
// network only after the current turn (Deno always, Bun once the kernel buffer is full), so a big
// batch fanned out in one turn shows as unsent bytes even for a client that reads as fast as it can.
import type { Hub } from "../hub/hub.ts";
import type { Logger } from "../log/logger.ts";
import { DisconnectReason } from "../protocols/actioncable.ts";
import type { Frame } from "../protocols/encoder.ts";
import type { NodeCounters } from "./node_metrics.ts";
import { type Session, UNENCODABLE } from "./session.ts";
import { CloseCode, SOCKET_CLOSING } from "./socket.ts";

export interface BackpressureOptions {
  hub: Hub;
  /** 0: no size limit. */
  maxPendingBytes: number;
  /** 0: no write timeout. */
  writeTimeoutMs: number;
  counters: NodeCounters;
  logger: Logger;
  /** The node's protocol disconnect (a `disconnect` frame, then the close). */
  disconnect(session: Session, reason: string, reconnect: boolean, code: number, closeReason: string): void;
}

export class Backpressure {
  /**
   * Sessions whose socket may hold unsent data: a send came back "queued", or a native
   * publication reached them. Only these are polled, so idle connections cost the ticker no call
   * into the runtime.
   */
  private readonly backlogged = new Set<Session>();
  private readonly m: NodeCounters;

  constructor(private readonly opts: BackpressureOptions) {
    this.m = opts.counters;
  }

  /** Every session's send hook (shared, so no closure per session): counts and watches each frame. */
  readonly onSend = (session: Session, frame: Frame, result: number): void => {
    const m = this.m;
    if (result === SOCKET_CLOSING) return;
    if (result === UNENCODABLE) {
      m.failedServerMsg.inc();
      return;
    }
    if (result === 0) {
      m.failedServerMsg.inc();
      // the runtime refused the frame (its own backlog limit): the client cannot keep up
      if (!session.closing) this.tooSlow(session, "frame dropped by runtime");
      return;
    }
    m.serverMsg.inc();
    m.dataSent.inc(frame.length);
    // queued behind unsent data: the ticker watches it from now on
    if (result < 0 && !session.closing) this.backlogged.add(session);
  };

  /** The runtime reports the socket's backlog flushed. */
  drained(session: Session): void {
    session.backpressuredSince = 0;
    session.lastBuffered = 0;
    this.backlogged.delete(session);
  }

  /** The session closed: nothing more to watch. */
  forget(session: Session): void {
    this.backlogged.delete(session);
  }

  /** The ticker's pass over sockets that may hold unsent data. */
  tick(now: number): void {
    // Natively fanned-out frames bypass onSend: the hub tells which sessions they reached.
    this.opts.hub.takeNativelyPublished((sub) => {
      const session = sub as Session;
      if (session.state === "connected" && session.socket.bufferedAmount() > 0) this.backlogged.add(session);
    });
    for (const session of this.backlogged) this.check(session, now);
  }

  /**
   * Over the pending size without progress since the previous check, then no progress for the
   * write timeout. The first sighting only takes the measure.
   */
  private check(session: Session, now: number): void {
    const buffered = session.state === "connected" ? session.socket.bufferedAmount() : 0;
    if (buffered === 0) {
      this.drained(session);
      return;
    }
    const firstSighting = session.backpressuredSince === 0;
    const progress = buffered < session.lastBuffered;
    const maxPending = this.opts.maxPendingBytes;
    if (maxPending > 0 && buffered > maxPending && !firstSighting && !progress) {
      this.tooSlow(session, "pending size exceeded");
      return;
    }
    if (firstSighting || progress) {
      // progress (or the first sighting) restarts the write-timeout clock
      session.backpressuredSince = now;
    } else if (this.opts.writeTimeoutMs > 0 && now - session.backpressuredSince >= this.opts.writeTimeoutMs) {
      this.m.timeoutServerMsg.inc();
      this.tooSlow(session, "write timeout");
      return;
    }
    session.lastBuffered = buffered;
  }

  private tooSlow(session: Session, why: string): void {
    this.m.slowClients.inc();
    this.opts.logger.debug("slow client detected, disconnecting", { sid: session.sid, why });
    this.opts.disconnect(session, DisconnectReason.tooSlow, true, CloseCode.normal, "");
  }
}
