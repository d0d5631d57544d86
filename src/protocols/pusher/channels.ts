// Which Pusher channels are occupied, for the HTTP API's channel queries and the
// channel_occupied / channel_vacated / member_* webhooks.
//
// This node counts its own Pusher subscriptions per channel (subscription_count, GET /channels).
// Occupancy is decided cluster-wide by the broker when it keeps presence (memory, redis; later
// nats): each subscription of a channel is a presence record of the hidden stream
// OCCUPANCY_PREFIX + channel under one shared presence id, so the broker's own join / leave
// decisions (atomic in Redis) say when the first subscription anywhere appears and the last one
// goes, and are announced once, by the node that made the change (or that swept the records of a
// node that died, --presence_ttl later). Without such a broker the node's own count decides.
import { type Broker, isBrokerError, type PresenceEvent } from "../../broker/broker.ts";
import type { Logger } from "../../log/logger.ts";
import type { Session } from "../../node/session.ts";
import { isPresence } from "./protocol.ts";
import type { Webhooks } from "./webhooks.ts";

/** Presence streams that hold channel occupancy, not members. */
export const OCCUPANCY_PREFIX = "$pusher:occupancy:";
const OCCUPANT = "occupied";

export interface ChannelInfo {
  occupied: boolean;
  subscription_count: number;
  /** Presence channels: unique members (cluster-wide with a presence broker). */
  user_count?: number;
}

export class Channels {
  /** This node's Pusher subscriptions per channel. */
  private readonly counts = new Map<string, number>();
  private readonly clustered: boolean;
  private readonly log: Logger;

  constructor(
    private readonly broker: Broker,
    private readonly webhooks: Webhooks | undefined,
    logger: Logger,
  ) {
    this.clustered = broker.supportsPresence;
    this.log = logger.with({ context: "pusher" });
  }

  subscribed(session: Session, channel: string): void {
    const n = (this.counts.get(channel) ?? 0) + 1;
    this.counts.set(channel, n);
    if (this.clustered) {
      // kept alive with the session's other presence records (node keepalive), dropped on close
      session.hasPresence = true;
      this.broker.presenceAdd(OCCUPANCY_PREFIX + channel, session.sid, OCCUPANT, undefined).then(
        (r) => {
          if (isBrokerError(r)) this.log.debug("occupancy not recorded", { channel, error: r.error });
        },
        () => {},
      );
    } else if (n === 1) {
      this.webhooks?.emit({ name: "channel_occupied", channel });
    }
  }

  unsubscribed(session: Session, channel: string): void {
    const n = (this.counts.get(channel) ?? 0) - 1;
    if (n > 0) this.counts.set(channel, n);
    else this.counts.delete(channel);
    if (this.clustered) {
      this.broker.presenceRemove(OCCUPANCY_PREFIX + channel, session.sid).then(
        (r) => {
          if (isBrokerError(r)) this.log.debug("occupancy not released", { channel, error: r.error });
        },
        () => {},
      );
    } else if (n <= 0) {
      this.webhooks?.emit({ name: "channel_vacated", channel });
    }
  }

  /**
   * A presence change the broker decided on (the presenter's view). True when it was an
   * occupancy record, which is not the stream subscribers' business.
   */
  presenceChanged(stream: string, event: PresenceEvent): boolean {
    if (stream.startsWith(OCCUPANCY_PREFIX)) {
      const channel = stream.slice(OCCUPANCY_PREFIX.length);
      this.webhooks?.emit({ name: event.type === "join" ? "channel_occupied" : "channel_vacated", channel });
      return true;
    }
    if (isPresence(stream)) {
      this.webhooks?.emit({
        name: event.type === "join" ? "member_added" : "member_removed",
        channel: stream,
        user_id: event.id,
      });
    }
    return false;
  }

  localCount(channel: string): number {
    return this.counts.get(channel) ?? 0;
  }

  /** This node's occupied channels. */
  localChannels(): IterableIterator<string> {
    return this.counts.keys();
  }

  async info(channel: string, userCount: boolean): Promise<ChannelInfo | { error: string }> {
    const local = this.localCount(channel);
    let occupied = local > 0;
    if (!occupied && this.clustered) {
      const r = await this.broker.presenceInfo(OCCUPANCY_PREFIX + channel, { returnRecords: false });
      if (isBrokerError(r)) return r;
      occupied = r.total > 0;
    }
    const out: ChannelInfo = { occupied, subscription_count: local };
    if (userCount) {
      const r = await this.userCount(channel);
      if (typeof r !== "number") return r;
      out.user_count = r;
    }
    return out;
  }

  async userCount(channel: string): Promise<number | { error: string }> {
    if (!this.broker.supportsPresence) return 0;
    const r = await this.broker.presenceInfo(channel, { returnRecords: false });
    return isBrokerError(r) ? r : r.total;
  }
}
