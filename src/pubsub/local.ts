import type { RemoteCommand, StreamMessage } from "../broadcast/publication.ts";
import type { PubSub, PubSubHandler } from "./pubsub.ts";

/**
 * Pub/sub for one node: publications go straight to this node's handler (anycable-go's
 * LegacySubscriber). Keeps the pipeline's shape until a real engine is configured.
 */
export class LocalPubSub implements PubSub {
  readonly name = "pubsub (local)";
  readonly multiNode = false;

  constructor(private readonly handler: PubSubHandler) {}

  async start(): Promise<void> {}
  async shutdown(): Promise<void> {}
  subscribe(_stream: string): void {}
  unsubscribe(_stream: string): void {}

  broadcast(message: StreamMessage): void {
    this.handler.broadcast(message);
  }

  broadcastCommand(command: RemoteCommand): void {
    this.handler.executeCommand(command);
  }
}
