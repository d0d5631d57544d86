import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { describe, test } from "node:test";
import {
  type Config,
  defaultConfig,
  deriveKey,
  type LoadResult,
  loadConfig,
  unservedAdapters,
  unservedOptions,
} from "../../src/config/index.ts";
import { logPresets } from "../../src/config/presets.ts";
import { fromConfig as enatsFromConfig } from "../../src/enats/options.ts";
import { Logger } from "../../src/log/logger.ts";

type Env = Record<string, string>;
const load = (argv: string[], env: Env = {}, files: Record<string, string> = {}): LoadResult =>
  loadConfig({ argv, env, readFile: (p) => files[p] });

function runFull(argv: string[], env: Env = {}, files: Record<string, string> = {}) {
  const result = load(argv, env, files);
  if (result.kind !== "run") assert.fail(`expected a run result, got ${JSON.stringify(result)}`);
  return result;
}
const run = (argv: string[], env: Env = {}, files: Record<string, string> = {}): Config =>
  runFull(argv, env, files).config;

// Computed with Python's hmac module, independently of node:crypto.
const ABC_BROADCAST = "e427f830d90fb932690767fc9bd3349916d1a31e9b92b4293f4b9f562f1285bf";
const ABC_RPC = "5b87820b67d47eed53f0f513ed3fd42bdfd922c60993bf669a104d15e07dd4da";
const ABC_API = "c26dfa474ea58d9b4e781e4bc9df342509632c93574057f0f6535ae40d55580c";

describe("secret derivation", () => {
  test("deriveKey is hex HMAC-SHA256 of the phrase", () => {
    assert.equal(deriveKey("abc", "broadcast-cable"), ABC_BROADCAST);
    const independent = createHmac("sha256", "k3y").update("broadcast-cable").digest("hex");
    assert.equal(deriveKey("k3y", "broadcast-cable"), independent);
  });

  test("secret alone derives broadcast, RPC and API keys and seeds JWT, streams, pusher", () => {
    const d = run(["--secret", "abc"]).derived;
    assert.equal(d.broadcastKey, ABC_BROADCAST);
    assert.equal(d.rpcSecret, ABC_RPC);
    assert.equal(d.apiSecret, ABC_API);
    assert.equal(d.apiEnabled, true);
    assert.equal(d.jwtSecret, "abc");
    assert.equal(d.streamsSecret, "abc");
    assert.equal(d.pusherSecret, "abc");
    assert.equal(d.secret, "abc");
  });

  test("explicit keys win over derivation", () => {
    const d = run([
      "--secret",
      "abc",
      "--broadcast_key",
      "bk",
      "--http_rpc_secret",
      "rk",
      "--api_secret",
      "ak",
    ]).derived;
    assert.equal(d.broadcastKey, "bk");
    assert.equal(d.rpcSecret, "rk");
    assert.equal(d.apiSecret, "ak");
  });

  test('"none" disables a secret', () => {
    const d = run([
      "--secret",
      "abc",
      "--broadcast_key",
      "none",
      "--jwt_secret",
      "none",
      "--streams_secret=none",
    ]).derived;
    assert.equal(d.broadcastKey, "");
    assert.equal(d.jwtSecret, "");
    assert.equal(d.streamsSecret, "");
    assert.equal(run(["--secret", "none"]).derived.secret, "");
  });

  test("turbo and CableReady keys follow the streams secret and their switches", () => {
    assert.equal(run(["--secret", "abc"]).derived.turboSecret, "");
    assert.equal(run(["--secret", "abc", "--turbo_streams"]).derived.turboSecret, "abc");
    assert.equal(run(["--turbo_streams", "--turbo_streams_secret", "t"]).derived.turboSecret, "t");
    assert.equal(run(["--secret", "abc", "--cable_ready"]).derived.cableReadySecret, "abc");
    assert.equal(run(["--cable_ready", "--cable_ready_secret", "c"]).derived.cableReadySecret, "c");
  });
});

