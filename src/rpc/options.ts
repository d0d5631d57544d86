// Option rows: The RPC backend and the disconnect queue in front of it.
import type { Config, OptionSpec } from "../config/schema.ts";
import { type AdaptiveOptions, adaptiveProblem } from "./adaptive.ts";
import type { RpcTlsSettings } from "./tls.ts";

export const RPC_OPTIONS = [
  {
    name: "rpc_host",
    key: "rpc_host",
    type: "string",
    default: "localhost:50051",
    env: ["ANYCABLE_RPC_HOST"],
    toml: "rpc.host",
    category: "RPC:",
    description: "RPC server address (a full http(s):// URL selects HTTP RPC)",
    hidden: false,
    deprecated: null,
    served: true,
  },
  {
    name: "norpc",
    key: "norpc",
    type: "bool",
    default: false,
    env: ["ANYCABLE_NORPC"],
    toml: null,
    category: "RPC:",
    description: "Run without an RPC server (standalone mode)",
    hidden: false,
    deprecated: null,
    served: true,
  },
  {
    name: "rpc_concurrency",
    key: "rpc_concurrency",
    type: "int",
    default: 28,
    env: ["ANYCABLE_RPC_CONCURRENCY"],
    toml: "rpc.concurrency",
    category: "RPC:",
    description:
      "Maximum number of RPC calls in flight; keep it a bit below the RPC server capacity (0: adaptive, see --rpc_concurrency_initial/_min/_max)",
    hidden: false,
    deprecated: null,
    served: true,
  },
  {
    name: "rpc_concurrency_initial",
    key: "rpc_concurrency_initial",
    type: "int",
    default: 25,
    env: ["ANYCABLE_RPC_CONCURRENCY_INITIAL"],
    toml: "rpc.concurrency_initial",
    category: "RPC:",
    description: "Adaptive concurrency (--rpc_concurrency=0): the limit to start with",
    hidden: false,
    deprecated: null,
    served: true,
    // AnyCable Pro's; OSS anycable-go has no such flags
    extension: true,
  },
  {
    name: "rpc_concurrency_min",
    key: "rpc_concurrency_min",
    type: "int",
    default: 5,
    env: ["ANYCABLE_RPC_CONCURRENCY_MIN"],
    toml: "rpc.concurrency_min",
    category: "RPC:",
    description: "Adaptive concurrency: the lowest limit",
    hidden: false,
    deprecated: null,
    served: true,
    // AnyCable Pro's; OSS anycable-go has no such flags
    extension: true,
  },
  {
    name: "rpc_concurrency_max",
    key: "rpc_concurrency_max",
    type: "int",
    default: 100,
    env: ["ANYCABLE_RPC_CONCURRENCY_MAX"],
    toml: "rpc.concurrency_max",
    category: "RPC:",
    description: "Adaptive concurrency: the highest limit",
    hidden: false,
    deprecated: null,
    served: true,
    // AnyCable Pro's; OSS anycable-go has no such flags
    extension: true,
  },
  {
    name: "rpc_enable_tls",
    key: "rpc_enable_tls",
    type: "bool",
    default: false,
    env: ["ANYCABLE_RPC_ENABLE_TLS"],
    toml: "rpc.enable_tls",
    category: "RPC:",
    description: "Use TLS for connections to the RPC server",
    hidden: true,
    deprecated: null,
    served: true,
  },
  {
    name: "rpc_tls_verify",
    key: "rpc_tls_verify",
    type: "bool",
    default: true,
    env: ["ANYCABLE_RPC_TLS_VERIFY"],
    toml: "rpc.tls_verify",
    category: "RPC:",
    description: "Check the RPC server certificate",
    hidden: true,
    deprecated: null,
    served: true,
  },
  {
    name: "rpc_tls_root_ca",
    key: "rpc_tls_root_ca",
    type: "string",
    default: "",
    env: ["ANYCABLE_RPC_TLS_ROOT_CA"],
    toml: "rpc.tls_root_ca_path",
    category: "RPC:",
    description:
      "Root CA for the RPC server certificate, as a file path or inline PEM (system CAs when empty)",
    hidden: true,
    deprecated: null,
    served: true,
  },
  {
    name: "rpc_max_call_recv_size",
    key: "rpc_max_call_recv_size",
    type: "int",
    default: 0,
    env: ["ANYCABLE_RPC_MAX_CALL_RECV_SIZE"],
    toml: "rpc.max_recv_size",
    category: "RPC:",
    description: "Largest gRPC message accepted from the RPC server (bytes; 0 keeps the client default)",
    hidden: true,
    deprecated: null,
    served: true,
  },
  {
    name: "rpc_max_call_send_size",
    key: "rpc_max_call_send_size",
    type: "int",
    default: 0,
    env: ["ANYCABLE_RPC_MAX_CALL_SEND_SIZE"],
    toml: "rpc.max_send_size",
    category: "RPC:",
    description: "Largest gRPC message sent to the RPC server (bytes; 0 keeps the client default)",
    hidden: true,
    deprecated: null,
    served: true,
  },
  {
    name: "rpc_request_timeout",
    key: "rpc_request_timeout",
    type: "int",
    default: 0,
    env: ["ANYCABLE_RPC_REQUEST_TIMEOUT"],
    toml: "rpc.request_timeout",
    category: "RPC:",
    description: "Timeout of a single RPC request (milliseconds)",
    hidden: false,
    deprecated: null,
    served: true,
  },
  {
    name: "rpc_command_timeout",
    key: "rpc_command_timeout",
    type: "int",
    default: 3000,
    env: ["ANYCABLE_RPC_COMMAND_TIMEOUT"],
    toml: "rpc.command_timeout",
    category: "RPC:",
    description: "Overall time budget of an RPC command, retries included (milliseconds)",
    hidden: true,
    deprecated: null,
    served: true,
  },
  {
    name: "headers",
    key: "headers",
    type: "list",
    default: ["cookie"],
    env: ["ANYCABLE_HEADERS"],
    toml: "rpc.proxy_headers",
    category: "RPC:",
    description: "Comma-separated request headers passed on to the RPC server",
    hidden: false,
    deprecated: null,
    served: true,
  },
  {
    name: "proxy-cookies",
    key: "proxy_cookies",
    type: "list",
    default: [],
    env: ["ANYCABLE_PROXY_COOKIES"],
    toml: "rpc.proxy_cookies",
    category: "RPC:",
    description: "Comma-separated cookie names to pass on to the RPC server (all cookies when empty)",
    hidden: false,
    deprecated: null,
    served: true,
  },
  {
    name: "rpc_impl",
    key: "rpc_impl",
    type: "string",
    default: "",
    env: ["ANYCABLE_RPC_IMPL"],
    toml: "rpc.implementation",
    category: "RPC:",
    description: "RPC transport (grpc, http); inferred from rpc_host when empty",
    hidden: true,
    deprecated: null,
    served: true,
    choices: ["grpc", "http", "none"],
  },
  {
    name: "http_rpc_secret",
    key: "http_rpc_secret",
    type: "string",
    default: "",
    env: ["ANYCABLE_HTTP_RPC_SECRET"],
    toml: "rpc.secret",
    category: "RPC:",
    description: "Secret sent with HTTP RPC requests (derived from secret when empty)",
    hidden: false,
    deprecated: null,
    served: true,
  },
  {
    name: "http_rpc_timeout",
    key: "http_rpc_timeout",
    type: "int",
    default: 0,
    env: ["ANYCABLE_HTTP_RPC_TIMEOUT"],
    toml: "rpc.http_request_timeout",
    category: "RPC:",
    description: "[Deprecated] Timeout of HTTP RPC requests (milliseconds)",
    hidden: true,
    deprecated: "rpc_request_timeout",
    served: true,
  },
  {
    name: "disconnect_mode",
    key: "disconnect_mode",
    type: "string",
    default: "auto",
    env: ["ANYCABLE_DISCONNECT_MODE"],
    toml: "app.disconnect_mode",
    category: "DISCONNECTOR:",
    description: "When to call the Disconnect RPC callback (always, never, auto)",
    hidden: false,
    deprecated: null,
    served: true,
    choices: ["always", "auto", "never"],
  },
  {
    name: "disconnect_rate",
    key: "disconnect_rate",
    type: "int",
    default: 100,
    env: ["ANYCABLE_DISCONNECT_RATE"],
    toml: "disconnector.rate",
    category: "DISCONNECTOR:",
    description: "Upper bound of Disconnect calls per second",
    hidden: true,
    deprecated: null,
    served: true,
  },
  {
    name: "disconnect_backlog_size",
    key: "disconnect_backlog_size",
    type: "int",
    default: 4096,
    env: ["ANYCABLE_DISCONNECT_BACKLOG_SIZE"],
    toml: "disconnector.backlog",
    category: "DISCONNECTOR:",
    description: "Capacity of the queue of pending Disconnect calls",
    hidden: true,
    deprecated: null,
    served: true,
  },
  {
    name: "disconnect_timeout",
    key: "disconnect_timeout",
    type: "int",
    default: 0,
    env: ["ANYCABLE_DISCONNECT_TIMEOUT"],
    toml: "disconnector.ShutdownTimeout",
    category: "DISCONNECTOR:",
    description: "[Deprecated] Old graceful shutdown timeout (seconds)",
    hidden: true,
    deprecated: "shutdown_timeout",
    served: false,
  },
  {
    name: "disable_disconnect",
    key: "disable_disconnect",
    type: "bool",
    default: false,
    env: ["ANYCABLE_DISABLE_DISCONNECT"],
    toml: "DisconnectorDisabled",
    category: "DISCONNECTOR:",
    description: "[Deprecated] Never call the Disconnect RPC callback",
    hidden: true,
    deprecated: "disconnect_mode",
    served: true,
  },
] as const satisfies readonly OptionSpec[];

