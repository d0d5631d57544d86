import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import {
  type Config,
  defaultConfig,
  type LoadResult,
  loadConfig,
  OPTIONS,
  type OptionSpec,
  unservedOptions,
} from "../../src/config/index.ts";
import { POSTGRES_OPTIONS } from "../../src/postgres/options.ts";

const ROWS = OPTIONS as readonly OptionSpec[];
const FIXTURES = new URL("./fixtures/", import.meta.url);
const fixture = (name: string): string => readFileSync(new URL(name, FIXTURES), "utf8");

const load = (
  argv: string[],
  env: Record<string, string> = {},
  files: Record<string, string> = {},
): LoadResult => loadConfig({ argv, env, readFile: (p) => files[p] });

function run(argv: string[], env: Record<string, string> = {}, files: Record<string, string> = {}): Config {
  const result = load(argv, env, files);
  if (result.kind !== "run") assert.fail(`expected a run result, got ${JSON.stringify(result)}`);
  return result.config;
}

function printed(argv: string[], env: Record<string, string> = {}): string {
  const result = load([...argv, "--print-config"], env);
  if (result.kind !== "exit") assert.fail(`expected print-config output, got ${JSON.stringify(result)}`);
  return result.output;
}

// Flat values that the printed file stores in their resolved form (as anycable-go does):
// e.g. metrics port 0 is printed as the main port, an empty secret as "none".
const RESOLVED_ON_PRINT = new Set([
  "secret",
  "broadcast_key",
  "metrics_port",
  "http_broadcast_port",
  "jwt_secret",
  "streams_secret",
  "pusher_secret",
  "noauth",
  "public_streams",
  "log_level",
  "rpc_impl",
  "norpc",
  "disconnect_mode",
  "disable_disconnect",
  "http_rpc_secret",
  "http_broadcast_secret",
  "metrics_rotate_interval",
  "metrics_log_interval",
  "nats_servers",
  "redis_pubsub_channel",
  "headers",
  "jwt_id_key",
  "jwt_id_param",
  "jwt_id_enforce",
  "turbo_rails_key",
  "turbo_rails_cleartext",
  "cable_ready_key",
  "cable_ready_cleartext",
  "disconnect_timeout",
  "print_config",
  "config_path",
  "node_id",
]);

function assertRoundTrip(argv: string[]): void {
  const original = run(argv);
  const toml = printed(argv);
  const reloaded = run(["--config-path", "/printed.toml"], {}, { "/printed.toml": toml });
  const strip = (c: Config) => {
    const { nodeId, configPath, ...rest } = c.derived;
    return { ...rest, nodeId: c.derived.nodeIdUserProvided ? nodeId : "(random)" };
  };
  assert.deepEqual(strip(reloaded), strip(original), `derived values differ for ${argv.join(" ")}`);
  const a = original as unknown as Record<string, unknown>;
  const b = reloaded as unknown as Record<string, unknown>;
  for (const row of ROWS) {
    if (RESOLVED_ON_PRINT.has(row.key)) continue;
    assert.deepEqual(b[row.key], a[row.key], `${row.key} differs after a round trip of ${argv.join(" ")}`);
  }
}

