// OCPP 1.6J assembled from the configuration: charging stations at --ocpp_path/{station_id}, each
// session with an encoder of its own, all through one executor on the application's controller
// chain. The composition root (app/cable.ts) mounts the endpoint.
import type { Logger } from "../../log/logger.ts";
import type { Controller } from "../../node/controller.ts";
import type { ConnectionRequest } from "../../node/socket.ts";
import type { Upgrade } from "../../runtime/types.ts";
import type { RequestGate } from "../../transports/request.ts";
import type { SocketContext } from "../../transports/ws/handler.ts";
import { VERSION_STRING } from "../../version.ts";
import { OcppExecutor, stationIdOf } from "./executor.ts";
import type { Options } from "./options.ts";
import { OCPP_PROTOCOL, selectOcppProtocol } from "./protocol.ts";

export { fromConfig, type Options } from "./options.ts";

export class Ocpp {
  readonly executor: OcppExecutor;

  constructor(
    readonly opts: Options,
    app: Controller,
    logger: Logger,
  ) {
    this.executor = new OcppExecutor(app, {
      path: opts.path,
      channel: opts.channel,
      heartbeatIntervalSec: opts.heartbeatIntervalSec,
      granularActions: opts.granularActions,
      logger,
    });
  }

  /**
   * A request for the endpoint: a path under its prefix (a station's, or one naming none: answered
   * 404 there). With the prefix `/` every one-segment path is under it: only WebSocket upgrades
   * are then taken, so /health and the other HTTP routes keep working.
   */
  matches(pathname: string, req: Request): boolean {
    if (!pathname.startsWith(`${this.opts.path}/`)) return false;
    return this.opts.path !== "" || req.headers.get("upgrade")?.toLowerCase() === "websocket";
  }

  /** The upgrade of <path>/{station_id}: the shared request checks, then an OCPP session. */
  upgradeHandler(
    gate: RequestGate,
  ): (req: Request, url: URL, remote: string) => Response | Upgrade<SocketContext> {
    return (req, url, remote) => {
      if (stationIdOf(url.pathname, this.opts.path) === undefined) {
        return new Response("Not Found: no station id\n", { status: 404 });
      }
      if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
        return new Response("Bad Request\n", { status: 400 });
      }
      const refusal = gate.refuse(req);
      if (refusal) return refusal;
      const { echo, refused } = selectOcppProtocol(req.headers.get("sec-websocket-protocol"));
      const { sid, clientSid, headers } = gate.identify(req, remote);
      const request: ConnectionRequest = {
        sid,
        url: req.url,
        headers,
        protocol: OCPP_PROTOCOL,
        encoder: this.executor.newEncoder(),
      };
      if (clientSid) request.clientSid = true;
      // OCPP-J: a station offering none of our sub-protocols gets the handshake, then a close
      if (refused) this.executor.refuse(request);
      return {
        kind: "upgrade",
        data: { request },
        protocol: echo,
        headers: { "X-AnyCable-Version": VERSION_STRING },
      };
    };
  }
}
