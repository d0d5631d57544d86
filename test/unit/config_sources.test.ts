import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { type Config, type LoadResult, loadConfig } from "../../src/config/index.ts";

type Files = Record<string, string>;
const load = (argv: string[], env: Record<string, string> = {}, files: Files = {}): LoadResult =>
  loadConfig({ argv, env, readFile: (p) => files[p] });

function run(argv: string[], env: Record<string, string> = {}, files: Files = {}): Config {
  const result = load(argv, env, files);
  if (result.kind !== "run") assert.fail(`expected a run result, got ${JSON.stringify(result)}`);
  return result.config;
}

function error(argv: string[], env: Record<string, string> = {}, files: Files = {}): string {
  const result = load(argv, env, files);
  if (result.kind !== "error") assert.fail(`expected an error, got ${result.kind}`);
  return result.message;
}

const FILE = { "/cfg.toml": "[server]\nport = 7000\nhost = 'file-host'\n[logging]\nlevel = 'warn'\n" };

describe("precedence: flags > env > file > defaults", () => {
  test("file over defaults", () => {
    const c = run(["--config-path", "/cfg.toml"], {}, FILE);
    assert.equal(c.port, 7000);
    assert.equal(c.host, "file-host");
    assert.equal(c.log_level, "warn");
    assert.equal(c.derived.configPath, "/cfg.toml");
  });

  test("env over file", () => {
    const c = run(["--config-path", "/cfg.toml"], { ANYCABLE_PORT: "7100" }, FILE);
    assert.equal(c.port, 7100);
    assert.equal(c.host, "file-host");
  });

  test("flag over env and file", () => {
    const c = run(["--config-path", "/cfg.toml", "--port", "7200"], { ANYCABLE_PORT: "7100" }, FILE);
    assert.equal(c.port, 7200);
  });

  test("max_subscriptions_per_connection (anycable-ts only): default 1000, flag, env, [server] key", () => {
    assert.equal(run([]).max_subscriptions_per_connection, 1000);
    const file = { "/s.toml": "[server]\nmax_subscriptions_per_connection = 5\n" };
    assert.equal(run(["--config-path", "/s.toml"], {}, file).max_subscriptions_per_connection, 5);
    const env = { ANYCABLE_MAX_SUBSCRIPTIONS_PER_CONNECTION: "7" };
    assert.equal(run(["--config-path", "/s.toml"], env, file).max_subscriptions_per_connection, 7);
    assert.equal(run(["--max-subscriptions-per-connection", "0"], env).max_subscriptions_per_connection, 0);
    assert.match(error(["--max_subscriptions_per_connection", "-1"]), /max_subscriptions_per_connection/);
  });

  test("broker bounds (anycable-ts only): defaults, flag, env, [broker] keys", () => {
    const c = run([]);
    assert.deepEqual([c.broker_max_streams, c.broker_max_sessions], [100000, 100000]);
    const file = { "/b.toml": "[broker]\nmax_streams = 50\nmax_sessions = 60\n" };
    const fromFile = run(["--config-path", "/b.toml"], {}, file);
    assert.deepEqual([fromFile.broker_max_streams, fromFile.broker_max_sessions], [50, 60]);
    const env = { ANYCABLE_BROKER_MAX_STREAMS: "70", ANYCABLE_BROKER_MAX_SESSIONS: "80" };
    const fromEnv = run(["--config-path", "/b.toml"], env, file);
    assert.deepEqual([fromEnv.broker_max_streams, fromEnv.broker_max_sessions], [70, 80]);
    assert.equal(run(["--broker_max_streams", "1"], env).broker_max_streams, 1);
  });

  test("broker limits and TTLs below their minimum are errors naming the option", () => {
    assert.match(error(["--history_limit", "0"]), /-history_limit: must be at least 1/);
    assert.match(error([], { ANYCABLE_HISTORY_TTL: "-1" }), /ANYCABLE_HISTORY_TTL.*must be at least 0/);
    assert.match(error(["--sessions_ttl=-5"]), /sessions_ttl: must be at least 0/);
    assert.match(error(["--presence_ttl", "-1"]), /presence_ttl: must be at least 0/);
    assert.match(error(["--broker_max_sessions", "0"]), /broker_max_sessions: must be at least 1/);
    const file = { "/b.toml": "[broker]\nmax_streams = 0\n" };
    assert.match(
      error(["--config-path", "/b.toml"], {}, file),
      /broker\.max_streams: invalid value 0: must be at least 1/,
    );
    const zero = run([
      "--history_ttl",
      "0",
      "--sessions_ttl",
      "0",
      "--presence_ttl",
      "0",
      "--history_limit",
      "1",
    ]);
    assert.deepEqual(
      [zero.history_ttl, zero.sessions_ttl, zero.presence_ttl, zero.history_limit],
      [0, 0, 0, 1],
    );
  });

  test("PORT env is read, ANYCABLE_PORT wins over it", () => {
    assert.equal(run([], { PORT: "5000" }).port, 5000);
    assert.equal(run([], { PORT: "5000", ANYCABLE_PORT: "5001" }).port, 5001);
  });

  test("REDIS_URL env is read and switches pub/sub to redis", () => {
    const c = run([], { REDIS_URL: "redis://r:6379/1" });
    assert.equal(c.redis_url, "redis://r:6379/1");
    assert.equal(c.derived.pubsubAdapter, "redis");
  });

  test("NATS_URL is not an anycable-go env var", () => {
    assert.equal(run([], { NATS_URL: "nats://x:4222" }).nats_servers, "nats://127.0.0.1:4222");
  });

  test("env: empty numeric is ignored, empty boolean is false, empty string is kept", () => {
    const c = run([], { ANYCABLE_PORT: "", ANYCABLE_STREAMS_PRESENCE: "", ANYCABLE_HOST: "" });
    assert.equal(c.port, 8080);
    assert.equal(c.streams_presence, false);
    assert.equal(c.host, "");
  });

  test("env values are parsed and validated", () => {
    assert.equal(run([], { ANYCABLE_DEBUG: "true" }).debug, true);
    assert.deepEqual(run([], { ANYCABLE_HEADERS: "Authorization,Cookie" }).derived.proxyHeaders, [
      "authorization",
      "cookie",
    ]);
    assert.match(error([], { ANYCABLE_PORT: "abc" }), /"abc".*"ANYCABLE_PORT".*flag port/);
    assert.match(error([], { ANYCABLE_LOG_LEVEL: "loud" }), /"loud".*ANYCABLE_LOG_LEVEL.*log_level/);
    // Env vars are read before argv is parsed, as urfave/cli does.
    assert.match(error(["--help"], { ANYCABLE_DEBUG: "maybe" }), /ANYCABLE_DEBUG/);
  });

  test("flags without env vars ignore the environment", () => {
    const c = run([], { ANYCABLE_CONFIG_PATH: "/cfg.toml", ANYCABLE_PRINT_CONFIG: "true" }, FILE);
    assert.equal(c.port, 8080);
  });
});