describe("print-config", () => {
  test("exits with TOML in anycable-go's layout", () => {
    const out = printed([]);
    for (const section of [
      "[server]",
      "[logging]",
      "[rpc]",
      "[broker]",
      "[jwt]",
      "[streams]",
      "[ws]",
      "[sse]",
      "[pusher]",
      "[ds]",
      "[api]",
      "[redis]",
      "[nats]",
      "[http_broadcast]",
      "[redis_stream_broadcast]",
      "[redis_pubsub_broadcast]",
      "[nats_broadcast]",
      "[redis_pubsub]",
      "[nats_pubsub]",
      "[metrics]",
      "[app]",
      "[disconnector]",
      "[embedded_nats]",
    ]) {
      assert.ok(out.includes(`\n${section}\n`), section);
    }
    assert.match(out, /^secret = "none"$/m);
    assert.match(out, /^broadcast_key = "none"$/m);
    assert.match(out, /^# node_id = /m);
    assert.match(out, /^# max_conn = 1000$/m);
    assert.match(out, /^port = 8090$/m);
  });

  test("user-provided node_id is printed, a random one is not", () => {
    assert.match(printed(["--node_id", "n-1"]), /^node_id = "n-1"$/m);
    assert.doesNotMatch(printed([]), /^node_id = /m);
  });

  const scenarios: string[][] = [
    [],
    ["--secret", "abc"],
    ["--public", "--secret", "abc", "--port", "3000"],
    ["--broadcast_key", "bk", "--http_rpc_secret", "rs", "--api_secret", "as", "--jwt_secret", "js"],
    ["--broadcast_key=none", "--secret", "abc"],
    ["--secret", "none"],
    ["--norpc", "--debug", "--disable_disconnect", "--node_id", "me"],
    [
      "--rpc_host",
      "http://app/_anycable",
      "--headers",
      "X-Api,Cookie",
      "--proxy-cookies",
      "s",
      "--max-conn",
      "9",
    ],
    [
      "--path",
      "/a,/b",
      "--host",
      "0.0.0.0",
      "--allowed_origins",
      "a.com,*.b.com",
      "--ssl_cert",
      "c",
      "--ssl_key",
      "k",
    ],
    [
      "--metrics_tags",
      "env:prod,dc:one",
      "--metrics_http",
      "/m",
      "--statsd_host",
      "s:1",
      "--metrics_log_filter",
      "a,b",
    ],
    [
      "--embed_nats",
      "--enats_cluster_routes",
      "nats://r:1",
      "--enats_gateways",
      "a:x;b:y",
      "--enats_cluster_name",
      "c",
    ],
    ["--turbo_rails_key", "t", "--cable_ready_key", "c", "--jwt_id_key", "j", "--jwt_id_enforce"],
    ["--http_broadcast_secret", "h", "--metrics_log_interval", "5", "--metrics_rotate_interval", "0"],
    ["--max_subscriptions_per_connection", "0"],
    ["--max_subscriptions_per_connection", "25", "--max-conn", "3"],
    [
      "--redis_channel",
      "__anycable_internal__",
      "--enable_native_pings",
      "--shutdown_delay",
      "4",
      "--pong_timeout",
      "2",
    ],
    [
      "--presets",
      "broker",
      "--broker",
      "memory",
      "--pubsub",
      "redis",
      "--enable_ws_compression",
      "--rpc_tls_root_ca",
      "/ca",
    ],
  ];
  for (const argv of scenarios) {
    test(`round trip: ${argv.join(" ") || "(defaults)"}`, () => assertRoundTrip(argv));
  }

  test("deprecation warnings are carried as comments, so the output stays valid TOML", () => {
    const out = printed(["--jwt_id_key", "k"]);
    assert.match(out, /^# DEPRECATION WARNING: .*jwt_id_key/m);
    assert.equal(run(["--config-path", "/p.toml"], {}, { "/p.toml": out }).derived.jwtSecret, "k");
  });
});

describe("anycable-go print-config fixtures", () => {
  test("anycable-go's default output loads and matches the defaults", () => {
    const result = load(
      ["--config-path", "/ago.toml"],
      {},
      { "/ago.toml": fixture("anycable-go-print-config.toml") },
    );
    if (result.kind !== "run") assert.fail(JSON.stringify(result));
    const c = result.config;
    const def = defaultConfig();
    assert.deepEqual(result.warnings, []);
    assert.deepEqual(unservedOptions(c), []);
    const { nodeId: _a, configPath: _b, rpcSecret, ...derived } = c.derived;
    const { nodeId: _c, configPath: _d, rpcSecret: _e, ...expected } = def.derived;
    assert.deepEqual(derived, expected);
    // anycable-go seeds the HTTP RPC key from its own printed secret = "none" too.
    assert.equal(rpcSecret, "38d75108abdc139d4d314a2d69b5a8bd034dedac711a06bc865e10482b2529bf");
    const printedAs: Record<string, unknown> = {
      config_path: "/ago.toml",
      secret: "none",
      broadcast_key: "none",
      metrics_port: 8080,
      http_broadcast_port: 8090,
    };
    const values = c as unknown as Record<string, unknown>;
    for (const row of ROWS) {
      const expectedValue = row.key in printedAs ? printedAs[row.key] : row.default;
      assert.deepEqual(values[row.key], expectedValue, row.key);
    }
  });

  test("a customised anycable-go file loads every section", () => {
    const c = run(
      ["--config-path", "/c.toml"],
      {},
      { "/c.toml": fixture("anycable-go-print-config-custom.toml") },
    );
    const d = c.derived;
    assert.equal(d.skipAuth, true);
    assert.equal(d.nodeId, "node-42");
    assert.equal(d.nodeIdUserProvided, true);
    assert.deepEqual(d.broadcastAdapters, ["http", "redisx"]);
    assert.equal(d.pubsubAdapter, "nats");
    assert.equal(c.host, "0.0.0.0");
    assert.equal(c.port, 9090);
    assert.equal(c.allowed_origins, "*.example.com,app.example.org");
    assert.equal(c.max_conn, 500);
    assert.equal(c.health_path, "/up");
    assert.equal(c.ssl_cert, "/etc/tls/cert.pem");
    assert.equal(c.ssl_key, "/etc/tls/key.pem");
    assert.equal(d.logLevel, "warn");
    assert.equal(c.log_format, "json");
    assert.equal(d.rpcImpl, "http");
    assert.equal(d.rpcSecret, "rpc-secret");
    assert.deepEqual(d.proxyHeaders, ["cookie", "x-api-token"]);
    assert.deepEqual(d.proxyCookies, ["_session_id"]);
    assert.equal(c.rpc_concurrency, 10);
    assert.equal(c.rpc_enable_tls, true);
    assert.equal(c.rpc_request_timeout, 1500);
    assert.equal(c.rpc_max_call_recv_size, 4194304);
    assert.equal(c.broker, "memory");
    assert.equal(c.history_limit, 50);
    assert.equal(d.jwtSecret, "jwt-secret");
    assert.equal(d.jwtParam, "token");
    assert.equal(d.enforceJwt, true);
    assert.equal(d.streamsSecret, "streams-secret");
    assert.equal(d.publicStreams, true);
    assert.equal(c.streams_whisper, true);
    assert.equal(d.turboSecret, "turbo-secret");
    assert.equal(d.cableReadySecret, "cr-secret");
    assert.deepEqual(d.paths, ["/cable", "/ws"]);
    assert.equal(c.ws_max_pending_size, 2097152);
    assert.equal(c.enable_ws_compression, true);
    assert.equal(c.sse, true);
    assert.equal(c.pusher_api_port, 8095);
    assert.equal(d.pusherSecret, "pusher-secret");
    assert.equal(c.ds_path, "/durable");
    assert.equal(c.api_host, "127.0.0.1");
    assert.equal(d.apiSecret, "api-secret");
    assert.equal(c.redis_url, "redis://cache:6379/2");
    assert.equal(c.redis_max_reconnect_attempts, 9);
    assert.equal(c.nats_dont_randomize_servers, true);
    assert.equal(d.natsServers, "nats://n1:4222,nats://n2:4222");
    assert.equal(d.broadcastPort, 8099);
    // HMAC-SHA256("s3cr3t", "broadcast-cable"), computed with Python.
    assert.equal(d.broadcastKey, "83149057b2f956b5f862c0ef5ad6a24d3677dc076d77e8999c24f77ca17d7a20");
    assert.equal(c.http_broadcast_cors, true);
    assert.equal(c.redisx_stream, "events");
    assert.equal(c.redis_channel, "legacy");
    assert.equal(c.nats_channel, "nats-bc");
    assert.equal(d.redisPubsubChannel, "internal-r");
    assert.equal(c.nats_pubsub_channel, "internal-n");
    assert.equal(c.metrics_http, "/metrics");
    assert.equal(d.metricsPort, 9100);
    assert.deepEqual(d.metricsTags, { env: "prod", region: "eu" });
    assert.deepEqual(c.metrics_log_filter, ["clients_num", "broadcast_msg_total"]);
    assert.equal(c.statsd_tags_format, "influxdb");
    assert.equal(c.statsd_max_packet_size, 1200);
    assert.equal(c.ping_interval, 7);
    assert.equal(c.ping_timestamp_precision, "ms");
    assert.equal(c.enable_native_pings, false);
    assert.equal(d.disconnectMode, "always");
    assert.equal(c.hub_gopool_size, 32);
    assert.equal(c.disconnect_rate, 50);
    assert.equal(c.embed_nats, true);
    assert.deepEqual(c.enats_gateways, ["a:nats://gw1:7222,nats://gw2:7222", "b:nats://gw3:7222"]);
    assert.deepEqual(c.enats_cluster_routes, ["nats://r1:5222", "nats://r2:5222"]);
    assert.equal(c.enats_jetstream, true);
    assert.equal(c.enats_jetstream_ready_timeout, 45);
    assert.equal(c.enats_max_payload, 2097152);
  });
});

describe("schema", () => {
  // Every flag defined in anycable-go 1.6.16 cli/options.go, in order.
  const GO_FLAGS = [
    "ignore-config-path",
    "config-path",
    "print-config",
    "host",
    "port",
    "allowed_origins",
    "secret",
    "broadcast_key",
    "public",
    "noauth",
    "max-conn",
    "path",
    "health-path",
    "shutdown_timeout",
    "shutdown_pool_size",
    "shutdown_delay",
    "node_id",
    "ssl_cert",
    "ssl_key",
    "broadcast_adapter",
    "broker",
    "pubsub",
    "redis_channel",
    "nats_channel",
    "hub_gopool_size",
    "history_limit",
    "history_ttl",
    "sessions_ttl",
    "presence_ttl",
    "redis_url",
    "redis_sentinels",
    "redis_sentinel_discovery_interval",
    "redis_keepalive_interval",
    "redis_tls_verify",
    "redis_tls_ca_cert_path",
    "redis_tls_client_cert_path",
    "redis_tls_client_key_path",
    "redis_disable_cache",
    "redisx_stream",
    "redisx_group",
    "redisx_read_block_milliseconds",
    "http_broadcast_port",
    "http_broadcast_path",
    "http_broadcast_secret",
    "http_broadcast_cors",
    "nats_servers",
    "nats_dont_randomize_servers",
    "embed_nats",
    "enats_addr",
    "enats_cluster",
    "enats_cluster_name",
    "enats_cluster_routes",
    "enats_gateway",
    "enats_gateways",
    "enats_gateway_advertise",
    "enats_store_dir",
    "enats_server_name",
    "enats_debug",
    "enats_trace",
    "enats_max_payload",
    "rpc_host",
    "norpc",
    "rpc_concurrency",
    "rpc_enable_tls",
    "rpc_tls_verify",
    "rpc_tls_root_ca",
    "rpc_max_call_recv_size",
    "rpc_max_call_send_size",
    "rpc_request_timeout",
    "rpc_command_timeout",
    "headers",
    "proxy-cookies",
    "rpc_impl",
    "http_rpc_secret",
    "http_rpc_timeout",
    "disconnect_mode",
    "disconnect_rate",
    "disconnect_backlog_size",
    "disconnect_timeout",
    "disable_disconnect",
    "log_level",
    "log_format",
    "debug",
    "metrics_log",
    "metrics_rotate_interval",
    "metrics_log_interval",
    "metrics_log_filter",
    "metrics_log_formatter",
    "metrics_http",
    "metrics_host",
    "metrics_port",
    "metrics_tags",
    "stats_refresh_interval",
    "read_buffer_size",
    "write_buffer_size",
    "max_message_size",
    "ws_write_timeout",
    "ws_max_pending_size",
    "enable_ws_compression",
    "ping_interval",
    "ping_timestamp_precision",
    "pong_timeout",
    "enable_native_pings",
    "jwt_id_key",
    "jwt_secret",
    "jwt_id_param",
    "jwt_param",
    "jwt_id_enforce",
    "enforce_jwt",
    "streams_secret",
    "public_streams",
    "streams_whisper",
    "streams_presence",
    "turbo_streams",
    "cable_ready",
    "turbo_rails_key",
    "turbo_streams_secret",
    "turbo_rails_cleartext",
    "cable_ready_key",
    "cable_ready_secret",
    "cable_ready_cleartext",
    "pusher_app_id",
    "pusher_secret",
    "pusher_app_key",
    "pusher_api_port",
    "statsd_host",
    "statsd_prefix",
    "statsd_max_packet_size",
    "statsd_tags_format",
    "sse",
    "sse_path",
    "ds",
    "ds_path",
    "ds_skip_auth",
    "ds_poll_interval",
    "ds_sse_ttl",
    "api_port",
    "api_path",
    "api_secret",
    "presets",
  ];

  // Options anycable-go does not have (documented as anycable-ts only).
  const TS_FLAGS = [
    "max_subscriptions_per_connection",
    "memory_metrics",
    "max_body_size",
    "broker_max_streams",
    "broker_max_sessions",
    "enats_bin",
    // AnyCable Pro's adaptive concurrency bounds
    "rpc_concurrency_initial",
    "rpc_concurrency_min",
    "rpc_concurrency_max",
    // AnyCable Pro's slow drain
    "shutdown_slowdrain",
    // the live status page
    "status_path",
    // anycable's open "Postgres signalling" PR (anycable/anycable#306): not in anycable-go 1.6
    ...POSTGRES_OPTIONS.map((r) => r.name),
    "pusher_webhook_url",
    "pusher_webhook_events",
    "graphql_path",
    "graphql_channel",
    "graphql_action",
    // AnyCable Pro's OCPP 1.6J flags (not in OSS anycable-go 1.6)
    "ocpp_path",
    "ocpp_channel",
    "ocpp_heartbeat_interval",
    "ocpp_granular_actions",
  ];

  test("has exactly anycable-go's flags, plus TOML-only settings and the marked anycable-ts ones", () => {
    const flags = ROWS.filter((r) => r.flag !== false && !r.extension).map((r) => r.name);
    // anycable-go Pro flags we accept (long polling: the Pro docs are the reference).
    const PRO_FLAGS = [
      "poll",
      "poll_path",
      "poll_interval",
      "poll_flush_interval",
      "poll_max_request_size",
      "poll_keepalive_timeout",
    ];
    assert.deepEqual([...flags].sort(), [...GO_FLAGS, ...PRO_FLAGS].sort());
    const extensions = ROWS.filter((r) => r.extension).map((r) => r.name);
    assert.deepEqual(extensions.sort(), [...TS_FLAGS].sort());
    for (const name of TS_FLAGS) {
      assert.ok(!fixture("anycable-go-print-config.toml").includes(name), `${name} is not anycable-go's`);
      // printed only when it differs from the default, so the default output stays anycable-go's
      assert.ok(!printed([]).includes(name), `${name} in the default --print-config`);
    }
    assert.ok(ROWS.filter((r) => r.flag === false).every((r) => r.toml !== null && r.env.length === 0));
  });

  test("anycable-ts-only options are known extensions, left out of the default print-config", () => {
    const extensions = ROWS.filter((r) => r.extension === true).map((r) => r.name);
    assert.ok(extensions.includes("max_body_size"));
    for (const name of extensions) assert.ok(!GO_FLAGS.includes(name), name);
    assert.doesNotMatch(printed([]), /max_body_size/);
    assert.match(printed(["--max_body_size", "1024"]), /^max_body_size = 1024$/m);
    assertRoundTrip(["--max_body_size", "1024"]);
    assertRoundTrip(["--max_body_size", "0"]);
    assert.doesNotMatch(printed([]), /max_streams|max_sessions/);
    const broker = printed(["--broker_max_streams", "10", "--broker_max_sessions", "20"]);
    assert.match(broker, /^\[broker\][^[]*^max_streams = 10$[^[]*^max_sessions = 20$/m);
    assertRoundTrip(["--broker_max_streams", "10", "--broker_max_sessions", "20"]);
  });

  test("rows are consistent", () => {
    const keys = new Set<string>();
    const tomls = new Set<string>();
    for (const row of ROWS) {
      assert.equal(row.key, row.name.replaceAll("-", "_"), row.name);
      assert.ok(!keys.has(row.key), `duplicate key ${row.key}`);
      keys.add(row.key);
      if (row.toml) {
        assert.ok(!tomls.has(row.toml.toLowerCase()), `duplicate toml ${row.toml}`);
        tomls.add(row.toml.toLowerCase());
      }
      const expectedType = {
        string: "string",
        int: "number",
        float: "number",
        bool: "boolean",
        list: "object",
      }[row.type];
      assert.equal(typeof row.default, expectedType, row.name);
      if (row.flag !== false && !["ignore-config-path", "config-path", "print-config"].includes(row.name)) {
        assert.equal(row.env[0], `ANYCABLE_${row.name.toUpperCase().replace(/[-_]/g, "_")}`);
      }
      if (row.deprecated)
        assert.ok(
          ROWS.some((r) => r.name === row.deprecated),
          row.name,
        );
    }
    const deprecatedNames = ROWS.filter((r) => r.deprecated).map((r) => r.name);
    for (const name of [
      "jwt_id_key",
      "jwt_id_param",
      "jwt_id_enforce",
      "turbo_rails_key",
      "turbo_rails_cleartext",
      "cable_ready_key",
      "cable_ready_cleartext",
      "http_broadcast_secret",
      "disconnect_timeout",
      "disable_disconnect",
      "metrics_log_interval",
    ]) {
      assert.ok(deprecatedNames.includes(name), name);
    }
  });
});
