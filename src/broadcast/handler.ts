// The two ways a received publication continues, chosen by the broadcaster's `fanout`:
// through the broker and pub/sub to every node, or straight to this node's clients.
import type { Broker } from "../broker/broker.ts";
import type { PublicationHandler } from "./broadcaster.ts";
import type { ParsedPublication, RemoteCommand, StreamMessage } from "./publication.ts";

/** What a handler needs from the node: delivery to local clients and the publication counters. */
export interface LocalDelivery {
  broadcast(message: StreamMessage): void;
  executeCommand(command: RemoteCommand): void;
  countPublication(): void;
  countFailedPublication(): void;
}

/** Publications one node receives for all (HTTP, REST API, Redis Streams): broker, then pub/sub. */
export class ClusterHandler implements PublicationHandler {
  constructor(
    private readonly broker: Broker,
    private readonly node: LocalDelivery,
  ) {}

  handle(payload: ParsedPublication): void {
    this.node.countPublication();
    if (payload.kind === "command") this.broker.handleCommand(payload.command);
    else for (const p of payload.publications) this.broker.handleBroadcast(p);
  }

  handleInvalid(): void {
    this.node.countFailedPublication();
  }
}

/** Publications every node receives itself (legacy Redis pub/sub): this node's clients only. */
export class LocalHandler implements PublicationHandler {
  constructor(private readonly node: LocalDelivery) {}

  handle(payload: ParsedPublication): void {
    this.node.countPublication();
    if (payload.kind === "command") this.node.executeCommand(payload.command);
    else for (const p of payload.publications) this.node.broadcast(p);
  }

  handleInvalid(): void {
    this.node.countFailedPublication();
  }
}
