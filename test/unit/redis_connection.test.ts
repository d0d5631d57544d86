// The Redis connection settings every Redis part shares (redis/connection.ts, redis/supervisor.ts):
// URL parsing as anycable-go's, the node-redis options they become, and real connections to
// redis-server with a password and database, and over TLS (verification, CA, client certificates).
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Logger } from "../../src/log/logger.ts";
import { clientOptions, describeTarget, describeUrl, parseRedisUrl } from "../../src/redis/connection.ts";
import type { Options } from "../../src/redis/options.ts";
import { giveUpMessage, type RedisClient, RedisSupervisor } from "../../src/redis/supervisor.ts";
import { makeTestCerts, type TestCerts } from "../support/certs.ts";
import { redisOptions } from "../support/redis_options.ts";
import { hasService, type ServiceProcess, startRedis } from "../support/services.ts";
import { waitFor } from "../support/wait.ts";

const silent = new Logger("error", "text", {}, { write() {} });
const never = () => 1000;

describe("Redis URL", () => {
  it("parses like anycable-go: scheme optional, trailing slash ignored, credentials and db", () => {
    assert.deepEqual(parseRedisUrl("localhost:6380/"), {
      ok: true,
      target: { host: "localhost", port: 6380, tls: false },
      extraUrls: 0,
    });
    assert.deepEqual(parseRedisUrl("rediss://user:p%40ss@redis.example:6390/4"), {
      ok: true,
      target: {
        host: "redis.example",
        port: 6390,
        tls: true,
        username: "user",
        password: "p@ss",
        database: 4,
      },
      extraUrls: 0,
    });
    assert.deepEqual(parseRedisUrl("redis://:secret@[::1]"), {
      ok: true,
      target: { host: "::1", port: 6379, tls: false, password: "secret" },
      extraUrls: 0,
    });
    const cluster = parseRedisUrl("redis://a:1,redis://b:2");
    assert.ok(cluster.ok && cluster.extraUrls === 1 && cluster.target.host === "a");
  });

  it("rejects what cannot be a Redis URL, without echoing the password", () => {
    assert.equal(parseRedisUrl("http://localhost:6379").ok, false);
    assert.equal(parseRedisUrl("redis://localhost:6379/db1").ok, false);
    assert.equal(parseRedisUrl("").ok, false);
    const bad = parseRedisUrl("redis://u:topsecret@bad host:1");
    assert.ok(!bad.ok && !bad.error.includes("topsecret"), JSON.stringify(bad));
    assert.equal(describeTarget({ url: "redis://u:pw@h:7/1" }), "h:7");
  });
});

describe("node-redis options", () => {
  const files: Record<string, string> = { "/ca.pem": "CA", "/c.pem": "CERT", "/c.key": "KEY" };
  const read = (p: string) => {
    const v = files[p];
    if (v === undefined) throw new Error(`ENOENT: ${p}`);
    return v;
  };

  it("maps the URL, keepalive and the offline queue", () => {
    const o = clientOptions(redisOptions("redis://u:pw@h:7/2", { keepaliveIntervalSec: 12 }), never, read);
    assert.deepEqual(
      { ...o, socket: { ...o.socket, reconnectStrategy: undefined } },
      {
        socket: {
          host: "h",
          port: 7,
          tls: false,
          keepAlive: true,
          keepAliveInitialDelay: 12_000,
          reconnectStrategy: undefined,
        },
        disableOfflineQueue: true,
        username: "u",
        password: "pw",
        database: 2,
      },
    );
    const off = clientOptions(redisOptions("redis://h", { keepaliveIntervalSec: -1 }), never, read);
    assert.equal((off.socket as { keepAlive?: boolean }).keepAlive, false);
  });

  it("maps rediss:// and the TLS settings (verification off unless --redis_tls_verify)", () => {
    const plain = clientOptions(redisOptions("rediss://h:1"), never, read).socket as Record<string, unknown>;
    assert.equal(plain.tls, true);
    assert.equal(plain.rejectUnauthorized, false);
    assert.equal(plain.ca, undefined);
    const full = clientOptions(
      redisOptions("rediss://h:1", {
        tlsVerify: true,
        tlsCaCertPath: "/ca.pem",
        tlsClientCertPath: "/c.pem",
        tlsClientKeyPath: "/c.key",
      }),
      never,
      read,
    ).socket as Record<string, unknown>;
    assert.deepEqual([full.rejectUnauthorized, full.ca, full.cert, full.key], [true, "CA", "CERT", "KEY"]);
    assert.throws(
      () => clientOptions(redisOptions("rediss://h", { tlsCaCertPath: "/missing" }), never, read),
      /ENOENT/,
    );
  });
});

