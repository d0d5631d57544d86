// The `history` command (and the history part of `subscribe`): the messages a client missed in a
// subscription's streams, from the broker, then confirm_history — or reject_history when the
// broker cannot serve them (no broker, an unknown epoch, messages already gone).
import type { StreamMessage } from "../broadcast/publication.ts";
import { type Broker, isHistoryError } from "../broker/broker.ts";
import { replyJson } from "../protocols/actioncable.ts";
import type { HistoryRequest } from "../protocols/encoder.ts";
import type { Session } from "./session.ts";

export class History {
  constructor(private readonly broker: Broker) {}

  /** An error text for the node to log, or undefined. Sends nothing to a session that closed meanwhile. */
  async run(
    session: Session,
    identifier: string,
    request: HistoryRequest | undefined,
  ): Promise<string | undefined> {
    const streams = session.subscriptions.get(identifier);
    if (streams === undefined) return `unknown subscription ${identifier}`;
    if (!request) return "history request is missing";
    const backlog: StreamMessage[] = [];
    let error: string | undefined;
    // Per stream of the subscription, in subscription order: a position for the stream wins over
    // `since` (anycable-go's retreiveHistory); a stream asked for by neither is skipped.
    for (const stream of streams) {
      const position =
        request.streams && Object.hasOwn(request.streams, stream) ? request.streams[stream] : undefined;
      let got: StreamMessage[] | { error: string } | undefined;
      if (position) got = await this.broker.historyFrom(stream, position.epoch, position.offset);
      else if (request.since !== undefined && request.since > 0)
        got = await this.broker.historySince(stream, request.since);
      if (got === undefined) continue;
      if (isHistoryError(got)) {
        error = got.error;
        break;
      }
      for (const m of got) backlog.push(m);
    }
    if (session.isClosed) return undefined;
    if (error !== undefined) {
      session.deliver(replyJson({ type: "reject_history", identifier }));
      return `failed to fetch history for ${identifier}: ${error}`;
    }
    const encoder = session.encoder;
    for (const m of backlog) {
      const meta = m.epoch ? { stream_id: m.stream, epoch: m.epoch, offset: m.offset } : undefined;
      session.sendEncoded(encoder.encodeBroadcast(identifier, m.dataJson, meta));
    }
    session.deliver(replyJson({ type: "confirm_history", identifier }));
    return undefined;
  }
}
