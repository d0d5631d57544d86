// The Pusher adapter assembled from the configuration: the WebSocket endpoint /app/<key> (its
// sessions speak the internal "pusher" protocol through PusherExecutor), the HTTP API under
// /apps/<app_id>/ and the webhooks. The composition root (app/cable.ts) mounts the parts.
import type { PublicationHandler } from "../../broadcast/broadcaster.ts";
import type { Broker, PresenceEvent } from "../../broker/broker.ts";
import type { Logger } from "../../log/logger.ts";
import type { Node } from "../../node/node.ts";
import type { ConnectionRequest } from "../../node/socket.ts";
import type { Upgrade } from "../../runtime/types.ts";
import type { RequestGate } from "../../transports/request.ts";
import type { SocketContext } from "../../transports/ws/handler.ts";
import { VERSION_STRING } from "../../version.ts";
import { apiPrefix, createPusherApi } from "./api.ts";
import { Channels } from "./channels.ts";
import { PusherExecutor } from "./executor.ts";
import type { Options } from "./options.ts";
import { newSocketId, PUSHER_PROTOCOL, SOCKET_ID_PATTERN } from "./protocol.ts";
import { Webhooks } from "./webhooks.ts";

export { fromConfig, type Options } from "./options.ts";

export interface PusherDeps {
  broker: Broker;
  logger: Logger;
  maxBodyBytes?: number;
}

export class Pusher {
  readonly executor: PusherExecutor;
  readonly channels: Channels;
  readonly webhooks: Webhooks | undefined;
  /** The WebSocket endpoint, /app/<key>. */
  readonly wsPath: string;
  /** The HTTP API's base path, /apps/<app_id>. */
  readonly apiPath: string;
  private node: Node | undefined;
  private readonly log: Logger;

  constructor(
    readonly opts: Options,
    private readonly deps: PusherDeps,
  ) {
    this.log = deps.logger.with({ context: "pusher" });
    this.webhooks =
      opts.webhookUrl !== ""
        ? new Webhooks({
            url: opts.webhookUrl,
            appKey: opts.appKey,
            secret: opts.secret,
            events: opts.webhookEvents,
            logger: deps.logger,
          })
        : undefined;
    this.channels = new Channels(deps.broker, this.webhooks, deps.logger);
    this.executor = new PusherExecutor({
      appKey: opts.appKey,
      secret: opts.secret,
      broker: deps.broker,
      channels: this.channels,
      webhooks: this.webhooks,
      logger: deps.logger,
      reidentify: (session, ids) => this.node?.setIdentifiers(session, ids),
    });
    this.wsPath = `/app/${opts.appKey}`;
    this.apiPath = apiPrefix(opts.appId);
  }

  /** The node its sessions live in (built after the executor, which the node is given). */
  attach(node: Node): void {
    this.node = node;
  }

  /** A presence change the broker decided on; true when it was Pusher's own bookkeeping. */
  presenceChanged(stream: string, event: PresenceEvent): boolean {
    return this.channels.presenceChanged(stream, event);
  }

  /** The upgrade of /app/<key>: the shared request checks, then a Pusher session. */
  upgradeHandler(
    gate: RequestGate,
  ): (req: Request, url: URL, remote: string) => Response | Upgrade<SocketContext> {
    return (req, _url, remote) => {
      if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
        return new Response("Bad Request\n", { status: 400 });
      }
      const refusal = gate.refuse(req);
      if (refusal) return refusal;
      const { sid, clientSid, headers } = gate.identify(req, remote);
      // A client's X-Request-ID is its socket id only in Pusher's format (as anycable-go takes it).
      const own = clientSid && SOCKET_ID_PATTERN.test(sid);
      const request: ConnectionRequest = {
        sid: own ? sid : newSocketId(),
        url: req.url,
        headers,
        protocol: PUSHER_PROTOCOL,
        // Pusher clients ping (activity_timeout); the server sends no pings of its own.
        pingIntervalSec: 0,
      };
      if (own) request.clientSid = true;
      return {
        kind: "upgrade",
        data: { request },
        protocol: "",
        headers: { "X-AnyCable-Version": VERSION_STRING },
      };
    };
  }

  /** The HTTP API handler, or undefined when there is no secret to verify requests with. */
  apiHandler(handler: PublicationHandler): ((req: Request) => Promise<Response>) | undefined {
    if (this.opts.secret === "") return undefined;
    return createPusherApi(
      handler,
      this.deps.broker,
      this.channels,
      {
        appId: this.opts.appId,
        appKey: this.opts.appKey,
        secret: this.opts.secret,
        maxBodyBytes: this.deps.maxBodyBytes,
      },
      this.deps.logger,
    );
  }

  /** Start-up warnings about settings that leave parts of the protocol unusable. */
  warnings(): void {
    if (this.opts.secret === "") {
      this.log.warn(
        "Pusher secret is empty (set --pusher_secret or --secret): private and presence channels, sign-in and the HTTP API are refused",
      );
    }
    if (!this.deps.broker.supportsPresence) {
      this.log.warn("Pusher presence channels need a broker (--broker=memory, or --presets=broker)");
    }
  }
}
