import type { ClientSocket } from "../node/socket.ts";

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
  message(data: D, frame: string, byteLength: number): void;
  close(data: D, code: number, reason: string): void;
  drain(data: D): void;
}

export interface ServeSpec<D> {
  hostname: string;
  port: number;
  tls?: { certFile: string; keyFile: string };
  /** Frames above this size close the connection with 1009 (0 = no limit). */
  maxMessageSize: number;
  /** Send WebSocket-level pings (Deno can only do it through its idle timeout). */
  nativePingIntervalMs?: number;
  handle(req: Request, remoteAddr: string): Response | Upgrade<D> | Promise<Response | Upgrade<D>>;
  websocket?: WebSocketHandlers<D>;
}

export interface RunningServer {
  readonly port: number;
  /** Native topic fan-out (Bun only). */
  publish?(topic: string, frame: string): void;
  stop(): Promise<void>;
}

export interface Runtime {
  readonly name: "bun" | "deno";
  /** HTTP/2 client sessions must not outlive one call (see GrpcRpcOptions.sessionPerCall). */
  readonly http2SessionPerCall: boolean;
  serve<D>(spec: ServeSpec<D>): Promise<RunningServer>;
  readTextFile(path: string): string | undefined;
  onSignal(signal: "SIGINT" | "SIGTERM", fn: () => void): void;
  exit(code: number): never;
  pid(): number;
}
