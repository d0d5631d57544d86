// The node's ClientSocket for one long-polling session: server messages wait in the session's
// PollQueue until a poll request takes them. The queue is the send buffer, with its own bounds:
// a message that waits is the time between polls, not a slow network, so the WebSocket's
// pending-size and write-timeout rules do not apply (bufferedAmount is 0); a client that does not
// poll for --poll_keepalive_timeout is let go instead. Runtime-free.
import type { Session } from "../../node/session.ts";
import { type ClientSocket, SOCKET_CLOSING } from "../../node/socket.ts";
import type { Frame } from "../../protocols/encoder.ts";
import type { PollSession } from "./sessions.ts";

const utf8 = new TextDecoder();

/** A poll request the transport holds open until messages are due or the poll interval passes. */
export interface HeldPoll {
  /** When it arrived (Date.now()). */
  since: number;
  headers: Record<string, string>;
  signal: AbortSignal;
  onAbort: () => void;
  resolve: (response: Response) => void;
}

/** The transport's state of one poll session (the table's data). */
export interface LpState {
  socket: LpSocket;
  session: Session | undefined;
  held: HeldPoll | undefined;
}

/** What a socket tells its transport (one object for all sockets: no closures per session). */
export interface LpSocketEvents {
  /** The node closed the session: a held poll gets the last messages now. */
  closed(poll: PollSession<LpState>): void;
}

export class LpSocket implements ClientSocket {
  /** The code of the node's close (-1 while open). */
  closeCode = -1;
  /** Set once, right after the table made the session. */
  poll!: PollSession<LpState>;

  constructor(private readonly events: LpSocketEvents) {}

  send(frame: Frame): number {
    if (this.closeCode >= 0) return SOCKET_CLOSING;
    const text = typeof frame === "string" ? frame : utf8.decode(frame);
    const queue = this.poll.queue;
    if (!queue.push(text, Date.now())) {
      // More is waiting than the bounds allow: the messages are dropped, so that the node's
      // too_slow disconnect that follows this 0 still reaches the client on its next poll.
      queue.reset();
      return 0;
    }
    return text.length;
  }

  bufferedAmount(): number {
    return 0;
  }

  close(code: number, _reason: string): void {
    if (this.closeCode >= 0) return;
    this.closeCode = code;
    this.events.closed(this.poll);
  }
}
