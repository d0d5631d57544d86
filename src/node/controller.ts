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

// istate keys a controller sets to give a subscription features the node implements itself.
/** istate key naming a subscription's whisper stream (set by the streams controller or RPC). */
export const WHISPER_STREAM_STATE = "$w";
/** istate key naming a subscription's presence stream. */
export const PRESENCE_STREAM_STATE = "$p";

/** A presence change a backend asks for with a command's answer (anycable-rails' join_presence). */
export interface PresenceChange {
  /** "join" or "leave" (anything else is logged and ignored, as anycable-go does). */
  type: string;
  id: string;
  info?: unknown;
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
  presence?: PresenceChange;
}

/** Who is calling: the connection (for authenticate / disconnect). */
export interface ConnectionContext {
  readonly sid: string;
  readonly env: SessionEnv;
  /** The connection identifiers; "" while authenticating. */
  readonly identifiers: string;
  /**
   * The session's close signal (anycable-go's session close context): aborted when the session
   * closes, so a call still waiting for an RPC slot is dropped and one in flight is cancelled.
   * Controllers that answer locally ignore it. Absent when no controller in the chain can cancel
   * (no RPC backend), and on disconnect, which is made after the close.
   */
  readonly signal?: AbortSignal;
}

/** A call about one subscription. */
export interface ChannelContext extends ConnectionContext {
  readonly identifier: string;
}

/**
 * A rejected promise means the call itself failed (transport error, backend down): the session
 * answers as anycable-go does for an RPC error. A resolved `null` means "not mine, pass through"
 * (or, once `ctx.signal` is aborted, "cancelled, nothing to apply").
 *
 * The node builds one context per call and every wrapper hands that same object on: a call
 * through the whole chain allocates one context, not one per layer.
 */
export interface Controller {
  start?(): Promise<void>;
  shutdown?(): Promise<void>;
  authenticate(ctx: ConnectionContext): Promise<ConnectResult | null>;
  subscribe(ctx: ChannelContext): Promise<CommandResult | null>;
  unsubscribe(ctx: ChannelContext): Promise<CommandResult | null>;
  perform(ctx: ChannelContext, data: string): Promise<CommandResult | null>;
  /** Made after the session closed: `ctx` carries no signal. */
  disconnect(ctx: ConnectionContext, subscriptions: string[]): Promise<void>;
}
