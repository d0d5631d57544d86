// Reproduces the tail of anycable-go's NewConfigFromCLI: everything it
// computes after the flags, env vars and file have been merged, in the same
// order, because several rules read values written by earlier ones.
import type { Derived, OptionValues } from "./schema.ts";
import { API_KEY_PHRASE, BROADCAST_KEY_PHRASE, deriveKey, RPC_KEY_PHRASE } from "./secrets.ts";

export type Values = { -readonly [K in keyof OptionValues]: OptionValues[K] };
export type MutableDerived = { -readonly [K in keyof Derived]: Derived[K] };

/** Config state as anycable-go holds it once parsing is done (what print-config writes). */
export interface State {
  readonly v: Values;
  readonly d: MutableDerived;
  /** rpc.implementation as stored: "none" with --norpc, else rpc_impl (possibly "" = auto). */
  rpcImplementation: string;
  /** http_broadcast.secret as stored: explicit or broadcast_key, "none" and public mode cleared. */
  httpBroadcastSecret: string;
  /** rpc.secret as stored (http_rpc_secret with "none" cleared), before any derivation. */
  rpcSecretField: string;
  /** Presets given by the user (flag, env or file); null means "detect from the environment". */
  readonly userPresets: string[] | null;
  readonly warnings: string[];
}

export const DEFAULT_NATS_URL = "nats://127.0.0.1:4222";
const DEFAULT_REDIS_URL = "redis://localhost:6379";
const UNSECURED_BROADCAST_PORT = 8090;

// go-nanoid's default alphabet, so generated ids look like anycable-go's.
const ALPHABET = "_-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

export function nanoid(size: number): string {
  const bytes = crypto.getRandomValues(new Uint8Array(size));
  let id = "";
  for (const b of bytes) id += ALPHABET[b & 63];
  return id;
}

const deprecated = (old: string, instead: string): string =>
  `DEPRECATION WARNING: option ${old} is deprecated and will be removed in the next major release; use ${instead} instead`;
const noEffect = (old: string): string =>
  `DEPRECATION WARNING: option ${old} is deprecated, has no effect and will be removed in the next major release; use public streams instead`;

function parseTags(pairs: readonly string[]): Record<string, string> {
  const tags: Record<string, string> = {};
  for (const pair of pairs) {
    const [k, val = ""] = pair.split(":");
    tags[k] = val;
  }
  return tags;
}

export interface DeriveInput {
  readonly v: Values;
  readonly provided: ReadonlySet<string>;
  readonly configPath: string | null;
}

