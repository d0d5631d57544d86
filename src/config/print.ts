// --print-config: the configuration as TOML in anycable-go's layout (same
// sections, keys and the same choice of which settings are written commented
// out), so the output can be fed back through --config-path to either server.
import { BROKER_OPTIONS } from "../broker/options.ts";
import { DEFAULT_MAX_BODY_BYTES } from "../http/body.ts";
import { NODE_OPTIONS } from "../node/options.ts";
import { POSTGRES_OPTIONS } from "../postgres/options.ts";
import { WEBHOOK_EVENTS } from "../protocols/pusher/options.ts";
import type { State } from "./derive.ts";

const q = (s: string): string => JSON.stringify(s);
const list = (xs: readonly string[]): string => `[${xs.map(q).join(", ")}]`;
const NODE_DEFAULTS = Object.fromEntries(NODE_OPTIONS.map((r) => [r.key, r.default]));
const BROKER_DEFAULTS = Object.fromEntries(BROKER_OPTIONS.map((r) => [r.key, r.default]));

class Out {
  private readonly lines: string[] = [];
  comment(text: string): this {
    for (const line of text.split("\n")) this.lines.push(line ? `# ${line}` : "#");
    return this;
  }
  raw(line: string): this {
    this.lines.push(line);
    return this;
  }
  /** Writes `key = value`, or a commented-out example when `active` is false. */
  kv(key: string, value: string, active = true, example = value): this {
    this.lines.push(active ? `${key} = ${value}` : `# ${key} =${example ? ` ${example}` : ""}`);
    return this;
  }
  blank(): this {
    this.lines.push("");
    return this;
  }
  section(title: string, name: string): this {
    if (title) this.comment(title);
    this.lines.push(`[${name}]`);
    return this;
  }
  toString(): string {
    return `${this.lines.join("\n")}\n`;
  }
}

function general(o: Out, s: State): void {
  const { v, d } = s;
  o.comment("AnyCable server configuration (anycable-go compatible layout).")
    .comment("Reference: https://docs.anycable.io/anycable-go/configuration")
    .blank()
    .comment("General settings")
    .blank();
  o.comment("Public mode: no connection authentication, unsigned streams and broadcasts allowed");
  o.kv("public", String(v.public), v.public, "false").blank();
  o.comment("Skip connection authentication only");
  o.kv("noauth", String(d.skipAuth), d.skipAuth, "false").blank();
  o.comment("Identifier of this server instance");
  o.kv("node_id", q(d.nodeId), d.nodeIdUserProvided, q("<generated anew on every start>")).blank();
  o.comment("Application secret");
  o.kv("secret", q(d.secret || "none")).blank();
  o.comment("Adapters that deliver broadcasts from the application to clients");
  o.kv("broadcast_adapters", list(d.broadcastAdapters)).blank();
  o.comment("Key for authenticating broadcast requests");
  if (v.broadcast_key !== "") o.kv("broadcast_key", q(v.broadcast_key));
  // The raw secret decides, so that `secret = "none"` keeps deriving a key after a round trip.
  else if (v.secret !== "") o.kv("broadcast_key", "", false, q("<derived from the application secret>"));
  else o.kv("broadcast_key", q("none"));
  o.blank();
  o.comment("Pub/sub adapter connecting server instances");
  o.kv("pubsub_adapter", q(d.pubsubAdapter), d.pubsubAdapter !== "", `${q("redis")} # or "nats"`).blank();
  o.comment("Presets chosen by the user");
  o.kv("presets", list(s.userPresets ?? []), (s.userPresets ?? []).length > 0, list(["broker"])).blank();
}

