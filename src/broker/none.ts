import type { RemoteCommand, StreamMessage, StreamPublication } from "../broadcast/publication.ts";
import type { PubSub } from "../pubsub/pubsub.ts";
import type { Broker, BrokerError, HistoryError, PresenceEvent, PresenceInfo } from "./broker.ts";

const NO_HISTORY: HistoryError = { error: "history not supported" };
const NO_PRESENCE: BrokerError = { error: "presence not supported" };

/**
 * No broker (anycable-go's LegacyBroker): publications pass to pub/sub as they are, with no
 * offsets, no history, no session cache and no presence.
 */
export class NoBroker implements Broker {
  readonly name = "broker (none)";
  readonly supportsHistory = false;
  readonly supportsPresence = false;

  constructor(private readonly pubsub: PubSub) {}

  announce(): string {
    return "Using no-op (legacy) broker";
  }

  async start(): Promise<void> {}
  async shutdown(): Promise<void> {}

  handleBroadcast(publication: StreamPublication): void {
    this.pubsub.broadcast(publication);
  }

  handleCommand(command: RemoteCommand): void {
    this.pubsub.broadcastCommand(command);
  }

  async historyFrom(): Promise<StreamMessage[] | HistoryError> {
    return NO_HISTORY;
  }

  async historySince(): Promise<StreamMessage[] | HistoryError> {
    return NO_HISTORY;
  }

  async commitSession(): Promise<void> {}

  async restoreSession(): Promise<string | undefined> {
    return undefined;
  }

  touchSessions(): void {}

  async presenceAdd(): Promise<PresenceEvent | undefined | BrokerError> {
    return NO_PRESENCE;
  }

  async presenceRemove(): Promise<PresenceEvent | undefined | BrokerError> {
    return NO_PRESENCE;
  }

  async presenceInfo(): Promise<PresenceInfo | BrokerError> {
    return NO_PRESENCE;
  }

  touchPresence(): void {}

  expire(): void {}
}
