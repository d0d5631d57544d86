// The WebSocket transport: upgrade checks, sub-protocol choice, ?pi / ?ptp, and the socket
// callbacks that hand frames to the node.
import type { Logger } from "../../log/logger.ts";
import type { Node } from "../../node/node.ts";
import type { Session } from "../../node/session.ts";
import type { ConnectionRequest } from "../../node/socket.ts";
import { selectProtocol } from "../../protocols/registry.ts";
import type { Upgrade, WebSocketHandlers } from "../../runtime/types.ts";
import { VERSION_STRING } from "../../version.ts";
import type { RequestGate } from "../request.ts";

/** The offered sub-protocols as a debug line shows them: a token entry (anycable-token.<jwt>) filtered. */
function redactProtocols(offered: string): string {
  return offered
    .split(",")
    .map((p) => (p.trim().startsWith("anycable-token.") ? "anycable-token.[FILTERED]" : p.trim()))
    .join(",");
}

/** Longer restore ids are ignored: no session id we hand out comes close. */
const MAX_SID_LENGTH = 256;

export interface SocketContext {
  request: ConnectionRequest;
  session?: Session;
}

export function wsUpgradeHandler(
  gate: RequestGate,
  logger: Logger,
): (req: Request, url: URL, remote: string) => Response | Upgrade<SocketContext> {
  const log = logger.with({ context: "ws" });
  return (req, url, remote) => {
    if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return new Response("Bad Request\n", { status: 400 });
    }
    const refusal = gate.refuse(req);
    if (refusal) return refusal;
    const offered = req.headers.get("sec-websocket-protocol");
    const protocol = selectProtocol(offered);
    const pi = url.searchParams.get("pi");
    let pingIntervalSec: number | undefined;
    if (pi !== null && pi !== "") {
      if (/^-?\d+$/.test(pi)) pingIntervalSec = Number(pi);
      else log.warn("invalid ping interval value, must be integer", { val: pi });
    }
    const ptp = url.searchParams.get("ptp");
    const { sid, clientSid, headers } = gate.identify(req, remote);
    // optional fields only when present: JSC sizes the object by its fields (80 B with the two
    // ping overrides as undefined, 48 B without)
    const request: ConnectionRequest = { sid, url: req.url, headers, protocol };
    if (pingIntervalSec !== undefined) request.pingIntervalSec = pingIntervalSec;
    if (ptp) request.pingPrecision = ptp;
    if (clientSid) request.clientSid = true;
    if (protocol === "" && offered && log.enabled("debug"))
      log.debug("no subprotocol negotiated", { sid, client: redactProtocols(offered) });
    // anycable-go: the header first, then the query parameter.
    const restoreSid = req.headers.get("x-anycable-restore-sid") || url.searchParams.get("sid");
    if (restoreSid && restoreSid.length <= MAX_SID_LENGTH) request.restoreSid = restoreSid;
    return {
      kind: "upgrade",
      data: { request },
      protocol,
      headers: { "X-AnyCable-Version": VERSION_STRING },
    };
  };
}

export function wsCallbacks(node: Node, logger?: Logger): WebSocketHandlers<SocketContext> {
  // anycable-go's per-connection lines (context=ws), built only at debug level
  const log = logger?.enabled("debug") ? logger.with({ context: "ws" }) : undefined;
  return {
    open(socket, ctx) {
      ctx.session = node.open(ctx.request, socket);
      log?.debug("WebSocket session established", { sid: ctx.session.sid });
    },
    message(ctx, frame, size) {
      if (ctx.session) node.message(ctx.session, frame, size);
    },
    close(ctx) {
      if (ctx.session) node.closed(ctx.session);
      log?.debug("WebSocket session completed", { sid: ctx.session?.sid ?? ctx.request.sid });
    },
    drain(ctx) {
      if (ctx.session) node.drained(ctx.session);
    },
    pong(ctx) {
      if (ctx.session) node.keepalive(ctx.session);
    },
  };
}
