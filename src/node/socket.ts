import type { Encoder, Frame } from "../protocols/encoder.ts";

/** WebSocket close codes the node closes sockets with. */
export const CloseCode = {
  normal: 1000,
  goingAway: 1001,
  abnormal: 1006,
  policyViolation: 1008,
  messageTooBig: 1009,
  internalError: 1011,
} as const;

/**
 * A send result: the socket is closing (the client's close frame arrived, the node will hear of the
 * close next). Nothing was sent, and it says nothing about the client's speed.
 */
export const SOCKET_CLOSING = -3;

/** What the node needs from a runtime's WebSocket; implemented in src/runtime/. */
export interface ClientSocket {
  /**
   * Sends a frame (text for a string, binary for bytes). Returns the bytes written, -1 when it was
   * queued behind unsent data, 0 when the runtime dropped it (its backlog limit), SOCKET_CLOSING.
   */
  send(frame: Frame): number;
  /** Bytes accepted by the runtime but not yet written to the network. */
  bufferedAmount(): number;
  close(code: number, reason: string): void;
  /** Sends a WebSocket-level ping (for --enable_native_pings). */
  ping?(): void;
  joinTopic?(topic: string): void;
  leaveTopic?(topic: string): void;
  /**
   * Stops / restarts reading from the connection, so a client sending faster than its commands
   * are worked through feels TCP backpressure (as anycable-go's blocking read loop gives it).
   * Absent where the runtime cannot pause a WebSocket (an application's own Deno.serve).
   */
  pauseReading?(): void;
  resumeReading?(): void;
}

/** The request a connection was opened with, reduced to what sessions and controllers use. */
export interface ConnectionRequest {
  /** Proposed by the transport; Node.open replaces one that a live session already has. */
  sid: string;
  url: string;
  /** Headers proxied to the application (already filtered and lower-cased). */
  headers: Record<string, string>;
  /** Selected sub-protocol ("" when none was negotiated: plain JSON session). */
  protocol: string;
  /** Per-client ping interval override in seconds (?pi=), or undefined. */
  pingIntervalSec?: number;
  /** Per-client ping timestamp precision (?ptp=), or undefined. */
  pingPrecision?: string;
  /** The session to restore (X-ANYCABLE-RESTORE-SID or ?sid=), extended protocol only. */
  restoreSid?: string;
  /** `sid` is the client's X-Request-ID: it must not name a cached session either. */
  clientSid?: boolean;
  /** The transport's own wire format (SSE), instead of the sub-protocol's encoder. */
  encoder?: Encoder;
  /** The client cannot answer pings (SSE): it is never held to --pong_timeout. */
  oneWay?: boolean;
  /**
   * Connection identifiers the transport already decided (Durable Streams with --ds_skip_auth):
   * the session is connected without asking the controller, and needs no Disconnect call.
   */
  identifiers?: string;
}
