// Where a received publication continues, chosen by the broadcaster's `fanout`: the broker (and
// through pub/sub every node) for single-node broadcasters, or this node's clients for fan-out
// ones. Either way a received body is counted once, as anycable-go counts publications.
import type { Logger } from "../log/logger.ts";
import { redactSigned } from "../log/redact.ts";
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
  /** Set with a debug-level logger only: anycable-go's "handle ... message" lines (context=node). */
  private readonly debug?: Logger;

  constructor(
    private readonly target: PublicationTarget,
    private readonly counters: PublicationCounters,
    logger?: Logger,
  ) {
    if (logger?.enabled("debug")) this.debug = logger.with({ context: "node" });
  }

  handle(payload: ParsedPublication): void {
    this.counters.countPublication();
    if (this.debug) logReceived(this.debug, payload);
    if (payload.kind === "command") this.target.handleCommand(payload.command);
    else for (const p of payload.publications) this.target.handleBroadcast(p);
  }

  handleInvalid(): void {
    this.counters.countFailedPublication();
  }
}

function logReceived(log: Logger, payload: ParsedPublication): void {
  if (payload.kind === "command") {
    log.debug("handle remote command", { command: redactSigned(JSON.stringify(payload.command)) });
    return;
  }
  const list = payload.publications.map((p) => ({
    stream: p.stream,
    data: p.dataJson.length > 200 ? `${p.dataJson.slice(0, 200)}...` : p.dataJson,
    exclude_socket: p.excludeSocket,
  }));
  if (list.length === 1) log.debug("handle broadcast message", { payload: list[0] });
  else log.debug("handle batch-broadcast message", { payload: list });
}