describe("broadcast port matrix", () => {
  const cases: Array<[string, string[], number, string]> = [
    ["no secret", [], 8090, ""],
    ["secret", ["--secret", "abc"], 8080, ABC_BROADCAST],
    ["secret, custom port", ["--secret", "abc", "--port", "3000"], 3000, ABC_BROADCAST],
    ["broadcast_key", ["--broadcast_key", "k"], 8080, "k"],
    ["broadcast_key=none", ["--broadcast_key=none"], 8090, ""],
    ["secret + broadcast_key=none", ["--secret", "abc", "--broadcast_key=none"], 8090, ""],
    [
      "explicit http_broadcast_port",
      ["--secret", "abc", "--http_broadcast_port", "9999"],
      9999,
      ABC_BROADCAST,
    ],
    ["public with secret", ["--public", "--secret", "abc"], 8080, ""],
    ["public without secret", ["--public"], 8090, ""],
  ];
  for (const [name, argv, port, key] of cases) {
    test(name, () => {
      const d = run(argv).derived;
      assert.equal(d.broadcastPort, port);
      assert.equal(d.broadcastKey, key);
    });
  }

  test("public implies skipAuth and public streams", () => {
    const d = run(["--public", "--secret", "abc"]).derived;
    assert.equal(d.skipAuth, true);
    assert.equal(d.publicStreams, true);
    assert.equal(d.jwtSecret, "abc");
  });
});

describe("deprecated aliases", () => {
  const cases: Array<[string[], (c: Config) => void, string]> = [
    [["--jwt_id_key", "k"], (c) => assert.equal(c.jwt_secret, "k"), "jwt_id_key"],
    [["--jwt_id_enforce"], (c) => assert.equal(c.enforce_jwt, true), "jwt_id_enforce"],
    [
      ["--turbo_rails_key", "t"],
      (c) => {
        assert.equal(c.turbo_streams_secret, "t");
        assert.equal(c.turbo_streams, true);
        assert.equal(c.derived.turboSecret, "t");
      },
      "turbo_rails_key",
    ],
    [
      ["--cable_ready_key", "c"],
      (c) => {
        assert.equal(c.cable_ready_secret, "c");
        assert.equal(c.derived.cableReadySecret, "c");
      },
      "cable_ready_key",
    ],
    [
      ["--http_broadcast_secret", "h"],
      (c) => assert.equal(c.derived.broadcastKey, "h"),
      "http_broadcast_secret",
    ],
    [
      ["--disable_disconnect"],
      (c) => {
        assert.equal(c.disconnect_mode, "never");
        assert.equal(c.derived.disconnectMode, "never");
      },
      "disable_disconnect",
    ],
    [
      ["--metrics_log_interval", "7", "--metrics_rotate_interval", "0"],
      (c) => assert.equal(c.derived.metricsRotateInterval, 7),
      "metrics_log_interval",
    ],
    [["--disconnect_timeout", "5"], () => {}, "disconnect_timeout"],
    [["--turbo_rails_cleartext"], () => {}, "turbo_rails_cleartext"],
    [["--cable_ready_cleartext"], () => {}, "cable_ready_cleartext"],
    [["--jwt_id_param", "tok"], (c) => assert.equal(c.jwt_param, "jid"), "jwt_id_param"],
  ];
  for (const [argv, check, name] of cases) {
    test(`${name} maps to its replacement and warns once`, () => {
      const { config, warnings } = runFull(argv);
      check(config);
      const lines = warnings.filter((w) => w.includes(name));
      assert.equal(lines.length, 1, warnings.join("\n"));
      assert.match(lines[0], /^DEPRECATION WARNING: /);
      assert.equal(lines[0].includes("\n"), false);
    });
  }

  test("jwt_id_key does not override an explicit jwt_secret", () => {
    assert.equal(run(["--jwt_secret", "a", "--jwt_id_key", "b"]).jwt_secret, "a");
  });

  test("no warnings by default", () => {
    assert.deepEqual(runFull([]).warnings, []);
  });
});

