// The broker sits between what a node receives and pub/sub: it gives publications their offsets,
// keeps stream history and session snapshots, and tracks presence (anycable-go's broker.Broker).

import { Buffer } from "node:buffer";
import type { Service } from "../app/service.ts";
import type { RemoteCommand, StreamMessage, StreamPublication } from "../broadcast/publication.ts";

/** Why a broker could not serve a request (history → reject_history, presence → logged). */
export interface BrokerError {
  readonly error: string;
}

/** Why history could not be served (the client gets reject_history). */
export type HistoryError = BrokerError;

/** A presence change, as subscribers receive it in a `presence` message. */
export interface PresenceEvent {
  readonly type: "join" | "leave";
  readonly id: string;
  /** The record's info as the client or backend gave it (join only). */
  readonly info?: unknown;
}

/** One present user of a stream. */
export interface PresenceRecord {
  readonly id: string;
  readonly info?: unknown;
}

/** The answer to a `presence` command and to the REST API's presence endpoint. */
export interface PresenceInfo {
  readonly type: "info";
  /** Unique presence ids in the stream. */
  readonly total: number;
  /** Absent when the caller asked for totals only. */
  readonly records?: PresenceRecord[];
}

/**
 * Told about every presence change the broker decides on, including the leaves of records that
 * expired (anycable-go's broker.Presenter): the node broadcasts them to the stream.
 */
export interface Presenter {
  /** `sid`: the session whose join it is, when the change was one (its own client may be spared it). */
  presenceChanged(stream: string, event: PresenceEvent, sid?: string): void;
}

export interface Broker extends Service {
  /** The start-up line anycable-go prints for its broker. */
  announce(): string;
  readonly supportsHistory: boolean;
  readonly supportsPresence: boolean;
  /** Stores the publication (history, offsets; not when `transient`) and hands it to pub/sub. */
  handleBroadcast(publication: StreamPublication): void;
  handleCommand(command: RemoteCommand): void;
  /**
   * Resolves once every publication handed in so far went on to pub/sub (with its offset, or
   * without one when the engine could not give it in time), so a broadcaster acknowledges its
   * source only after that. Absent: publications go on at once (or within a microtask).
   */
  drained?(): Promise<void>;
  /** Messages of `stream` after `offset` within `epoch`, in order. */
  historyFrom(stream: string, epoch: string, offset: number): Promise<StreamMessage[] | HistoryError>;
  /** Messages of `stream` published at or after `sinceUnixSec`, in order. */
  historySince(stream: string, sinceUnixSec: number): Promise<StreamMessage[] | HistoryError>;
  /**
   * Snapshots are kept in this process only (the memory broker): a live session's snapshot is then
   * written once, when it closes, and a restore of a session still live here is answered by the
   * node from the session itself. Saves a serialized snapshot per live connection (272 B for one
   * public stream, bench/README "Ext protocol + --broker=memory").
   */
  readonly localSessions?: boolean;
  /** Keeps a session's state (opaque text) for --sessions_ttl so a reconnecting client can restore it. */
  commitSession(sid: string, snapshot: string): Promise<void>;
  /** The state committed for `sid`, or undefined (unknown or expired). */
  restoreSession(sid: string): Promise<string | undefined>;
  /** Restarts the TTL of these sessions' snapshots (live sessions, and a session that just closed). */
  touchSessions(sids: readonly string[]): void;
  /**
   * Adds a presence record of `sid` under presence id `pid`; the event (also given to the
   * presenter) when `pid` is new to the stream, undefined when it was already present.
   */
  presenceAdd(
    stream: string,
    sid: string,
    pid: string,
    info: unknown,
  ): Promise<PresenceEvent | undefined | BrokerError>;
  /** Removes the record of `sid`; the leave event when it was the last session of its presence id. */
  presenceRemove(stream: string, sid: string): Promise<PresenceEvent | undefined | BrokerError>;
  presenceInfo(stream: string, options: { returnRecords: boolean }): Promise<PresenceInfo | BrokerError>;
  /**
   * Restarts the --presence_ttl of every presence record of these sessions: live sessions keep
   * theirs, and a closed session's records expire (leave) presence_ttl after its last touch.
   */
  touchPresence(sids: readonly string[]): void;
  /** Drops what outlived its TTL (history, sessions, presence); called by the cable's ticker. */
  expire(nowMs: number): void;
}

export function isBrokerError(v: unknown): v is BrokerError {
  return (
    typeof v === "object" && v !== null && !Array.isArray(v) && typeof (v as BrokerError).error === "string"
  );
}

export function isHistoryError(v: StreamMessage[] | HistoryError): v is HistoryError {
  return !Array.isArray(v);
}

/** Longest presence id a broker keeps (UTF-8 bytes): ids are held per stream and sent in every event. */
export const PRESENCE_ID_MAX_BYTES = 1024;
/** Largest presence info a broker keeps (its JSON, UTF-8 bytes): every info request returns it. */
export const PRESENCE_INFO_MAX_BYTES = 16 * 1024;

/** Why a presence record may not be kept (an empty or oversized id, unserialisable or oversized info). */
export function presenceProblem(pid: string, info: unknown): BrokerError | undefined {
  if (typeof pid !== "string" || pid === "") return { error: "presence ID is empty" };
  if (Buffer.byteLength(pid) > PRESENCE_ID_MAX_BYTES) {
    return { error: `presence ID is longer than ${PRESENCE_ID_MAX_BYTES} bytes` };
  }
  let json: string | undefined;
  try {
    json = JSON.stringify(info);
  } catch {
    return { error: "presence info is not serializable to JSON" };
  }
  if (json !== undefined && Buffer.byteLength(json) > PRESENCE_INFO_MAX_BYTES) {
    return { error: `presence info is larger than ${PRESENCE_INFO_MAX_BYTES} bytes` };
  }
  return undefined;
}

/** anycable-go omits a nil info (omitempty), so a record without one carries no `info` key. */
export function withInfo<T extends object>(base: T, info: unknown): T & { info?: unknown } {
  return info === undefined || info === null ? base : { ...base, info };
}

/** The value a history read answers when the engine failed it (the failure is logged by the broker). */
export function historyUnavailable(err: Error): HistoryError {
  return { error: `history is unavailable: ${err.message}` };
}

/** The value a session or presence operation answers when the engine failed it. */
export function operationFailed(what: string, err: Error): BrokerError {
  return { error: `${what} failed: ${err.message}` };
}

/**
 * Tells the presenter (the node) of a presence change. A failure there must not undo or stop the
 * broker's bookkeeping, so it is swallowed.
 */
export function tellPresenter(
  presenter: Presenter | undefined,
  stream: string,
  event: PresenceEvent,
  sid?: string,
): void {
  try {
    presenter?.presenceChanged(stream, event, sid);
  } catch {
    // the node's own failure, reported there
  }
}
