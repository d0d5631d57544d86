// The Executor seam: a foreign wire protocol (Pusher; later GraphQL over WebSocket, OCPP) served by
// the node. Its sessions carry the protocol's internal name as their `request.protocol`; the node
// asks the executor what a decoded command means and lets its own controller answer the session's
// calls instead of the application's chain (anycable-go's node.Executor plus the session's
// controller route).
import type { ClientCommand } from "../protocols/encoder.ts";
import type { Controller } from "./controller.ts";
import type { Session } from "./session.ts";

/**
 * The command an executor with `deferredAuthentication` runs through `next` to authenticate its
 * session (the node's authenticate, as at open for every other session). No decoder produces it.
 */
export const AUTHENTICATE_COMMAND = "$authenticate";

/** Runs a node command (subscribe, unsubscribe, whisper, ping, ...) as the node would. */
export type RunCommand = (cmd: ClientCommand) => Promise<string | undefined>;

export interface Executor {
  /** Answers authenticate / subscribe / unsubscribe / perform / disconnect for this protocol's sessions. */
  readonly controller: Controller;
  /**
   * A fresh session id in the protocol's format, for when the proposed one is taken (default:
   * the node's own ids).
   */
  newSid?(): string;
  /**
   * One decoded command of a connected session: run it through `next` (perhaps changed), answer
   * it itself, or both. Returns an error text for the node to count and log, or undefined.
   */
  handle(session: Session, cmd: ClientCommand, next: RunCommand): Promise<string | undefined>;
  /** false: a session's own presence join is not sent back to it (Pusher has no member_added for oneself). */
  readonly ownPresenceEvents?: boolean;
  /**
   * The node does not authenticate this protocol's sessions when they open: the executor gets
   * their commands while they are connecting and runs AUTHENTICATE_COMMAND when its protocol says
   * (GraphQL's connection_init carries the connection params the application authenticates with).
   */
  readonly deferredAuthentication?: boolean;
  /** A session of this protocol opened (before authentication). */
  opened?(session: Session): void;
  /** The WebSocket close code of a server-side disconnect (or a refused authentication) in this protocol (default: the node's). */
  closeCode?(reconnect: boolean, code: number): number;
  /** The session closed; the node has already dropped its subscriptions from the hub. */
  closed?(session: Session): void;
}
