import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { parseArgv } from "../../src/config/argv.ts";
import { type Config, type LoadResult, loadConfig } from "../../src/config/index.ts";
import { parseGoInt } from "../../src/config/values.ts";
import { ANYCABLE_GO_COMPAT, VERSION, VERSION_STRING } from "../../src/version.ts";

const load = (argv: string[], env: Record<string, string> = {}): LoadResult =>
  loadConfig({ argv, env, readFile: () => undefined });

function run(argv: string[], env: Record<string, string> = {}): Config {
  const result = load(argv, env);
  if (result.kind !== "run") assert.fail(`expected a run result, got ${JSON.stringify(result)}`);
  return result.config;
}

function error(argv: string[], env: Record<string, string> = {}): string {
  const result = load(argv, env);
  if (result.kind !== "error") assert.fail(`expected an error, got ${result.kind}`);
  return result.message;
}

describe("argv forms", () => {
  test("single dash, double dash, = and separate value", () => {
    assert.equal(run(["-port", "9000"]).port, 9000);
    assert.equal(run(["--port=9001"]).port, 9001);
    assert.equal(run(["--port", "9002"]).port, 9002);
    assert.equal(run(["-port=9003"]).port, 9003);
  });

  test("booleans: bare flag and explicit values", () => {
    assert.equal(run(["--debug"]).debug, true);
    assert.equal(run(["--debug=false"]).debug, false);
    assert.equal(run(["--debug=0"]).debug, false);
    assert.equal(run(["--debug=1"]).debug, true);
    assert.equal(run(["--debug=true"]).debug, true);
    assert.equal(run(["--streams_presence=false"]).streams_presence, false);
    assert.equal(run([]).streams_presence, true);
  });

  test("a bare boolean does not consume the next argument", () => {
    const c = run(["--debug", "--port", "7000"]);
    assert.equal(c.debug, true);
    assert.equal(c.port, 7000);
  });

  test("snake and kebab spellings are interchangeable", () => {
    assert.equal(run(["--rpc-host", "x:1"]).rpc_host, "x:1");
    assert.equal(run(["--rpc_host", "y:2"]).rpc_host, "y:2");
    assert.equal(run(["--max_conn", "5"]).max_conn, 5);
    assert.equal(run(["--max-conn", "6"]).max_conn, 6);
    assert.deepEqual(run(["--proxy_cookies=a,b"]).proxy_cookies, ["a", "b"]);
    assert.equal(run(["--health_path", "/up"]).health_path, "/up");
  });

  test("the last occurrence wins", () => {
    assert.equal(run(["--port", "1", "--port", "2"]).port, 2);
  });

  test("a value may start with a dash", () => {
    assert.equal(run(["--secret", "-abc"]).secret, "-abc");
  });

  test("list flags split on commas (enats_gateways on semicolons)", () => {
    const c = run(["--path", "/a,/b", "--broadcast_adapter=http,nats", "--enats_gateways", "a:x,y;b:z"]);
    assert.deepEqual(c.path, ["/a", "/b"]);
    assert.deepEqual(c.broadcast_adapter, ["http", "nats"]);
    assert.deepEqual(c.enats_gateways, ["a:x,y", "b:z"]);
  });

  test("Go integer syntax: hex, octal, binary, underscores", () => {
    assert.equal(run(["--port=0x1f90"]).port, 8080);
    assert.equal(run(["--port=010"]).port, 8);
    assert.equal(run(["--port=0o17"]).port, 15);
    assert.equal(run(["--port=0b101"]).port, 5);
    assert.equal(run(["--port=9_000"]).port, 9000);
    assert.equal(parseGoInt("08080"), "parse error");
    assert.equal(parseGoInt("1__0"), "parse error");
    assert.equal(parseGoInt("_1"), "parse error");
    assert.equal(parseGoInt("0o"), "parse error");
    assert.equal(parseGoInt("-12"), -12);
    assert.equal(parseGoInt("-12", true), "parse error");
    assert.equal(parseGoInt("9007199254740993"), "value out of range");
  });

  test("parsing stops at the first positional argument or after --", () => {
    const parsed = parseArgv(["--port", "1", "serve", "--port", "2"]);
    assert.ok(parsed.ok);
    assert.equal(parsed.flags.length, 1);
    assert.deepEqual(parsed.rest, ["serve", "--port", "2"]);
    const result = load(["--port", "1", "--", "--port", "2"]);
    assert.equal(result.kind, "run");
    if (result.kind === "run") {
      assert.equal(result.config.port, 1);
      assert.ok(result.warnings.some((w) => w.includes("--port 2")));
    }
  });
});

