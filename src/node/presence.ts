// Presence commands (`join`, `leave`, `presence`) and presence changes asked for by a backend's
// answer. The presence stream of a subscription is its istate `$p` (set by the streams controller
// or the backend); records are the broker's, keyed by session id and presence id.

import type { StreamPublication } from "../broadcast/publication.ts";
import { type Broker, isBrokerError, type PresenceEvent } from "../broker/broker.ts";
import { presenceEventJson, presenceInfoJson } from "../broker/presence_json.ts";
import type { PresenceEvent as ClientPresence } from "../protocols/encoder.ts";
import { PRESENCE_STREAM_STATE, type PresenceChange } from "./controller.ts";
import type { Session } from "./session.ts";

/** The publication that tells a stream's subscribers about a change: delivered, never kept in history. */
export function presencePublication(
  stream: string,
  event: PresenceEvent,
  excludeSocket?: string,
): StreamPublication {
  const pub: StreamPublication = {
    stream,
    dataJson: presenceEventJson(event),
    broadcastType: "presence",
    transient: true,
  };
  if (excludeSocket) pub.excludeSocket = excludeSocket;
  return pub;
}

export class Presence {
  constructor(private readonly broker: Broker) {}

  private streamOf(session: Session, identifier: string): string | undefined {
    return session.env.istate[identifier]?.[PRESENCE_STREAM_STATE] || undefined;
  }

  /** `presence`: the stream's presence info (records unless `data.return_records` is false). */
  async info(session: Session, identifier: string, data: unknown): Promise<string | undefined> {
    if (!session.subscriptions.has(identifier)) return `unknown subscription ${identifier}`;
    const stream = this.streamOf(session, identifier);
    if (!stream) return `presence stream not found for identifier: ${identifier}`;
    const res = await this.broker.presenceInfo(stream, { returnRecords: returnRecords(data) });
    if (session.isClosed) return undefined;
    const failed = isBrokerError(res);
    session.deliver(
      `{"type":"presence","identifier":${JSON.stringify(identifier)},"message":${presenceInfoJson(failed ? undefined : res)}}`,
    );
    return failed ? `failed to get presence info: ${res.error}` : undefined;
  }

  /** `join` / `leave` from the client. */
  async command(
    session: Session,
    identifier: string,
    type: "join" | "leave",
    presence: ClientPresence | undefined,
  ) {
    if (!session.subscriptions.has(identifier)) return `unknown subscription ${identifier}`;
    return this.change(
      session,
      identifier,
      { type, id: presence?.id ?? "", info: presence?.info },
      presence !== undefined,
    );
  }

  /** A change asked for by the client or in a backend's answer; an error text or undefined. */
  async change(
    session: Session,
    identifier: string,
    change: PresenceChange,
    hasData = true,
  ): Promise<string | undefined> {
    const stream = this.streamOf(session, identifier);
    if (!stream) return `presence stream not found for identifier: ${identifier}`;
    let res: PresenceEvent | undefined | { error: string };
    if (change.type === "join") {
      if (!hasData) return "presence data is missing";
      res = await this.broker.presenceAdd(stream, session.sid, change.id, change.info);
      if (!isBrokerError(res)) session.hasPresence = true;
    } else if (change.type === "leave") {
      res = await this.broker.presenceRemove(stream, session.sid);
    } else {
      return `unknown presence event: ${change.type}`;
    }
    return isBrokerError(res) ? `presence ${change.type} failed: ${res.error}` : undefined;
  }

  /** The presence stream's record of a subscription that ended (unsubscribe), if it had one. */
  async leaveOnUnsubscribe(session: Session, stream: string): Promise<string | undefined> {
    const res = await this.broker.presenceRemove(stream, session.sid);
    return isBrokerError(res) ? `failed to remove presence: ${res.error}` : undefined;
  }
}

/** `{"return_records": false}` (as an object or its JSON text) asks for totals only. */
function returnRecords(data: unknown): boolean {
  let v = data;
  if (typeof v === "string") {
    try {
      v = JSON.parse(v);
    } catch {
      return true;
    }
  }
  return !(typeof v === "object" && v !== null && (v as Record<string, unknown>).return_records === false);
}
