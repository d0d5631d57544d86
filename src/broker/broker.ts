// The broker sits between what a node receives and pub/sub: it gives publications their offsets,
// keeps stream history and session snapshots, and tracks presence (anycable-go's broker.Broker).
import type { Service } from "../app/service.ts";
import type { RemoteCommand, StreamMessage, StreamPublication } from "../broadcast/publication.ts";

/** Why history could not be served (the client gets reject_history). */
export interface HistoryError {
  readonly error: string;
}

export interface Broker extends Service {
  /** The start-up line anycable-go prints for its broker. */
  announce(): string;
  readonly supportsHistory: boolean;
  /** Stores the publication (history, offsets) and hands it to pub/sub. */
  handleBroadcast(publication: StreamPublication): void;
  handleCommand(command: RemoteCommand): void;
  /** Messages of `stream` after `offset` within `epoch`. */
  historyFrom(stream: string, epoch: string, offset: number): Promise<StreamMessage[] | HistoryError>;
  /** Messages of `stream` published at or after `sinceUnixSec`. */
  historySince(stream: string, sinceUnixSec: number): Promise<StreamMessage[] | HistoryError>;
  /** Keeps a session's state so a reconnecting client can restore it. */
  commitSession(sid: string, snapshot: string): Promise<void>;
  /** The state committed for `sid`, or undefined. */
  restoreSession(sid: string): Promise<string | undefined>;
}

export function isHistoryError(v: StreamMessage[] | HistoryError): v is HistoryError {
  return !Array.isArray(v);
}
