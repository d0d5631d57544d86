// The one seam between a session and whoever decides what a client may do: the RPC backend
// (gRPC / HTTP), the identity layer (JWT, public mode) or the streams controller ($pubsub).

export type Status = "success" | "failure" | "error";

export interface SessionEnv {
  /** Full request URL of the connection. */
  url: string;
  /** Request headers proxied to the application (lower-cased names). */
  headers: Record<string, string>;
  /** Connection state (cstate), merged from every response. */
  cstate: Record<string, string>;
  /** Channel state (istate) per subscription identifier. */
  istate: Record<string, Record<string, string>>;
}

export interface ConnectResult {
  status: Status;
  identifiers: string;
  transmissions: string[];
  cstate?: Record<string, string>;
  /** -1: never needs a Disconnect call, 0: unknown, 1: needs one (anycable-go's DisconnectInterest). */
  disconnectInterest?: number;
  errorMsg?: string;
}

export interface CommandResult {
  status: Status;
  transmissions: string[];
  streams?: string[];
  stoppedStreams?: string[];
  stopAllStreams?: boolean;
  disconnect?: boolean;
  cstate?: Record<string, string>;
  istate?: Record<string, string>;
  disconnectInterest?: number;
  errorMsg?: string;
}

/**
 * A rejected promise means the call itself failed (transport error, backend down): the session
 * answers as anycable-go does for an RPC error. A resolved `null` means "not mine, pass through"
 * (or, once `signal` is aborted, "cancelled, nothing to apply").
 *
 * `signal` is the session's close signal (anycable-go's session close context): it is aborted when
 * the session closes, so a call still waiting for an RPC slot is dropped and one in flight is
 * cancelled. Controllers that answer locally ignore it; wrappers pass it on. Disconnect takes none:
 * it is made after the session closed.
 */
export interface Controller {
  start?(): Promise<void>;
  shutdown?(): Promise<void>;
  authenticate(sid: string, env: SessionEnv, signal?: AbortSignal): Promise<ConnectResult | null>;
  subscribe(
    sid: string,
    env: SessionEnv,
    identifiers: string,
    identifier: string,
    signal?: AbortSignal,
  ): Promise<CommandResult | null>;
  unsubscribe(
    sid: string,
    env: SessionEnv,
    identifiers: string,
    identifier: string,
    signal?: AbortSignal,
  ): Promise<CommandResult | null>;
  perform(
    sid: string,
    env: SessionEnv,
    identifiers: string,
    identifier: string,
    data: string,
    signal?: AbortSignal,
  ): Promise<CommandResult | null>;
  disconnect(sid: string, env: SessionEnv, identifiers: string, subscriptions: string[]): Promise<void>;
}
