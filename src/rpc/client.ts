// The one interface both RPC transports implement. Errors are ConnectError values carrying gRPC
// status codes: gRPC failures natively, HTTP RPC failures mapped the way anycable-go maps them, so
// the retry policy and the metrics treat both transports alike.
import type {
  CommandMessage,
  CommandResponse,
  ConnectionRequest,
  ConnectionResponse,
  DisconnectRequest,
  DisconnectResponse,
} from "../../gen/anycable/rpc_pb.ts";

/** Comma-separated RPC proto versions this server speaks, sent as `protov` metadata. */
export const PROTO_VERSIONS = "v1";

export interface CallOptions {
  /** Session id, sent as `sid` metadata. */
  sid: string;
  /** Deadline of this request in ms (undefined: none). */
  timeoutMs?: number;
  /** The session's close signal: aborting it cancels the request. */
  signal?: AbortSignal;
}

export interface RpcClient {
  readonly impl: "grpc" | "http";
  connect(req: ConnectionRequest, opts: CallOptions): Promise<ConnectionResponse>;
  command(req: CommandMessage, opts: CallOptions): Promise<CommandResponse>;
  disconnect(req: DisconnectRequest, opts: CallOptions): Promise<DisconnectResponse>;
  /** An error when no call may be attempted right now (HTTP RPC's open circuit breaker). */
  ready(): Error | undefined;
  /** Open HTTP/2 connections (gRPC only; `grpc_active_conn_num`). */
  activeConnections?(): number;
  close(): Promise<void>;
}

/** Metadata both transports attach to every call (gRPC metadata / `x-anycable-meta-*` headers). */
export function callMetadata(opts: CallOptions): Record<string, string> {
  return { sid: opts.sid, protov: PROTO_VERSIONS };
}