describe("config file discovery", () => {
  test("./anycable.toml is loaded implicitly, before /etc/anycable/anycable.toml", () => {
    const files = {
      "./anycable.toml": "[server]\nport = 1111\n",
      "/etc/anycable/anycable.toml": "[server]\nport = 2222\n",
    };
    assert.equal(run([], {}, files).port, 1111);
    assert.equal(
      run([], {}, { "/etc/anycable/anycable.toml": files["/etc/anycable/anycable.toml"] }).port,
      2222,
    );
  });

  test("--config-path replaces the implicit file", () => {
    const files = { "./anycable.toml": "[server]\nport = 1111\n", "/x.toml": "[server]\nhost = 'x'\n" };
    const c = run(["--config-path=/x.toml"], {}, files);
    assert.equal(c.port, 8080);
    assert.equal(c.host, "x");
  });

  test("--ignore-config-path skips every file", () => {
    const files = { "./anycable.toml": "[server]\nport = 1111\n", "/x.toml": "[server]\nport = 3\n" };
    assert.equal(run(["--ignore-config-path"], {}, files).port, 8080);
    assert.equal(run(["--ignore-config-path", "--config-path", "/x.toml"], {}, files).port, 8080);
  });

  test("a missing --config-path file is an error naming it", () => {
    assert.match(error(["--config-path", "/nope.toml"]), /\/nope\.toml/);
  });

  test("a file that does not parse is an error naming the file", () => {
    const message = error(["--config-path", "/bad.toml"], {}, { "/bad.toml": "[server\nport = 1\n" });
    assert.match(message, /\/bad\.toml/);
    assert.equal(message.includes("\n"), false);
  });

  test("a value of the wrong type is an error naming file and key", () => {
    const message = error(["--config-path", "/t.toml"], {}, { "/t.toml": "[server]\nport = '80'\n" });
    assert.match(message, /\/t\.toml.*server\.port.*integer/);
    assert.match(
      error(["--config-path", "/t.toml"], {}, { "/t.toml": "[ws]\npaths = '/cable'\n" }),
      /ws\.paths.*array/,
    );
    assert.match(error(["--config-path", "/t.toml"], {}, { "/t.toml": "public = 1\n" }), /public.*boolean/);
    assert.match(
      error(["--config-path", "/t.toml"], {}, { "/t.toml": "[server]\nport = 99999999999999999999\n" }),
      /server\.port.*out of range/,
    );
    assert.match(
      error(["--config-path", "/t.toml"], {}, { "/t.toml": "[logging]\nlevel = 'loud'\n" }),
      /logging\.level.*"loud"/,
    );
  });

  test("unknown keys are ignored; keys match case-insensitively like BurntSushi/toml", () => {
    const c = run(
      ["--config-path", "/t.toml"],
      {},
      {
        "/t.toml": "whatever = 1\n[server]\nPORT = 4321\nnope = true\n[unknown]\nx = 1\n",
      },
    );
    assert.equal(c.port, 4321);
  });

  test("anycable-go's untagged struct fields are honoured", () => {
    const c = run(
      ["--config-path", "/t.toml"],
      {},
      {
        "/t.toml": "DisconnectorDisabled = true\n[disconnector]\nrate = 7\nbacklog = 9\n",
      },
    );
    assert.equal(c.disable_disconnect, true);
    assert.equal(c.derived.disconnectMode, "never");
    assert.equal(c.disconnect_rate, 7);
    assert.equal(c.disconnect_backlog_size, 9);
  });

  test("node_id from the file counts as user-provided", () => {
    const c = run(["--config-path", "/t.toml"], {}, { "/t.toml": 'node_id = "n1"\n' });
    assert.equal(c.derived.nodeId, "n1");
    assert.equal(c.derived.nodeIdUserProvided, true);
  });

  test("an empty list flag keeps the file value (anycable-go only applies non-empty ones)", () => {
    const files = { "/t.toml": 'broadcast_adapters = ["http"]\n' };
    assert.deepEqual(run(["--config-path", "/t.toml", "--broadcast_adapter="], {}, files).broadcast_adapter, [
      "http",
    ]);
  });
});

describe("telemetry variables", () => {
  test("are accepted without a warning and change nothing (anycable-ts sends no telemetry)", () => {
    const env = {
      ANYCABLE_DISABLE_TELEMETRY: "true",
      ANYCABLE_TELEMETRY_URL: "https://telemetry.example/",
      ANYCABLE_TELEMETRY_DEBUG: "1",
    };
    const with_ = load([], env);
    const without = load([]);
    assert.equal(with_.kind, "run");
    if (with_.kind !== "run" || without.kind !== "run") return;
    assert.deepEqual(with_.warnings, without.warnings);
    const { nodeId: _a, ...d1 } = with_.config.derived;
    const { nodeId: _b, ...d2 } = without.config.derived;
    assert.deepEqual({ ...with_.config, derived: d1 }, { ...without.config, derived: d2 });
  });
});