function server(o: Out, s: State): void {
  const { v } = s;
  o.section("Server", "server");
  o.comment("Address to bind to").kv("host", q(v.host));
  o.comment("Port to listen on").kv("port", String(v.port));
  o.comment("Origins allowed to connect (comma-separated)").kv("allowed_origins", q(v.allowed_origins));
  o.comment("Connection limit").kv("max_conn", String(v.max_conn), v.max_conn !== 0, "1000");
  // anycable-ts only: written only when set to something else than its default, so the default
  // output stays anycable-go's (which ignores the key, like any unknown one).
  if (v.max_subscriptions_per_connection !== NODE_DEFAULTS.max_subscriptions_per_connection) {
    o.comment("Subscriptions one connection may hold (anycable-ts only; 0 means unlimited)");
    o.kv("max_subscriptions_per_connection", String(v.max_subscriptions_per_connection));
  }
  o.comment("Health check path").kv("health_path", q(v.health_path));
  // anycable-ts only; written out only when set, so that the default output stays anycable-go's.
  if (v.max_body_size !== DEFAULT_MAX_BODY_BYTES) {
    o.comment("Largest HTTP request body read, in bytes (0 = no limit; anycable-ts only)");
    o.kv("max_body_size", String(v.max_body_size));
  }
  o.comment("TLS");
  o.kv("ssl.cert_path", q(v.ssl_cert), v.ssl_cert !== "", "");
  o.kv("ssl.key_path", q(v.ssl_key), v.ssl_key !== "", "");
  o.blank();
}

function logging(o: Out, s: State): void {
  o.section("Logging", "logging");
  o.comment("Log level (debug, info, warn, error)").kv("level", q(s.d.logLevel));
  o.comment("Log format (text, json)").kv("format", q(s.v.log_format));
  o.comment("Verbose debug logging").kv("debug", "true", s.v.debug);
  o.blank();
}

function rpc(o: Out, s: State): void {
  const { v, d } = s;
  o.section("RPC", "rpc");
  o.comment("Transport: grpc, http or none (inferred from host when empty)");
  o.kv("implementation", q(s.rpcImplementation));
  o.comment("RPC server address (host:port, or a URL for HTTP RPC)").kv("host", q(v.rpc_host));
  o.comment("Request headers passed on to the RPC server");
  o.kv("proxy_headers", list(d.proxyHeaders), d.proxyHeaders.length > 0, list(["cookie"]));
  o.comment("Cookies kept in the proxied Cookie header (all when unset)");
  o.kv("proxy_cookies", list(d.proxyCookies), d.proxyCookies.length > 0, list(["_session_id"]));
  o.comment("Maximum number of concurrent RPC calls").kv("concurrency", String(v.rpc_concurrency));
  o.comment("Use TLS for RPC connections").kv("enable_tls", "true", v.rpc_enable_tls);
  o.comment("Verify the RPC server certificate");
  o.kv("tls_verify", String(v.rpc_tls_verify), v.rpc_tls_verify, "true");
  o.comment("Root CA (file path or PEM) for the RPC server certificate");
  o.kv("tls_root_ca_path", q(v.rpc_tls_root_ca), v.rpc_tls_root_ca !== "", "");
  o.comment("HTTP RPC only: authentication secret (derived from the application secret when unset)");
  if (v.http_rpc_secret === "none" || (s.rpcSecretField === "" && v.secret === "")) {
    // Spelled out because reading `secret = "none"` back would otherwise seed an RPC key from "none".
    o.kv("secret", q("none"));
  } else {
    o.kv("secret", q(s.rpcSecretField), s.rpcSecretField !== "", "");
  }
  o.comment("Timeout of one RPC request (ms)");
  o.kv("request_timeout", String(v.rpc_request_timeout), v.rpc_request_timeout > 0, "3000");
  o.comment("Time budget of an RPC command including retries (ms)");
  o.kv("command_timeout", String(v.rpc_command_timeout), v.rpc_command_timeout > 0, "3000");
  if (v.http_rpc_timeout > 0) {
    o.comment("Deprecated HTTP RPC timeout (ms)").kv("http_request_timeout", String(v.http_rpc_timeout));
  }
  o.comment("gRPC message size limits (bytes; 0 keeps the client defaults)");
  o.kv("max_recv_size", String(v.rpc_max_call_recv_size));
  o.kv("max_send_size", String(v.rpc_max_call_send_size));
  o.blank();
}

