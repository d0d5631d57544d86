// GraphQL over WebSocket assembled from the configuration: the endpoint at --graphql_path, whose
// sessions speak graphql-transport-ws or the legacy graphql-ws protocol (chosen by
// Sec-WebSocket-Protocol), each through its executor on the application's controller chain. The
// composition root (app/cable.ts) mounts the endpoint and ticks the init timeouts.
import type { Logger } from "../../log/logger.ts";
import type { Controller } from "../../node/controller.ts";
import type { Executor } from "../../node/executor.ts";
import type { ConnectionRequest } from "../../node/socket.ts";
import type { Upgrade } from "../../runtime/types.ts";
import type { RequestGate } from "../../transports/request.ts";
import type { SocketContext } from "../../transports/ws/handler.ts";
import { VERSION_STRING } from "../../version.ts";
import { GraphqlExecutor } from "./executor.ts";
import type { Options } from "./options.ts";
import { LEGACY_WS_PROTOCOL, selectGraphqlProtocol, TRANSPORT_WS_PROTOCOL } from "./protocol.ts";

export { fromConfig, type Options } from "./options.ts";

export class Graphql {
  /** Executors by the protocol their sessions carry. */
  readonly executors: ReadonlyMap<string, Executor>;
  private readonly all: GraphqlExecutor[];

  constructor(
    readonly opts: Options,
    app: Controller,
    logger: Logger,
  ) {
    this.all = ([TRANSPORT_WS_PROTOCOL, LEGACY_WS_PROTOCOL] as const).map(
      (protocol) =>
        new GraphqlExecutor(app, {
          protocol,
          channel: opts.channel,
          action: opts.action,
          jwtParam: opts.jwtParam,
          logger,
        }),
    );
    this.executors = new Map([
      [TRANSPORT_WS_PROTOCOL, this.all[0]!],
      [LEGACY_WS_PROTOCOL, this.all[1]!],
    ]);
  }

  /** The ticker's task: connection_init timeouts. */
  tick(now: number): void {
    for (const e of this.all) e.tick(now);
  }

  /** The upgrade of --graphql_path: the shared request checks, then a GraphQL session. */
  upgradeHandler(
    gate: RequestGate,
  ): (req: Request, url: URL, remote: string) => Response | Upgrade<SocketContext> {
    return (req, _url, remote) => {
      if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
        return new Response("Bad Request\n", { status: 400 });
      }
      const refusal = gate.refuse(req);
      if (refusal) return refusal;
      const { protocol, echo } = selectGraphqlProtocol(req.headers.get("sec-websocket-protocol"));
      const { sid, clientSid, headers } = gate.identify(req, remote);
      const request: ConnectionRequest = { sid, url: req.url, headers, protocol };
      if (clientSid) request.clientSid = true;
      return {
        kind: "upgrade",
        data: { request },
        protocol: echo,
        headers: { "X-AnyCable-Version": VERSION_STRING },
      };
    };
  }
}
