// What the server needs to run, independent of how it was configured (CLI, env, TOML or code).
import type { DisconnectMode } from "./node/node.ts";

export interface ServerSettings {
  nodeId: string;
  host: string;
  port: number;
  /** WebSocket paths (chi-style patterns). */
  paths: string[];
  healthPath: string;
  allowedOrigins: string;
  /** 0 = unlimited. */
  maxConn: number;
  tls?: { certFile: string; keyFile: string };
  maxMessageSize: number;
  pingIntervalMs: number;
  pingPrecision: string;
  nativePings: boolean;
  maxPendingBytes: number;
  writeTimeoutMs: number;
  disconnectMode: DisconnectMode;
  proxyHeaders: string[];
  proxyCookies: string[];
  skipAuth: boolean;
  publicStreams: boolean;
  rpc: { impl: "none" | "grpc" | "http"; host: string };
  broadcast: {
    /** The `http` adapter is in the list of broadcast adapters. */
    enabled: boolean;
    path: string;
    port: number;
    /** "" = no authorization required. */
    key: string;
    /** The `redis` adapter (pub/sub channel), when listed in broadcast_adapter. */
    redis?: { url: string; channel: string; maxReconnectAttempts: number };
  };
  metrics: { path: string; host: string; port: number };
  shutdownTimeoutMs: number;
  shutdownDelayMs: number;
}
