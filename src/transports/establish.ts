// Opening a node session for an HTTP transport (SSE now; long polling next): the request is
// answered only once authentication and the subscriptions it asks for are decided, with
// anycable-go's statuses (sse/handler.go): 401 when authentication is refused, 400 when it fails
// or a subscription is rejected or fails, 503 when the server is shutting down meanwhile.
import type { Node } from "../node/node.ts";
import type { Session } from "../node/session.ts";
import { CloseCode } from "../node/socket.ts";
import type { ClientCommand } from "../protocols/encoder.ts";

export type Established = { ok: true } | { ok: false; status: number; why: string };

/** The status for a session the node closed before the request was answered. */
function closedStatus(closeCode: number, during: "authentication" | "subscription"): Established {
  if (closeCode === CloseCode.goingAway) return { ok: false, status: 503, why: "server shutdown" };
  if (during === "subscription") return { ok: false, status: 400, why: "closed while subscribing" };
  if (closeCode === CloseCode.internalError) return { ok: false, status: 400, why: "authentication error" };
  return { ok: false, status: 401, why: "authentication failed" };
}

/**
 * Waits for the session's authentication (started by node.open), then runs the subscribe
 * commands one by one, stopping at the first that is not confirmed. `closeCode` reads the code the
 * node closed the transport's socket with (-1 while open).
 */
export async function establish(
  node: Node,
  session: Session,
  commands: readonly ClientCommand[],
  closeCode: () => number,
): Promise<Established> {
  await node.settled(session);
  if (session.state !== "connected") return closedStatus(closeCode(), "authentication");
  for (const cmd of commands) {
    const outcome = await node.subscribe(session, cmd);
    if (outcome === "confirmed") continue;
    if (outcome === "closed") return closedStatus(closeCode(), "subscription");
    return {
      ok: false,
      status: 400,
      why: outcome === "rejected" ? "subscription rejected" : "subscribe failed",
    };
  }
  return { ok: true };
}
