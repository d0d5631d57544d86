import type { ClientSocket } from "../node/socket.ts";
import type { Frame } from "../protocols/encoder.ts";

/**
 * Unsent bytes past which a runtime refuses a frame (send returns 0, the node drops the client as
 * too slow at once): Bun's own backpressureLimit, and the same bound enforced by the Deno adapter.
 * It caps what one turn's burst can queue for a client that does not read; ws_max_pending_size is
 * judged over time below it (node/backpressure.ts).
 */
export const RUNTIME_BACKLOG_LIMIT = 64 * 1024 * 1024;

/** The request passed the WebSocket route checks: upgrade it, remembering `data` for the socket. */
export interface Upgrade<D> {
  kind: "upgrade";
  data: D;
  /** Sub-protocol to select ("" = none). */
  protocol: string;
  headers: Record<string, string>;
}

export interface WebSocketHandlers<D> {
  open(socket: ClientSocket, data: D): void;
  /** Text frames arrive as strings, binary ones as bytes. */
  message(data: D, frame: Frame, byteLength: number): void;
  close(data: D, code: number, reason: string): void;
  drain(data: D): void;
  /** A WebSocket pong frame arrived (runtimes that report them: Bun, the node:http Deno server). */
  pong?(data: D): void;
}

/** Everything a runtime needs to answer requests: routes, WebSocket callbacks, limits. */
export interface HandlerSpec<D> {
  /** Frames above this size close the connection with 1009 (0 = no limit). */
  maxMessageSize: number;
  /** Send WebSocket-level pings (Deno can only do it through its idle timeout). */
  nativePingIntervalMs?: number;
  /**
   * A WebSocket the server closed has this long to get its close frame out; then its connection
   * is cut, unsent data and all (--ws_write_timeout). Bun frees such connections by itself.
   */
  closeTimeoutMs?: number;
  /** Negotiate permessage-deflate with clients that offer it (--enable_ws_compression). */
  compression?: boolean;
  handle(req: Request, remoteAddr: string): Response | Upgrade<D> | Promise<Response | Upgrade<D>>;
  websocket?: WebSocketHandlers<D>;
}

/** Where a listener reports what happens below the routes (a failing handler, accept trouble). */
export interface ListenerLog {
  info(msg: string, attrs?: Record<string, unknown>): void;
  warn(msg: string, attrs?: Record<string, unknown>): void;
  error(msg: string, attrs?: Record<string, unknown>): void;
}

export interface ServeSpec<D> extends HandlerSpec<D> {
  hostname: string;
  port: number;
  tls?: { certFile: string; keyFile: string };
  log?: ListenerLog;
}

/**
 * A HandlerSpec in the runtime's own terms, for mounting in an application's server:
 * `fetch(req, serverOrInfo)` is Bun's (req, server) or Deno's (req, info); `websocket` is the
 * object Bun.serve takes (Deno sets handlers per socket and has none).
 */
export interface MountedHandler {
  fetch(req: Request, server?: unknown): Response | Promise<Response>;
  readonly websocket?: object;
  /** Native topic fan-out (Bun), through the server the upgrades came from. */
  readonly publish?: (topic: string, frame: Frame) => void;
}

export interface RunningServer {
  readonly port: number;
  /** Native topic fan-out (Bun only). */
  publish?(topic: string, frame: Frame): void;
  stop(): Promise<void>;
}

export interface Runtime {
  readonly name: "bun" | "deno";
  /**
   * How many calls one HTTP/2 client session may carry before it is retired and closed by us
   * (0: no limit; see GrpcRpcOptions.maxStreamsPerSession).
   */
  readonly http2MaxStreamsPerSession: number;
  mount<D>(spec: HandlerSpec<D>): MountedHandler;
  serve<D>(spec: ServeSpec<D>): Promise<RunningServer>;
  readTextFile(path: string): string | undefined;
  onSignal(signal: "SIGINT" | "SIGTERM", fn: () => void): void;
  exit(code: number): never;
  pid(): number;
}
