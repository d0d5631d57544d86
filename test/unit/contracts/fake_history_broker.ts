// An in-memory broker with history and sessions: a test double, not a product backend. It runs
// the Broker contract's history and session tests today (only the pass-through broker exists), so
// those tests are known to pass on a correct broker before the memory / redis / nats brokers land.
import type { RemoteCommand, StreamMessage, StreamPublication } from "../../../src/broadcast/publication.ts";
import type {
  Broker,
  BrokerError,
  HistoryError,
  PresenceEvent,
  PresenceInfo,
} from "../../../src/broker/broker.ts";
import type { PubSub } from "../../../src/pubsub/pubsub.ts";

interface Entry {
  message: StreamMessage;
  atSec: number;
}

export class FakeHistoryBroker implements Broker {
  readonly name = "broker (fake history)";
  readonly supportsHistory = true;
  readonly supportsPresence = false;
  private readonly epoch = `ep-${Math.random().toString(36).slice(2, 10)}`;
  private readonly streams = new Map<string, Entry[]>();
  private readonly sessions = new Map<string, string>();

  constructor(private readonly pubsub: PubSub) {}

  announce(): string {
    return "Using fake history broker";
  }
  async start(): Promise<void> {}
  async shutdown(): Promise<void> {}

  handleBroadcast(p: StreamPublication): void {
    let entries = this.streams.get(p.stream);
    if (!entries) {
      entries = [];
      this.streams.set(p.stream, entries);
    }
    const message: StreamMessage = { ...p, offset: entries.length + 1, epoch: this.epoch };
    entries.push({ message, atSec: Math.floor(Date.now() / 1000) });
    // Stored before it is passed on, and asynchronously, as an engine-backed broker would.
    queueMicrotask(() => this.pubsub.broadcast(message));
  }

  handleCommand(c: RemoteCommand): void {
    this.pubsub.broadcastCommand(c);
  }

  async historyFrom(stream: string, epoch: string, offset: number): Promise<StreamMessage[] | HistoryError> {
    if (epoch !== this.epoch) return { error: "unknown epoch" };
    return (this.streams.get(stream) ?? []).map((e) => e.message).filter((m) => (m.offset ?? 0) > offset);
  }

  async historySince(stream: string, sinceUnixSec: number): Promise<StreamMessage[] | HistoryError> {
    return (this.streams.get(stream) ?? []).filter((e) => e.atSec >= sinceUnixSec).map((e) => e.message);
  }

  async commitSession(sid: string, snapshot: string): Promise<void> {
    this.sessions.set(sid, snapshot);
  }

  async restoreSession(sid: string): Promise<string | undefined> {
    return this.sessions.get(sid);
  }

  touchSessions(): void {}

  async presenceAdd(): Promise<PresenceEvent | undefined | BrokerError> {
    return { error: "presence not supported" };
  }

  async presenceRemove(): Promise<PresenceEvent | undefined | BrokerError> {
    return { error: "presence not supported" };
  }

  async presenceInfo(): Promise<PresenceInfo | BrokerError> {
    return { error: "presence not supported" };
  }

  touchPresence(): void {}

  expire(): void {}
}
