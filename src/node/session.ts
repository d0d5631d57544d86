import type { HubSubscriber } from "../hub/hub.ts";
import type { SessionEnv } from "./controller.ts";
import type { ClientSocket, ConnectionRequest } from "./socket.ts";

export type SessionState = "connecting" | "connected" | "closed";

/**
 * Per-connection state. Kept deliberately small (no timers, no closures per message): the node's
 * single ticker drives pings and slow-client checks for every session.
 */
export class Session implements HubSubscriber {
  state: SessionState = "connecting";
  identifiers = "";
  readonly env: SessionEnv;
  /** identifier -> streams of that subscription */
  readonly subscriptions = new Map<string, Set<string>>();
  /** Commands run one at a time, in arrival order, like anycable-go's read loop. */
  chain: Promise<void> = Promise.resolve();
  /** Set after a frame anycable-go could not decode: it stops reading from that client. */
  readingStopped = false;
  disconnectable = false;
  /** A server-side close is under way: its final frames must not re-trigger slow-client checks. */
  closing = false;
  nextPingAt = 0;
  pingIntervalMs: number;
  pingPrecision: string;
  /** When the socket was first seen holding unsent data, 0 when it is drained. */
  backpressuredSince = 0;
  lastBuffered = 0;
  /** Created on first use: aborted when the session closes (see `signal`). */
  private closeController: AbortController | undefined;

  constructor(
    readonly request: ConnectionRequest,
    readonly socket: ClientSocket,
    defaultPingIntervalMs: number,
    defaultPrecision: string,
    private readonly onSend: (session: Session, frame: string, result: number) => void,
  ) {
    this.env = { url: request.url, headers: request.headers, cstate: {}, istate: {} };
    this.pingIntervalMs =
      request.pingIntervalSec !== undefined ? request.pingIntervalSec * 1000 : defaultPingIntervalMs;
    this.pingPrecision = request.pingPrecision ?? defaultPrecision;
  }

  get sid(): string {
    return this.request.sid;
  }

  get isClosed(): boolean {
    return this.state === "closed";
  }

  /**
   * Aborted once the session is closed (anycable-go's session close context): controller calls
   * still waiting for an RPC slot are dropped, calls in flight are cancelled.
   */
  get signal(): AbortSignal {
    if (!this.closeController) {
      this.closeController = new AbortController();
      if (this.state === "closed") this.closeController.abort();
    }
    return this.closeController.signal;
  }

  /** Cancels the session's pending controller calls; called when it closes. */
  cancelCalls(): void {
    this.closeController?.abort();
  }

  deliver(frame: string): void {
    if (this.state === "closed") return;
    this.onSend(this, frame, this.socket.send(frame));
  }

  joinTopic(topic: string): void {
    this.socket.joinTopic?.(topic);
  }

  leaveTopic(topic: string): void {
    this.socket.leaveTopic?.(topic);
  }

  subscriptionIds(): string[] {
    return [...this.subscriptions.keys()];
  }
}