function broker(o: Out, s: State): void {
  const { v } = s;
  o.section("Broker (streams history and sessions)", "broker");
  o.comment("Broker adapter").kv("adapter", q(v.broker), v.broker !== "", q("memory"));
  o.comment("Stream history lifetime (seconds)").kv("history_ttl", String(v.history_ttl));
  o.comment("Messages kept per stream").kv("history_limit", String(v.history_limit));
  o.comment("How long sessions stay restorable (seconds)").kv("sessions_ttl", String(v.sessions_ttl));
  o.comment("Presence lifetime after a disconnect (seconds)").kv("presence_ttl", String(v.presence_ttl));
  // anycable-ts only: written only when not the default, so the default output stays anycable-go's.
  if (v.broker_max_streams !== BROKER_DEFAULTS.broker_max_streams) {
    o.comment("Streams the in-memory broker keeps history for (anycable-ts only)");
    o.kv("max_streams", String(v.broker_max_streams));
  }
  if (v.broker_max_sessions !== BROKER_DEFAULTS.broker_max_sessions) {
    o.comment("Sessions the in-memory broker keeps restorable (anycable-ts only)");
    o.kv("max_sessions", String(v.broker_max_sessions));
  }
  o.blank();
}

function jwt(o: Out, s: State): void {
  o.section("JWT authentication", "jwt");
  o.comment("Verification key").kv("secret", q(s.d.jwtSecret));
  o.comment("Query parameter carrying the token (header: x-<param>)").kv("param", q(s.d.jwtParam));
  o.comment("Reject connections without a token").kv("force", "true", s.d.enforceJwt);
  o.blank();
}

function streams(o: Out, s: State): void {
  const { v, d } = s;
  o.section("Signed pub/sub streams", "streams");
  o.comment("Key for verifying signed stream names");
  o.kv("secret", q(d.streamsSecret), d.streamsSecret !== "", q(""));
  o.comment("Allow unsigned (public) streams").kv("public", "true", d.publicStreams);
  o.comment("Allow whispering").kv("whisper", "true", v.streams_whisper);
  o.comment("Allow presence").kv("presence", "true", v.streams_presence);
  o.comment("Channel name for pub/sub streams").kv("pubsub_channel", q(v.streams_pubsub_channel));
  o.comment("Turbo Streams support").kv("turbo", "true", v.turbo_streams);
  o.comment("Dedicated Turbo Streams key");
  o.kv("turbo_secret", q(v.turbo_streams_secret), v.turbo_streams_secret !== "", q(""));
  o.comment("CableReady support").kv("cable_ready", "true", v.cable_ready);
  o.comment("Dedicated CableReady key");
  o.kv("cable_ready_secret", q(v.cable_ready_secret), v.cable_ready_secret !== "", q(""));
  o.blank();
}

function ws(o: Out, s: State): void {
  const { v, d } = s;
  o.section("WebSockets", "ws");
  o.comment("Endpoint paths").kv("paths", list(d.paths));
  o.comment("Read buffer size (bytes)").kv("read_buffer_size", String(v.read_buffer_size));
  o.comment("Write buffer size (bytes)").kv("write_buffer_size", String(v.write_buffer_size));
  o.comment("Largest accepted message (bytes)").kv("max_message_size", String(v.max_message_size));
  o.comment("Write timeout (seconds)").kv("write_timeout", String(v.ws_write_timeout));
  o.comment("Queued outgoing bytes before a slow client is dropped");
  o.kv("max_pending_size", String(v.ws_max_pending_size), v.ws_max_pending_size > 0, "1048576");
  if (v.enable_ws_compression) o.comment("Per-message deflate").kv("enable_compression", "true");
  o.blank();
}

function sse(o: Out, s: State): void {
  o.section("Server-Sent Events", "sse");
  o.comment("Enable the SSE endpoint").kv("enabled", "true", s.v.sse);
  o.comment("SSE endpoint path").kv("path", q(s.v.sse_path));
  o.blank();
}

function poll(o: Out, s: State): void {
  const { v } = s;
  o.section("Long polling", "poll");
  o.comment("Enable the long polling endpoint").kv("enabled", "true", v.poll);
  o.comment("Long polling endpoint path").kv("path", q(v.poll_path));
  o.comment("Polling interval (seconds)").kv("interval", String(v.poll_interval));
  o.comment("Flush interval (milliseconds)").kv("flush_interval", String(v.poll_flush_interval));
  o.comment("Maximum request body size (bytes)").kv("max_request_size", String(v.poll_max_request_size));
  o.comment("Keepalive timeout (seconds)").kv("keepalive_timeout", String(v.poll_keepalive_timeout));
  o.blank();
}