describe("argv errors", () => {
  test("unknown flag names the flag as typed", () => {
    assert.equal(error(["--xyz"]), "flag provided but not defined: -xyz");
    assert.equal(error(["-rpc-hots=1"]), "flag provided but not defined: -rpc-hots");
  });

  test("TOML-only settings are not flags", () => {
    assert.equal(error(["--redis_pubsub_channel=x"]), "flag provided but not defined: -redis_pubsub_channel");
  });

  test("bad integer names flag and value", () => {
    assert.equal(error(["-port", "abc"]), 'invalid value "abc" for flag -port: parse error');
    assert.equal(error(["--max_conn=1.5"]), 'invalid value "1.5" for flag -max_conn: parse error');
    assert.equal(
      error(["--ws_max_pending_size=-1"]),
      'invalid value "-1" for flag -ws_max_pending_size: parse error',
    );
  });

  test("bad boolean", () => {
    assert.equal(error(["--debug=yes"]), 'invalid boolean value "yes" for -debug: parse error');
  });

  test("unknown choice names flag and value", () => {
    const message = error(["--log_level", "verbose"]);
    assert.match(
      message,
      /^invalid value "verbose" for flag -log_level: must be one of debug, info, warn, error$/,
    );
    assert.match(error(["--log_format=xml"]), /"xml" for flag -log_format/);
    assert.match(error(["--disconnect_mode=sometimes"]), /"sometimes" for flag -disconnect_mode/);
    assert.match(error(["--ping_timestamp_precision=us"]), /"us" for flag -ping_timestamp_precision/);
    assert.match(error(["--broadcast_adapter=http,kafka"]), /"http,kafka" for flag -broadcast_adapter/);
    assert.match(error(["--pubsub=kafka"]), /"kafka" for flag -pubsub/);
    assert.match(error(["--broker=kafka"]), /"kafka" for flag -broker/);
  });

  test("ports out of range, before anything starts", () => {
    assert.equal(error(["--port=70000"]), 'invalid value "70000" for flag -port: must be at most 65535');
    assert.equal(error(["--port=0"]), 'invalid value "0" for flag -port: must be at least 1');
    assert.match(
      error(["--http_broadcast_port=65536"]),
      /"65536" for flag -http_broadcast_port: must be at most 65535/,
    );
    assert.match(error(["--metrics_port=-1"]), /-metrics_port/);
    assert.match(error([], { PORT: "99999" }), /99999/);
  });

  test("missing value", () => {
    assert.equal(error(["--port"]), "flag needs an argument: -port");
  });

  test("bad syntax", () => {
    assert.equal(error(["---port=1"]), "bad flag syntax: ---port=1");
  });

  test("metrics tags need key:value pairs", () => {
    assert.match(error(["--metrics_tags=env"]), /for flag -metrics_tags/);
  });
});

describe("help and version", () => {
  test("-h and --help", () => {
    for (const flag of ["-h", "--help", "-help"]) {
      const result = load([flag]);
      assert.equal(result.kind, "exit");
      if (result.kind === "exit") assert.match(result.output, /GLOBAL OPTIONS:/);
    }
  });

  test("-v prints the version only", () => {
    for (const flag of ["-v", "--version"]) {
      const result = load([flag]);
      assert.deepEqual(result, { kind: "exit", code: 0, output: `${ANYCABLE_GO_COMPAT}-ts${VERSION}\n` });
      assert.match(VERSION_STRING, /^1\.6\.16-ts/);
    }
  });

  test("--help=false does not show help", () => {
    assert.equal(load(["--help=false"]).kind, "run");
  });
});
