// An in-memory multi-node pub/sub: a test double, not a product backend. It runs the PubSub
// contract's multi-node tests today (no real multi-node backend exists yet), so those tests are
// known to pass on a correct backend before Redis / NATS / Postgres pub/sub arrive. Like a real
// engine it delivers asynchronously, per node in publish order, and routes by subscription.
import type { RemoteCommand, StreamMessage } from "../../../src/broadcast/publication.ts";
import type { PubSub, PubSubHandler } from "../../../src/pubsub/pubsub.ts";

export class FakeEngine {
  readonly nodes = new Set<FakeClusterPubSub>();
  /** Delivery happens on a later macrotask, as with a network round trip. */
  deliver(fn: () => void): void {
    setTimeout(fn, 0);
  }
}

export class FakeClusterPubSub implements PubSub {
  readonly name = "pubsub (fake cluster)";
  readonly multiNode = true;
  private readonly streams = new Set<string>();
  private running = false;

  constructor(
    private readonly engine: FakeEngine,
    private readonly handler: PubSubHandler,
  ) {}

  async start(): Promise<void> {
    this.running = true;
    this.engine.nodes.add(this);
  }

  async shutdown(): Promise<void> {
    this.running = false;
    this.engine.nodes.delete(this);
    this.streams.clear();
  }

  subscribe(stream: string): void {
    this.streams.add(stream);
  }

  unsubscribe(stream: string): void {
    this.streams.delete(stream);
  }

  broadcast(message: StreamMessage): void {
    // A copy per node, as a serialising engine would hand over.
    const wire = JSON.stringify(message);
    for (const node of this.engine.nodes) {
      if (!node.streams.has(message.stream)) continue;
      this.engine.deliver(() => {
        if (node.running) node.handler.broadcast(JSON.parse(wire));
      });
    }
  }

  broadcastCommand(command: RemoteCommand): void {
    const wire = JSON.stringify(command);
    for (const node of this.engine.nodes) {
      this.engine.deliver(() => {
        if (node.running) node.handler.executeCommand(JSON.parse(wire));
      });
    }
  }
}
