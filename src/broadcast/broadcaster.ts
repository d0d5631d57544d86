// Broadcasters: how publications from the application reach this node (HTTP, Redis, ...).
import type { Service } from "../app/service.ts";
import type { ParsedPublication } from "./publication.ts";

/** Where a broadcaster hands what it received (see handler.ts for the two implementations). */
export interface PublicationHandler {
  /** One received payload: a publication, a batch of them or a remote command. */
  handle(payload: ParsedPublication): void;
  /** A payload that could not be parsed (counted as failed_broadcast_msg_total). */
  handleInvalid(): void;
}

export interface Broadcaster extends Service {
  /**
   * true when every node receives each publication itself (legacy Redis / NATS pub/sub): it goes
   * to this node's clients only. Otherwise (HTTP, Redis Streams) one node receives it and passes
   * it through the broker and pub/sub to every node (see handler.ts).
   */
  readonly fanout: boolean;
}