describe("other derived values", () => {
  test("defaults", () => {
    const d = defaultConfig().derived;
    assert.deepEqual(d.paths, ["/cable"]);
    assert.deepEqual(d.broadcastAdapters, ["http", "redis"]);
    assert.deepEqual(d.proxyHeaders, ["cookie"]);
    assert.equal(d.logLevel, "info");
    assert.equal(d.metricsPort, 8080);
    assert.equal(d.rpcImpl, "grpc");
    assert.equal(d.pubsubAdapter, "");
    assert.match(d.nodeId, /^[A-Za-z0-9_-]{6}$/);
    assert.equal(d.nodeIdUserProvided, false);
  });

  test("debug forces the debug log level; metrics port follows the main port", () => {
    const d = run(["--debug", "--log_level", "error", "--port", "4000"]).derived;
    assert.equal(d.logLevel, "debug");
    assert.equal(d.metricsPort, 4000);
    assert.equal(run(["--metrics_port", "9100"]).derived.metricsPort, 9100);
  });

  test("rpc implementation", () => {
    assert.equal(run(["--norpc"]).derived.rpcImpl, "none");
    assert.equal(run(["--rpc_host", "http://app/_anycable"]).derived.rpcImpl, "http");
    assert.equal(run(["--rpc_host", "https://app/_anycable"]).derived.rpcImpl, "http");
    assert.equal(run(["--rpc_host", "dns:///app:50051"]).derived.rpcImpl, "grpc");
    assert.equal(run(["--rpc_host", "http://app", "--rpc_impl", "grpc"]).derived.rpcImpl, "grpc");
  });

  test("pub/sub switches to redis when redis is needed, unless chosen explicitly", () => {
    assert.equal(run(["--broadcast_adapter", "http,redisx"]).derived.pubsubAdapter, "redis");
    assert.equal(run(["--redis_url", "redis://x:1"]).derived.pubsubAdapter, "redis");
    assert.equal(run(["--redis_url", "redis://x:1", "--pubsub", "nats"]).derived.pubsubAdapter, "nats");
  });

  test("same redis channel for broadcasting and pub/sub gets the -int suffix", () => {
    const { config, warnings } = runFull(["--redis_channel", "__anycable_internal__"]);
    assert.equal(config.derived.redisPubsubChannel, "__anycable_internal__-int");
    assert.equal(warnings.length, 1);
    assert.equal(run(["--redis_channel", "x"]).derived.redisPubsubChannel, "__anycable_internal__");
  });

  test("embedded NATS becomes the NATS server when servers were not set", () => {
    assert.equal(
      run(["--embed_nats", "--enats_addr", "nats://0.0.0.0:4333"]).derived.natsServers,
      "nats://0.0.0.0:4333",
    );
    assert.equal(run(["--embed_nats", "--nats_servers", "nats://n:1"]).derived.natsServers, "nats://n:1");
  });

  test("lists: headers are lower-cased, cookies and tags parsed", () => {
    const d = run([
      "--headers",
      "X-Api-Key,Cookie",
      "--proxy-cookies",
      "a,b",
      "--metrics_tags",
      "env:prod,dc:1",
    ]).derived;
    assert.deepEqual(d.proxyHeaders, ["x-api-key", "cookie"]);
    assert.deepEqual(d.proxyCookies, ["a", "b"]);
    assert.deepEqual(d.metricsTags, { env: "prod", dc: "1" });
    assert.deepEqual(run(["--headers="]).derived.proxyHeaders, []);
  });

  test("node_id flag is user-provided", () => {
    const d = run(["--node_id", "abc"]).derived;
    assert.equal(d.nodeId, "abc");
    assert.equal(d.nodeIdUserProvided, true);
  });

  test("api port falls back to the main port", () => {
    assert.equal(run(["--port", "5000"]).derived.apiPort, 5000);
    assert.equal(run(["--api_port", "5001"]).derived.apiPort, 5001);
  });
});

describe("unserved options", () => {
  test("only non-default, non-served options are reported", () => {
    assert.deepEqual(unservedOptions(defaultConfig()), []);
    const c = run([
      "--port",
      "1",
      "--poll",
      "--ds",
      "--broker",
      "memory",
      "--sse",
      "--history_limit",
      "5",
      "--hub_gopool_size",
      "8",
    ]);
    assert.deepEqual(unservedOptions(c), ["hub_gopool_size"]);
  });

  test("adapters not implemented yet are reported", () => {
    assert.deepEqual(unservedAdapters(defaultConfig()), []);
    assert.deepEqual(unservedAdapters(run(["--broadcast_adapter", "http"])), []);
    assert.deepEqual(unservedAdapters(run(["--broadcast_adapter", "http,nats,redisx,redis"])), []);
  });
});

