// Keeps the broker's records of live sessions from expiring: restorable snapshots (--sessions_ttl)
// and presence records (--presence_ttl) are touched every half TTL, as anycable-go's per-session
// timers do, but in one batch per round from the node's ticker instead of a timer per connection.
import type { Broker } from "../broker/broker.ts";
import type { Session } from "./session.ts";

export interface KeepaliveOptions {
  broker: Broker;
  /** Touch restorable sessions this often (0: never). */
  sessionsEveryMs: number;
  /** Touch sessions with presence records this often (0: never). */
  presenceEveryMs: number;
  /** Whether the broker keeps a snapshot of this session. */
  resumable(session: Session): boolean;
}

export class Keepalive {
  private nextSessions = 0;
  private nextPresence = 0;

  constructor(private readonly opts: KeepaliveOptions) {}

  tick(sessions: Iterable<Session>, now: number): void {
    const { sessionsEveryMs, presenceEveryMs } = this.opts;
    if (this.nextSessions === 0) this.nextSessions = now + sessionsEveryMs;
    if (this.nextPresence === 0) this.nextPresence = now + presenceEveryMs;
    const touchSessions = sessionsEveryMs > 0 && now >= this.nextSessions;
    const touchPresence = presenceEveryMs > 0 && now >= this.nextPresence;
    if (!touchSessions && !touchPresence) return;
    const resumable: string[] = [];
    const present: string[] = [];
    for (const session of sessions) {
      if (session.state !== "connected") continue;
      if (touchSessions && this.opts.resumable(session)) resumable.push(session.sid);
      if (touchPresence && session.hasPresence) present.push(session.sid);
    }
    if (touchSessions) {
      this.nextSessions = now + sessionsEveryMs;
      if (resumable.length > 0) this.opts.broker.touchSessions(resumable);
    }
    if (touchPresence) {
      this.nextPresence = now + presenceEveryMs;
      if (present.length > 0) this.opts.broker.touchPresence(present);
    }
  }
}