export function deriveState({ v, provided, configPath }: DeriveInput): State {
  const warnings: string[] = [];
  const adapters = [...v.broadcast_adapter];

  let rotate = v.metrics_rotate_interval;
  if (v.metrics_log_interval > 0) {
    warnings.push(deprecated("metrics_log_interval", "metrics_rotate_interval"));
    if (rotate === 0) rotate = v.metrics_log_interval;
    v.metrics_rotate_interval = rotate;
  }

  const natsServers = v.embed_nats && v.nats_servers === DEFAULT_NATS_URL ? v.enats_addr : v.nats_servers;

  if (v.disable_disconnect) {
    warnings.push(deprecated("disable_disconnect", "disconnect_mode=never"));
    v.disconnect_mode = "never";
  }
  if (v.disconnect_timeout > 0) warnings.push(deprecated("disconnect_timeout", "shutdown_timeout"));

  // Anything that needs Redis switches pub/sub to Redis unless pub/sub was chosen explicitly.
  let pubsub = v.pubsub;
  if (
    pubsub === "" &&
    (v.redis_url !== DEFAULT_REDIS_URL || adapters.includes("redisx") || v.broker === "redis")
  ) {
    pubsub = "redis";
  }
  // anycable's Postgres signalling PR: table-backed broadcasts reach every node through Postgres;
  // so do the offsets of the Postgres broker (as --broker=redis switches pub/sub to Redis).
  if (pubsub === "" && (adapters.includes("postgres") || v.broker === "postgres")) pubsub = "postgres";

  let redisPubsubChannel = v.redis_pubsub_channel;
  if (adapters.includes("redis") && redisPubsubChannel === v.redis_channel) {
    redisPubsubChannel = `${redisPubsubChannel}-int`;
    warnings.push(
      `WARNING: broadcasting and pub/sub use the same Redis channel; pub/sub switches to ${redisPubsubChannel}`,
    );
  }

  if (v.turbo_rails_key !== "") {
    warnings.push(deprecated("turbo_rails_key", "turbo_streams_secret"));
    v.turbo_streams_secret = v.turbo_rails_key;
    v.turbo_streams = true;
  }
  if (v.turbo_rails_cleartext) warnings.push(noEffect("turbo_rails_cleartext"));
  if (v.cable_ready_key !== "") {
    warnings.push(deprecated("cable_ready_key", "cable_ready_secret"));
    v.cable_ready_secret = v.cable_ready_key;
    v.cable_ready = true;
  }
  if (v.cable_ready_cleartext) warnings.push(noEffect("cable_ready_cleartext"));
  if (v.jwt_id_key !== "") {
    warnings.push(deprecated("jwt_id_key", "jwt_secret"));
    if (v.jwt_secret === "") v.jwt_secret = v.jwt_id_key;
  }
  if (v.jwt_id_param !== "") {
    warnings.push(deprecated("jwt_id_param", "jwt_param"));
    // Only an explicitly emptied jwt_param is replaced (it defaults to "jid"); same as anycable-go.
    if (v.jwt_param === "") v.jwt_param = v.jwt_id_param;
  }
  if (v.jwt_id_enforce) {
    warnings.push(deprecated("jwt_id_enforce", "enforce_jwt"));
    v.enforce_jwt = true;
  }
  if (v.http_rpc_timeout > 0) warnings.push(deprecated("http_rpc_timeout", "rpc_request_timeout"));

  const rpcImplementation = v.norpc ? "none" : v.rpc_impl;

  let httpSecret = v.http_broadcast_secret;
  if (httpSecret !== "") warnings.push(deprecated("http_broadcast_secret", "broadcast_key"));
  if (httpSecret === "") httpSecret = v.broadcast_key;

  // Fallbacks read the raw secret, so `--secret=none` still seeds the broadcast and RPC
  // keys exactly as anycable-go (and the SDKs deriving the same keys) do.
  let secret = v.secret;
  let streams = v.streams_secret;
  let jwt = v.jwt_secret;
  let rpc = v.http_rpc_secret;
  let pusher = v.pusher_secret;
  let httpBase = "";
  let rpcBase = "";
  if (secret !== "") {
    if (streams === "") streams = secret;
    if (jwt === "") jwt = secret;
    if (httpSecret === "") httpBase = secret;
    if (rpc === "") rpcBase = secret;
    if (pusher === "") pusher = secret;
  }
  const unNone = (s: string): string => (s === "none" ? "" : s);
  secret = unNone(secret);
  streams = unNone(streams);
  jwt = unNone(jwt);
  rpc = unNone(rpc);
  httpSecret = unNone(httpSecret);
  pusher = unNone(pusher);

  // The port is chosen before public mode drops broadcast authentication, so
  // `--public --secret=x` keeps broadcasts on the main port.
  let broadcastPort = v.http_broadcast_port;
  if (broadcastPort === 0) {
    broadcastPort = httpSecret !== "" || httpBase !== "" ? v.port : UNSECURED_BROADCAST_PORT;
  }

  let skipAuth = v.noauth;
  let publicStreams = v.public_streams;
  if (v.public) {
    skipAuth = true;
    publicStreams = true;
    httpSecret = "";
    httpBase = "";
  }

  const turboSecret = v.turbo_streams ? v.turbo_streams_secret || streams : "";
  const cableReadySecret = v.cable_ready ? v.cable_ready_secret || streams : "";
  const nodeIdUserProvided = provided.has("node_id");

  const d: MutableDerived = {
    paths: [...v.path],
    broadcastAdapters: adapters,
    pubsubAdapter: pubsub,
    natsServers,
    redisPubsubChannel,
    proxyHeaders: v.headers.map((h) => h.toLowerCase()),
    proxyCookies: [...v.proxy_cookies],
    logLevel: v.debug ? "debug" : v.log_level,
    metricsPort: v.metrics_port === 0 ? v.port : v.metrics_port,
    metricsRotateInterval: rotate,
    metricsTags: parseTags(v.metrics_tags),
    disconnectMode: v.disconnect_mode,
    rpcImpl: rpcImplementation,
    allowedOrigins: v.allowed_origins,
    secret,
    broadcastKey: httpSecret || (httpBase ? deriveKey(httpBase, BROADCAST_KEY_PHRASE) : ""),
    broadcastPort,
    rpcSecret: rpc || (rpcBase ? deriveKey(rpcBase, RPC_KEY_PHRASE) : ""),
    apiSecret: v.api_secret || (secret ? deriveKey(secret, API_KEY_PHRASE) : ""),
    apiPort: v.api_port === 0 ? v.port : v.api_port,
    apiEnabled: v.public || v.api_port !== 0 || v.api_secret !== "" || secret !== "",
    streamsSecret: streams,
    jwtSecret: jwt,
    jwtParam: v.jwt_param,
    enforceJwt: v.enforce_jwt,
    pusherSecret: pusher,
    turboSecret,
    cableReadySecret,
    skipAuth,
    publicStreams,
    nodeId: nodeIdUserProvided ? v.node_id : nanoid(6),
    nodeIdUserProvided,
    presets: [],
    configPath,
  };

  return {
    v,
    d,
    rpcImplementation,
    httpBroadcastSecret: httpSecret,
    rpcSecretField: rpc,
    userPresets: provided.has("presets") ? [...v.presets] : null,
    warnings,
  };
}

/** rpc.Config.Impl(): an explicit implementation, else inferred from the host's scheme. */
export function resolveRpcImpl(implementation: string, host: string): string {
  if (implementation !== "") return implementation;
  const url = host.includes("://") ? host : `grpc://${host}`;
  const match = /^([^/]+):\/\/.*/.exec(url);
  if (!match) return `<invalid RPC host: ${host}>`;
  return match[1] === "http" || match[1] === "https" ? "http" : "grpc";
}
