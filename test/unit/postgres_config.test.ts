// The postgres options: anycable's PR's names and defaults, DATABASE_URL as a fallback, pub/sub
// chosen from the broadcast adapters, the [postgres] section of --print-config.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { type Config, loadConfig } from "../../src/config/index.ts";
import { describePostgresUrl } from "../../src/postgres/connection.ts";
import { validateNames } from "../../src/postgres/names.ts";
import { defaults, fromConfig } from "../../src/postgres/options.ts";

function run(argv: string[], env: Record<string, string> = {}, files: Record<string, string> = {}): Config {
  const r = loadConfig({ argv, env, readFile: (p) => files[p] });
  if (r.kind !== "run") assert.fail(`expected a config, got ${JSON.stringify(r)}`);
  return r.config;
}

function printed(argv: string[], env: Record<string, string> = {}): string {
  const r = loadConfig({ argv: [...argv, "--print-config"], env, readFile: () => undefined });
  if (r.kind !== "exit") assert.fail(`expected print-config output, got ${JSON.stringify(r)}`);
  return r.output;
}

describe("postgres options", () => {
  test("defaults are the PR's", () => {
    const o = fromConfig(run([]));
    assert.deepEqual(
      { ...o, claimId: "x" },
      {
        url: "postgres://localhost:5432/postgres?sslmode=disable",
        ensureSchema: true,
        broadcastsTable: "anycable_broadcasts",
        pubsubTable: "anycable_pubsub",
        offsetsTable: "anycable_stream_offsets",
        broadcastChannel: "anycable_broadcasts",
        pubsubChannel: "anycable_pubsub",
        internalStream: "__anycable_internal__",
        pollIntervalMs: 500,
        batchSize: 100,
        claimTimeoutSec: 30,
        maxAttempts: 5,
        exhaustedPolicy: "skip",
        retentionSec: 300,
        cleanupIntervalSec: 60,
        startupAttempts: 5,
        // ours (the PR has no broker)
        brokerTablePrefix: "anycable_broker",
        claimId: "x",
      },
    );
    assert.deepEqual({ ...defaults(o.url), claimId: "x" }, { ...o, claimId: "x" });
  });

  test("the URL from the flag, ANYCABLE_POSTGRES_URL, then DATABASE_URL", () => {
    const db = "postgres://app:pw@db:5432/app_production";
    assert.equal(fromConfig(run([], { DATABASE_URL: db })).url, db);
    assert.equal(
      fromConfig(run([], { DATABASE_URL: db, ANYCABLE_POSTGRES_URL: "postgres://other/x" })).url,
      "postgres://other/x",
    );
    assert.equal(
      fromConfig(
        run(["--postgres_url", "postgres://flag/y"], { ANYCABLE_POSTGRES_URL: "postgres://other/x" }),
      ).url,
      "postgres://flag/y",
    );
    assert.equal(
      fromConfig(
        run(["--config-path", "/a.toml"], {}, { "/a.toml": '[postgres]\nurl = "postgres://toml/z"\n' }),
      ).url,
      "postgres://toml/z",
    );
  });

  test("every setting from flags, env and TOML", () => {
    const c = run(
      [
        "--postgres_batch_size",
        "7",
        "--postgres_exhausted_broadcast_policy",
        "block",
        "--postgres_ensure_schema=false",
      ],
      { ANYCABLE_POSTGRES_CLAIM_TIMEOUT_SECONDS: "9", ANYCABLE_POSTGRES_PUBSUB_TABLE: "signals.pubsub" },
      {},
    );
    const o = fromConfig(c);
    assert.equal(o.batchSize, 7);
    assert.equal(o.exhaustedPolicy, "block");
    assert.equal(o.ensureSchema, false);
    assert.equal(o.claimTimeoutSec, 9);
    assert.equal(o.pubsubTable, "signals.pubsub");
    const r = loadConfig({
      argv: ["--postgres_exhausted_broadcast_policy", "later"],
      env: {},
      readFile: () => undefined,
    });
    assert.equal(r.kind, "error", "an unknown policy is refused");
    const z = loadConfig({ argv: ["--postgres_batch_size", "0"], env: {}, readFile: () => undefined });
    assert.equal(z.kind, "error", "a batch of 0 is refused");
  });

  test("--broadcast_adapter=postgres picks pubsub=postgres unless pub/sub is chosen", () => {
    assert.equal(run(["--broadcast_adapter", "http,postgres"]).derived.pubsubAdapter, "postgres");
    assert.equal(run(["--broadcast_adapter", "postgres", "--pubsub", "nats"]).derived.pubsubAdapter, "nats");
    assert.equal(run(["--broadcast_adapter", "postgres", "--pubsub", "none"]).derived.pubsubAdapter, "none");
    assert.equal(run(["--broadcast_adapter", "http"]).derived.pubsubAdapter, "");
    // As in the PR: the Redis rule comes first (a Redis URL set means Redis pub/sub).
    assert.equal(
      run(["--broadcast_adapter", "postgres"], { REDIS_URL: "redis://r:6379" }).derived.pubsubAdapter,
      "redis",
    );
  });

  test("print-config writes [postgres] only when it is in use or set", () => {
    assert.doesNotMatch(printed([]), /\[postgres\]/);
    const out = printed(["--broadcast_adapter", "postgres", "--postgres_batch_size", "50"]);
    assert.match(out, /^\[postgres\]$/m);
    assert.match(out, /^batch_size = 50$/m);
    assert.match(out, /^url = "postgres:\/\/localhost:5432\/postgres\?sslmode=disable"$/m);
    assert.match(out, /^pubsub_adapter = "postgres"$/m);
    const again = run(["--config-path", "/p.toml"], {}, { "/p.toml": out });
    assert.equal(again.postgres_batch_size, 50);
    assert.deepEqual(again.derived.broadcastAdapters, ["postgres"]);
    assert.equal(again.derived.pubsubAdapter, "postgres");
  });

  test("names are checked; URLs are logged without their password", () => {
    assert.equal(validateNames(defaults("postgres://x")), undefined);
    assert.match(
      String(validateNames(defaults("postgres://x", { broadcastsTable: "a.b.c" }))),
      /schema\.table/,
    );
    assert.match(String(validateNames(defaults("postgres://x", { pubsubChannel: " x" }))), /whitespace/);
    assert.match(
      String(validateNames(defaults("postgres://x", { pubsubTable: "anycable_broadcasts" }))),
      /different/,
    );
    assert.equal(describePostgresUrl("postgres://app:secret@db:5432/x"), "postgres://app:***@db:5432/x");
    assert.ok(!describePostgresUrl("postgres://app:secret@db/x").includes("secret"));
  });
});
