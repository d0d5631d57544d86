// Where a received publication continues, chosen by the broadcaster's `fanout`: the broker (and
// through pub/sub every node) for single-node broadcasters, or this node's clients for fan-out
// ones. Either way a received body is counted once, as anycable-go counts publications.
import type { PublicationHandler } from "./broadcaster.ts";
import type { ParsedPublication, RemoteCommand, StreamPublication } from "./publication.ts";

/** The broker, or the node itself for fan-out broadcasters. */
export interface PublicationTarget {
  handleBroadcast(publication: StreamPublication): void;
  handleCommand(command: RemoteCommand): void;
}

export interface PublicationCounters {
  countPublication(): void;
  countFailedPublication(): void;
}

export class ForwardingHandler implements PublicationHandler {
  constructor(
    private readonly target: PublicationTarget,
    private readonly counters: PublicationCounters,
  ) {}

  handle(payload: ParsedPublication): void {
    this.counters.countPublication();
    if (payload.kind === "command") this.target.handleCommand(payload.command);
    else for (const p of payload.publications) this.target.handleBroadcast(p);
  }

  handleInvalid(): void {
    this.counters.countFailedPublication();
  }
}