function pusher(o: Out, s: State): void {
  const { v, d } = s;
  o.section("Pusher protocol compatibility", "pusher");
  o.comment("Application ID").kv("app_id", q(v.pusher_app_id), v.pusher_app_id !== "", q(""));
  o.comment("Application key").kv("app_key", q(v.pusher_app_key), v.pusher_app_key !== "", q(""));
  o.comment("Application secret").kv("secret", q(d.pusherSecret), d.pusherSecret !== "", q(""));
  o.comment("Pusher HTTP API port (0: main port)");
  o.kv("api_port", String(v.pusher_api_port), v.pusher_api_port !== 0, "0");
  // anycable-ts only: printed when set, so the default output stays anycable-go's
  if (v.pusher_webhook_url !== "")
    o.comment("\nWebhook receiver (anycable-ts)").kv("webhook_url", q(v.pusher_webhook_url));
  if (v.pusher_webhook_events.length !== WEBHOOK_EVENTS.length)
    o.comment("\nWebhook events (anycable-ts)").kv(
      "webhook_events",
      `[${v.pusher_webhook_events.map(q).join(", ")}]`,
    );
  o.blank();
}

function ds(o: Out, s: State): void {
  const { v } = s;
  o.section("Durable Streams", "ds");
  o.comment("Enable Durable Streams").kv("enabled", "true", v.ds);
  o.comment("Only authorize stream access, skip client authentication").kv(
    "skip_auth",
    "true",
    v.ds_skip_auth,
  );
  o.comment("Mount path").kv("path", q(v.ds_path));
  o.comment("Long-polling interval (seconds)").kv("poll_interval", String(v.ds_poll_interval));
  o.comment("SSE connection lifetime (seconds)").kv("sse_ttl", String(v.ds_sse_ttl));
  o.blank();
}

function api(o: Out, s: State): void {
  const { v } = s;
  o.section("HTTP API", "api");
  o.comment("Host for a separate API server").kv("host", q(v.api_host), v.api_host !== "", q("localhost"));
  o.comment("API port (0: main port)").kv("port", String(v.api_port));
  o.comment("Base path").kv("path", q(v.api_path));
  o.comment("Token for API requests").kv("secret", q(v.api_secret), v.api_secret !== "", q(""));
  o.comment("CORS headers").kv("cors_headers", "true", v.api_cors_headers, "false");
  o.blank();
}

function redis(o: Out, s: State): void {
  const { v } = s;
  o.section("Redis", "redis");
  o.comment("Redis URL (or master name with sentinels, or a list of URLs for a cluster)");
  o.kv("url", q(v.redis_url));
  o.comment("Sentinel addresses (comma-separated)").kv("sentinels", q(v.redis_sentinels));
  o.comment("Sentinel rediscovery interval (seconds)");
  o.kv("sentinel_discovery_interval", String(v.redis_sentinel_discovery_interval));
  o.comment("Keepalive ping interval (seconds)").kv(
    "keepalive_ping_interval",
    String(v.redis_keepalive_interval),
  );
  o.comment("Verify the server certificate (rediss://)").kv("tls_verify", "true", v.redis_tls_verify);
  o.comment("CA certificate for the server");
  o.kv(
    "tls_ca_cert_path",
    q(v.redis_tls_ca_cert_path),
    v.redis_tls_ca_cert_path !== "",
    q("/path/to/ca.pem"),
  );
  o.comment("Client certificate (mutual TLS)");
  o.kv(
    "tls_client_cert_path",
    q(v.redis_tls_client_cert_path),
    v.redis_tls_client_cert_path !== "",
    q("/path/to/cert.pem"),
  );
  o.comment("Client key (mutual TLS)");
  o.kv(
    "tls_client_key_path",
    q(v.redis_tls_client_key_path),
    v.redis_tls_client_key_path !== "",
    q("/path/to/key.pem"),
  );
  o.comment("Reconnect attempts").kv("max_reconnect_attempts", String(v.redis_max_reconnect_attempts));
  o.comment("Disable client-side caching").kv("disable_cache", "true", v.redis_disable_cache);
  o.blank();
}