describe("presets", () => {
  const FLY = { FLY_APP_NAME: "app", FLY_REGION: "ams", FLY_ALLOC_ID: "1234" };

  test("fly is detected from the environment", () => {
    const c = run([], { ...FLY, ANYCABLE_FLY_RPC_APP_NAME: "web" });
    assert.deepEqual(c.derived.presets, ["fly"]);
    assert.equal(c.host, "0.0.0.0");
    assert.equal(c.embed_nats, true);
    assert.equal(c.derived.pubsubAdapter, "nats");
    assert.equal(c.derived.natsServers, "nats://0.0.0.0:4222");
    assert.deepEqual(c.derived.broadcastAdapters, ["http", "nats"]);
    assert.equal(c.enats_cluster_name, "app-ams-cluster");
    assert.deepEqual(c.enats_cluster_routes, ["nats://ams.app.internal:5222"]);
    assert.match(c.enats_server_name, /^fly-ams-1234-[A-Za-z0-9_-]{3}$/);
    assert.equal(c.rpc_host, "dns:///ams.web.internal:50051");
    // the broadcast endpoint shares the port Fly routes, as the docs say
    assert.equal(c.derived.broadcastPort, 8080);
  });

  test("fly: the RPC app name as the Fly guide spells it; an explicit broadcast port is kept", () => {
    const c = run(["--http_broadcast_port", "9000"], { ...FLY, FLY_ANYCABLE_RPC_APP_NAME: "rails" });
    assert.equal(c.rpc_host, "dns:///ams.rails.internal:50051");
    assert.equal(c.derived.broadcastPort, 9000);
    const both = run([], { ...FLY, ANYCABLE_FLY_RPC_APP_NAME: "web", FLY_ANYCABLE_RPC_APP_NAME: "rails" });
    assert.equal(both.rpc_host, "dns:///ams.web.internal:50051", "anycable-go's spelling wins");
  });

  test("fly with redis keeps redis pub/sub; explicit values are kept", () => {
    const c = run(["--host", "127.0.0.1"], { ...FLY, REDIS_URL: "redis://r:6379" });
    assert.equal(c.host, "127.0.0.1");
    assert.equal(c.embed_nats, false);
    assert.equal(c.derived.pubsubAdapter, "redis");
    assert.deepEqual(c.derived.broadcastAdapters, ["http", "redis"]);
  });

  test("--ds without a broker is an error naming what to set; a broker preset is enough", () => {
    const bare = load(["--ds"]);
    assert.equal(bare.kind, "error");
    if (bare.kind === "error")
      assert.match(bare.message, /^--ds needs a broker for history: set --broker=memory/);
    assert.equal(load(["--ds", "--broker=none"]).kind, "error");
    assert.equal(load(["--ds", "--presets=broker"]).kind, "run");
    assert.equal(load(["--ds", "--broker=memory"]).kind, "run");
  });

  test("an explicit fly preset without FLY_REGION is an error", () => {
    const result = load(["--presets", "fly"], { FLY_APP_NAME: "app" });
    assert.equal(result.kind, "error");
    if (result.kind === "error") assert.match(result.message, /FLY_REGION/);
  });

  test("heroku is detected from HEROKU_APP_ID and HEROKU_DYNO_ID", () => {
    const c = run([], { HEROKU_APP_ID: "a", HEROKU_DYNO_ID: "d" });
    assert.deepEqual(c.derived.presets, ["heroku"]);
    assert.equal(c.host, "0.0.0.0");
    assert.equal(run([], { HEROKU_APP_ID: "a" }).host, "localhost");
  });

  test("heroku puts the broadcast endpoint on $PORT unless a port was given; a bad PORT is an error", () => {
    const HEROKU = { HEROKU_APP_ID: "a", HEROKU_DYNO_ID: "d" };
    assert.equal(run(["--port", "5000"], { ...HEROKU, PORT: "5000" }).derived.broadcastPort, 5000);
    assert.equal(
      run([], { ...HEROKU, PORT: "5000", ANYCABLE_HTTP_BROADCAST_PORT: "7000" }).derived.broadcastPort,
      7000,
    );
    assert.equal(run([], HEROKU).derived.broadcastPort, 8090, "no PORT: the default");
    const bad = load([], { ...HEROKU, PORT: "web" });
    assert.equal(bad.kind, "error");
    if (bad.kind === "error") assert.match(bad.message, /PORT/);
  });

  test("the applied presets are logged once, as anycable-go does", () => {
    const lines: string[] = [];
    const logger = new Logger("info", "text", {}, { write: (l) => lines.push(l) });
    logPresets(logger, run([], FLY));
    logPresets(logger, run([], {}));
    // anycable-go names what was asked for, "none" included
    logPresets(logger, run(["--presets", "none"], FLY));
    assert.equal(lines.length, 2);
    assert.match(lines[0]!, / INF load presets presets=fly .*context=config/);
    assert.match(lines[1]!, / INF load presets presets=none /);
  });

  test("user presets replace detection; none disables", () => {
    assert.equal(run(["--presets", "none"], FLY).host, "localhost");
    const c = run(["--presets", "broker"], FLY);
    assert.deepEqual(c.derived.presets, ["broker"]);
    assert.equal(c.broker, "memory");
    assert.deepEqual(c.derived.broadcastAdapters, ["http"]);
  });

  test("broker preset with redis", () => {
    const c = run(["--presets=broker", "--redis_url", "redis://r:1"]);
    assert.deepEqual(c.derived.broadcastAdapters, ["http", "redisx", "redis"]);
    assert.equal(c.derived.pubsubAdapter, "redis");
    assert.equal(c.broker, "redis", "the Redis broker, as AnyCable Pro's docs describe");
    const given = run(["--presets=broker", "--redis_url", "redis://r:1", "--broker=memory"]);
    assert.equal(given.broker, "memory", "a broker given explicitly stays");
  });

  test("broker preset with Postgres as the only engine: the Postgres broker, broadcasting and pub/sub", () => {
    for (const [argv, env] of [
      [["--presets=broker", "--postgres_url", "postgres://db/app"], {}],
      [["--presets=broker"], { DATABASE_URL: "postgres://db/app" }],
      [["--presets=broker", "--broadcast_adapter=http,postgres"], {}],
    ] as Array<[string[], Record<string, string>]>) {
      const c = run(argv, env);
      assert.equal(c.broker, "postgres", argv.join(" "));
      assert.deepEqual(c.derived.broadcastAdapters, ["http", "postgres"]);
      assert.equal(c.derived.pubsubAdapter, "postgres");
    }
    // another engine besides Postgres keeps its own rule
    const both = run(["--presets=broker", "--redis_url", "redis://r:1"], {
      DATABASE_URL: "postgres://db/app",
    });
    assert.equal(both.broker, "redis");
    assert.equal(
      run(["--presets=broker", "--embed_nats"], { DATABASE_URL: "postgres://db/app" }).broker,
      "nats",
    );
    // a broker given explicitly stays; --broker=postgres alone switches pub/sub to Postgres
    assert.equal(
      run(["--presets=broker", "--broker=memory"], { DATABASE_URL: "postgres://db/app" }).broker,
      "memory",
    );
    const explicit = run(["--broker=postgres"]);
    assert.equal(explicit.derived.pubsubAdapter, "postgres");
  });

  test("broker preset with embedded NATS: the NATS broker on JetStream, as anycable-go's presets.go", () => {
    const c = run(["--presets=broker", "--embed_nats"]);
    assert.equal(c.broker, "nats");
    assert.deepEqual(c.derived.broadcastAdapters, ["http", "nats"]);
    assert.equal(c.derived.pubsubAdapter, "nats");
    assert.equal(enatsFromConfig(c).jetstream, true, "JetStream switched on for the broker");
    assert.equal(enatsFromConfig(run(["--embed_nats"])).jetstream, false);
  });
});
