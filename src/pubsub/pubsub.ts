// Node-to-node pub/sub: how a publication received by one node reaches the clients of all nodes.
import type { Service } from "../app/service.ts";
import type { RemoteCommand, StreamMessage } from "../broadcast/publication.ts";

/** What pub/sub delivers to on this node (the node's hub and session registry). */
export interface PubSubHandler {
  broadcast(message: StreamMessage): void;
  executeCommand(command: RemoteCommand): void;
}

export interface PubSub extends Service {
  /** false for the local pub/sub: this node only. */
  readonly multiNode: boolean;
  /** This node has its first local subscriber of `stream`: deliveries for it must reach this node. */
  subscribe(stream: string): void;
  /** The last local subscriber of `stream` left. */
  unsubscribe(stream: string): void;
  broadcast(message: StreamMessage): void;
  broadcastCommand(command: RemoteCommand): void;
  /**
   * Resolves once what was broadcast so far is stored in the engine (postgres: its rows
   * committed), so a broadcaster can acknowledge its source only then. Absent: nothing to wait for.
   */
  drained?(): Promise<void>;
}