function nats(o: Out, s: State): void {
  const { v } = s;
  o.section("NATS", "nats");
  o.comment("Server URLs (comma-separated)").kv("servers", q(s.d.natsServers));
  o.comment("Keep the server order").kv("dont_randomize_servers", "true", v.nats_dont_randomize_servers);
  o.comment("Reconnect attempts").kv("max_reconnect_attempts", String(v.nats_max_reconnect_attempts));
  o.blank();
}

function broadcasters(o: Out, s: State): void {
  const { v, d } = s;
  o.section("Broadcasting adapters", "http_broadcast");
  o.comment("Port (may equal the main port)").kv("port", String(d.broadcastPort));
  o.comment("Endpoint path").kv("path", q(v.http_broadcast_path));
  // Only a secret that differs from broadcast_key is written, so that reading the file
  // back does not turn broadcast_key into the deprecated http_broadcast_secret.
  const ownSecret = s.httpBroadcastSecret !== "" && s.httpBroadcastSecret !== v.broadcast_key;
  o.comment("Request authentication secret").kv("secret", q(s.httpBroadcastSecret), ownSecret, q(""));
  o.comment("CORS headers (allowed origins become allowed hosts)");
  o.kv("cors_headers", "true", v.http_broadcast_cors, "false");
  o.blank();
  o.raw("[redis_stream_broadcast]");
  o.comment("Stream name").kv("stream", q(v.redisx_stream));
  o.comment("Consumer group").kv("group", q(v.redisx_group));
  o.comment("Blocking read time (ms)");
  o.kv("stream_read_block_milliseconds", String(v.redisx_read_block_milliseconds));
  o.blank();
  o.raw("[redis_pubsub_broadcast]").kv("channel", q(v.redis_channel)).blank();
  o.raw("[nats_broadcast]").kv("channel", q(v.nats_channel)).blank();
  o.section("Pub/sub adapters", "redis_pubsub").kv("channel", q(d.redisPubsubChannel)).blank();
  o.raw("[nats_pubsub]").kv("channel", q(v.nats_pubsub_channel)).blank();
}

function metrics(o: Out, s: State): void {
  const { v, d } = s;
  o.section("Metrics", "metrics");
  o.comment("Prometheus endpoint path").kv(
    "http_path",
    q(v.metrics_http),
    v.metrics_http !== "",
    q("/metrics"),
  );
  o.comment("Host for a separate metrics server").kv(
    "host",
    q(v.metrics_host),
    v.metrics_host !== "",
    q("localhost"),
  );
  o.comment("Metrics port (may equal the main port)").kv(
    "port",
    String(d.metricsPort),
    d.metricsPort !== 0,
    "8082",
  );
  o.comment("Write metrics to the log").kv("log", "true", v.metrics_log);
  o.comment("Flush interval (seconds)").kv("rotate_interval", String(d.metricsRotateInterval));
  o.comment("Metrics to include in the log");
  o.kv("log_filter", list(v.metrics_log_filter), v.metrics_log_filter.length > 0, "[]");
  o.comment("Tags added to every metric");
  const tags = Object.entries(d.metricsTags);
  if (tags.length === 0) o.kv("tags.key", q("value"), false);
  for (const [k, val] of tags) o.kv(`tags.${q(k)}`, q(val));
  o.comment("StatsD");
  const statsd = v.statsd_host !== "";
  o.kv("statsd.host", q(v.statsd_host), statsd);
  o.kv("statsd.prefix", q(v.statsd_prefix), statsd);
  o.kv("statsd.tags_format", q(v.statsd_tags_format), statsd);
  o.kv("statsd.max_packet_size", String(v.statsd_max_packet_size), statsd);
  o.blank();
}