export interface Options {
  impl: "none" | "grpc" | "http";
  host: string;
  /** Calls in flight at most (--rpc_concurrency); 0: adaptive within `adaptive`'s bounds. */
  concurrency: number;
  adaptive: AdaptiveOptions;
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
  /** How long the disconnect queue may flush on shutdown. */
  shutdownTimeoutMs: number;
  /** Proxied headers and cookies, for the start-up announcement. */
  proxyHeaders: string[];
  proxyCookies: string[];
}

/**
 * anycable-go's request timeout: --rpc_request_timeout for gRPC (0: none); for HTTP RPC the
 * deprecated --http_rpc_timeout, else --rpc_request_timeout, else 3000 ms.
 */
export function rpcRequestTimeout(impl: string, requestTimeout: number, httpTimeout: number): number {
  if (impl !== "http") return requestTimeout;
  if (httpTimeout > 0) return httpTimeout;
  return requestTimeout > 0 ? requestTimeout : 3000;
}

export function fromConfig(c: Config): Options {
  const d = c.derived;
  return {
    impl: d.rpcImpl as Options["impl"],
    host: c.rpc_host,
    concurrency: c.rpc_concurrency,
    adaptive: {
      initial: c.rpc_concurrency_initial,
      min: c.rpc_concurrency_min,
      max: c.rpc_concurrency_max,
    },
    requestTimeoutMs: rpcRequestTimeout(d.rpcImpl, c.rpc_request_timeout, c.http_rpc_timeout),
    commandTimeoutMs: c.rpc_command_timeout,
    secret: d.rpcSecret,
    secretDerived: c.http_rpc_secret === "" && d.rpcSecret !== "",
    tls: { enabled: c.rpc_enable_tls, rootCa: c.rpc_tls_root_ca, verify: c.rpc_tls_verify },
    maxRecvSize: c.rpc_max_call_recv_size,
    maxSendSize: c.rpc_max_call_send_size,
    disconnectRate: c.disconnect_rate,
    disconnectBacklog: c.disconnect_backlog_size,
    shutdownTimeoutMs: c.shutdown_timeout * 1000,
    proxyHeaders: d.proxyHeaders,
    proxyCookies: d.proxyCookies,
  };
}

/** A startup error for settings that do not fit together (checked once the config is loaded). */
export function configProblem(c: Config): string | undefined {
  if (c.rpc_concurrency !== 0 || c.derived.rpcImpl === "none") return undefined;
  return adaptiveProblem(fromConfig(c).adaptive);
}