/** Connects once (no retries): the client when it got ready, the error otherwise. */
async function tryConnect(
  o: Options,
): Promise<{ client?: RedisClient; error?: string; close(): Promise<void> }> {
  const fatals: Error[] = [];
  const supervisor = new RedisSupervisor({ ...o, maxReconnectAttempts: 0 }, silent, (e) => fatals.push(e), {
    policy: { kind: "limited", maxAttempts: 0 },
  });
  const client = supervisor.create("probe");
  let lastError = "";
  client.on("error", (e: Error) => {
    lastError = e.message;
  });
  supervisor.connect(client);
  await waitFor(() => client.isReady || fatals.length > 0, "ready or fatal", 5000);
  const close = () => supervisor.close();
  if (client.isReady) return { client, close };
  return { error: `${fatals[0]?.message} / ${lastError}`, close };
}

describe("Redis connections", { skip: !hasService("redis-server") }, () => {
  let certs: TestCerts;
  let plain: ServiceProcess;
  let tls: ServiceProcess;
  let mtls: ServiceProcess;
  before(async () => {
    certs = makeTestCerts();
    const tlsFiles = {
      certFile: join(certs.dir, "server.pem"),
      keyFile: join(certs.dir, "server.key"),
      caFile: certs.caFile,
    };
    [plain, tls, mtls] = await Promise.all([
      startRedis(undefined, { args: ["--requirepass", "s3cret"] }),
      startRedis(undefined, { tls: { ...tlsFiles, authClients: false } }),
      startRedis(undefined, { tls: { ...tlsFiles, authClients: true } }),
    ]);
  });
  after(async () => {
    await Promise.all([plain?.stop(), tls?.stop(), mtls?.stop()]);
  });

  it("authenticates with the URL's password and selects its database", async () => {
    const ok = await tryConnect(redisOptions(`redis://:s3cret@127.0.0.1:${plain.port}/3`));
    try {
      assert.ok(ok.client, ok.error);
      const info = String(await ok.client.sendCommand(["CLIENT", "INFO"]));
      assert.match(info, /\bdb=3\b/);
    } finally {
      await ok.close();
    }
    const denied = await tryConnect(redisOptions(`redis://:wrong@127.0.0.1:${plain.port}`));
    await denied.close();
    assert.match(denied.error ?? "", /WRONGPASS|invalid username-password/i);
  });

  it("connects over rediss:// without verification by default, and verifies with --redis_tls_verify", async () => {
    const lax = await tryConnect(redisOptions(`rediss://127.0.0.1:${tls.port}`));
    await lax.close();
    assert.equal(lax.error, undefined, "a certificate from an unknown CA is accepted without tls_verify");
    const strict = await tryConnect(redisOptions(`rediss://127.0.0.1:${tls.port}`, { tlsVerify: true }));
    await strict.close();
    assert.match(strict.error ?? "", /certificate|self.signed|verify/i);
    const withCa = await tryConnect(
      redisOptions(`rediss://127.0.0.1:${tls.port}`, { tlsVerify: true, tlsCaCertPath: certs.caFile }),
    );
    await withCa.close();
    assert.equal(withCa.error, undefined, "verified against --redis_tls_ca_cert_path");
  });

  it("presents the client certificate to a Redis that requires one", async () => {
    const without = await tryConnect(redisOptions(`rediss://127.0.0.1:${mtls.port}`));
    await without.close();
    assert.ok(without.error, "refused without a client certificate");
    const withCert = await tryConnect(
      redisOptions(`rediss://127.0.0.1:${mtls.port}`, {
        tlsClientCertPath: join(certs.dir, "server.pem"),
        tlsClientKeyPath: join(certs.dir, "server.key"),
      }),
    );
    try {
      assert.ok(withCert.client, withCert.error);
      assert.equal(await withCert.client.ping(), "PONG");
    } finally {
      await withCert.close();
    }
  });
});

describe("the give-up message (the server's last line when Redis stays unreachable)", () => {
  const refused = new Error("Redis reconnect attempts exceeded (connect ECONNREFUSED 127.0.0.1:6379)");
  it("says where there is no Redis and how to do without it, with the default URL", () => {
    assert.equal(
      giveUpMessage(
        "redis://localhost:6379",
        refused,
        "pass --broadcast_adapter=http if you do not use Redis",
      ),
      "no Redis at redis://localhost:6379; pass --broadcast_adapter=http if you do not use Redis",
    );
  });
  it("names the address without credentials or database; a Redis that answered is not 'no Redis'", () => {
    assert.equal(
      giveUpMessage("rediss://user:secret@cache.internal:6380/2", refused),
      "no Redis at rediss://cache.internal:6380",
    );
    assert.equal(
      giveUpMessage("cache:7000", new Error("getaddrinfo ENOTFOUND cache")),
      "no Redis at redis://cache:7000",
    );
    assert.equal(
      giveUpMessage("redis://:pw@[::1]:6379", new Error("WRONGPASS invalid username-password pair"), "hint"),
      "Redis at redis://[::1]:6379 failed: WRONGPASS invalid username-password pair; hint",
    );
    assert.equal(describeUrl("redis://:secret@localhost"), "redis://localhost:6379");
  });
});