function app(o: Out, s: State): void {
  const { v, d } = s;
  o.section("Application", "app");
  o.comment("Ping interval (seconds)").kv("ping_interval", String(v.ping_interval));
  o.comment("Ping timestamp unit (s, ms, ns)").kv("ping_timestamp_precision", q(v.ping_timestamp_precision));
  o.comment("Pong timeout (seconds)").kv("pong_timeout", String(v.pong_timeout), v.pong_timeout !== 0, "6");
  o.comment("Protocol-level pings (e.g. WebSocket ping frames)");
  o.kv("enable_native_ping", "true", v.enable_native_pings);
  o.comment("When to call Disconnect").kv("disconnect_mode", q(d.disconnectMode));
  o.comment("Graceful shutdown period (seconds)").kv("shutdown_timeout", String(v.shutdown_timeout));
  if (v.shutdown_delay !== 0)
    o.comment("Pause before shutdown (seconds)").kv("shutdown_delay", String(v.shutdown_delay));
  o.comment("Server stats refresh interval (seconds)").kv(
    "stats_refresh_interval",
    String(v.stats_refresh_interval),
  );
  o.comment("Broadcast fan-out concurrency").kv("broadcast_gopool_size", String(v.hub_gopool_size));
  o.comment("Disconnect concurrency during shutdown");
  o.kv("shutdown_disconnect_gopool_size", String(v.shutdown_pool_size));
  o.blank();
  o.section("Disconnect queue", "disconnector");
  o.comment("Disconnect calls per second").kv("rate", String(v.disconnect_rate));
  o.comment("Queue capacity").kv("backlog", String(v.disconnect_backlog_size));
  o.blank();
}

function embeddedNats(o: Out, s: State): void {
  const { v } = s;
  o.section("Embedded NATS", "embedded_nats");
  o.kv("enabled", "true", v.embed_nats);
  o.comment("\nLogging").kv("debug", "true", v.enats_debug).kv("trace", "true", v.enats_trace);
  o.comment("\nServer name").kv("name", q(v.enats_server_name));
  o.comment("\nClient address").kv("service_addr", q(v.enats_addr));
  o.comment("\nCluster\n");
  o.kv("cluster_addr", q(v.enats_cluster), v.enats_cluster !== "", q(""));
  o.kv("cluster_name", q(v.enats_cluster_name), v.enats_cluster_name !== "anycable-cluster", q(""));
  o.kv("gateway_addr", q(v.enats_gateway), v.enats_gateway !== "", q(""));
  o.kv("gateway_advertise", q(v.enats_gateway_advertise), v.enats_gateway_advertise !== "", q(""));
  o.kv("gateways", list(v.enats_gateways), v.enats_gateways.length > 0, "[]");
  o.kv("routes", list(v.enats_cluster_routes), v.enats_cluster_routes.length > 0, "[]");
  o.comment("\nJetStream\n");
  o.kv("jetstream", "true", v.enats_jetstream);
  o.kv("jetstream_store_dir", q(v.enats_store_dir), v.enats_store_dir !== "", q(""));
  const readyTimeout = String(v.enats_jetstream_ready_timeout);
  o.kv("jetstream_ready_timeout", readyTimeout, v.enats_jetstream || readyTimeout !== "30");
  o.comment("\nMessage size limit (bytes)\n");
  o.kv("max_payload", String(v.enats_max_payload), v.enats_max_payload > 0, "1048576");
  // anycable-ts only: printed when set, so the default output stays anycable-go's
  if (v.enats_bin !== "nats-server")
    o.comment("\nThe nats-server executable (anycable-ts)").kv("bin", q(v.enats_bin));
}

// anycable's Postgres signalling PR's [postgres] section (anycable-ts only until it lands): written
// when Postgres is in use or a setting differs, so the default output stays anycable-go's.
function postgres(o: Out, s: State): void {
  const values = s.v as unknown as Record<string, string | number | boolean>;
  const used =
    s.d.broadcastAdapters.includes("postgres") ||
    s.d.pubsubAdapter === "postgres" ||
    s.v.broker === "postgres";
  if (!used && POSTGRES_OPTIONS.every((r) => values[r.key] === r.default)) return;
  o.section("PostgreSQL signalling (anycable-ts only; anycable/anycable#306)", "postgres");
  for (const row of POSTGRES_OPTIONS) {
    const value = values[row.key];
    o.kv(row.toml.replace(/^postgres\./, ""), typeof value === "string" ? q(value) : String(value));
  }
  o.blank();
}

export function printToml(state: State): string {
  const o = new Out();
  for (const w of state.warnings) o.comment(w);
  if (state.warnings.length > 0) o.blank();
  for (const part of [
    general,
    server,
    logging,
    rpc,
    broker,
    jwt,
    streams,
    ws,
    sse,
    poll,
    pusher,
    ds,
    api,
    redis,
    nats,
    broadcasters,
    postgres,
    metrics,
    app,
    embeddedNats,
  ]) {
    part(o, state);
  }
  return o.toString();
}
