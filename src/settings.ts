// What the server needs to run, independent of how it was configured (CLI, env, TOML or code).
import type { DisconnectMode } from "./node/node.ts";
import type { RpcTlsSettings } from "./rpc/tls.ts";

export interface RpcSettings {
  impl: "none" | "grpc" | "http";
  host: string;
  /** Calls in flight at most (--rpc_concurrency). */
  concurrency: number;
  /** One request's timeout in ms, already resolved per transport (HTTP falls back to 3000). */
  requestTimeoutMs: number;
  /** Budget of a call including retries in ms (0: none). */
  commandTimeoutMs: number;
  /** HTTP RPC bearer token (explicit or derived from --secret); "" sends none. */
  secret: string;
  /** The token was derived from --secret rather than given (anycable-go logs that). */
  secretDerived: boolean;
  tls: RpcTlsSettings;
  /** gRPC message size limits in bytes (0: client defaults). */
  maxRecvSize: number;
  maxSendSize: number;
  /** Disconnect calls per second and the queue length that triggers a warning. */
  disconnectRate: number;
  disconnectBacklog: number;
}

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
  rpc: RpcSettings;
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
  /** Connection identification answered without RPC (JWT; public mode is `skipAuth`). */
  identity: {
    /** HMAC key for JWTs; "" turns JWT identification off. */
    jwtSecret: string;
    /** Query parameter carrying the token; the header is `X-<param>`. */
    jwtParam: string;
    /** Refuse connections that carry no token. */
    enforceJwt: boolean;
  };
  /** Channels answered without RPC; public streams are `publicStreams`. */
  streams: {
    /** Channel name of signed/public pub/sub streams; "" disables it. */
    pubsubChannel: string;
    /** Key for `signed_stream_name`; "" rejects every signed name. */
    secret: string;
    whisper: boolean;
    presence: boolean;
    /** Key of the Turbo::StreamsChannel controller; "" = no such controller. */
    turboSecret: string;
    /** Key of the CableReady::Stream controller; "" = no such controller. */
    cableReadySecret: string;
  };
  /** REST API (POST <path>/publish). */
  api: {
    /** false when it would be unprotected (no secret, no dedicated port, not public). */
    enabled: boolean;
    /** Own listener host when it differs from the server's ("" = the server's). */
    host: string;
    port: number;
    path: string;
    /** Bearer token; "" = no authorization required. */
    secret: string;
    cors: boolean;
  };
}
