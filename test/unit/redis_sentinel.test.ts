// Redis Sentinel mode (redis/connection.ts parseSentinelSetup, redis/sentinel.ts, the Sentinel
// branch of redis/supervisor.ts): how --redis_sentinels and --redis_url are read, and, against a
// real master + replica + sentinels, that connections go to the master a sentinel names, follow a
// failover, and fail like an unreachable Redis when no sentinel can name the master.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Logger } from "../../src/log/logger.ts";
import { describeTarget, parseSentinelSetup } from "../../src/redis/connection.ts";
import { parseSentinelList, SentinelMonitor } from "../../src/redis/sentinel.ts";
import { type RedisClient, RedisSupervisor } from "../../src/redis/supervisor.ts";
import { freePort } from "../support/ports.ts";
import { redisOptions } from "../support/redis_options.ts";
import { hasService, redisCommand, type SentinelSet, startSentinelSet } from "../support/services.ts";
import { waitFor } from "../support/wait.ts";

const lines: string[] = [];
const log = new Logger("debug", "text", {}, { write: (l: string) => void lines.push(l) });

function setup(sentinels: string, url = "redis://mymaster") {
  const parsed = parseSentinelSetup({ sentinels, url });
  if (!parsed.ok) throw new Error(parsed.error);
  return parsed.setup;
}

function error(sentinels: string, url = "redis://mymaster"): string {
  const parsed = parseSentinelSetup({ sentinels, url });
  assert.equal(parsed.ok, false, `expected an error for ${sentinels} / ${url}`);
  return parsed.ok ? "" : parsed.error;
}

describe("--redis_sentinels / --redis_url in Sentinel mode", () => {
  it("reads host:port entries, with or without a scheme; the port defaults to 6379 as in anycable-go", () => {
    assert.deepEqual(setup("s1:26379, redis://s2:26380 ,s3,").sentinels, [
      { host: "s1", port: 26379 },
      { host: "s2", port: 26380 },
      { host: "s3", port: 6379 },
    ]);
    assert.deepEqual(setup("[::1]:26379").sentinels, [{ host: "::1", port: 26379 }]);
  });

  it("takes sentinel credentials from the entries (an entry without any uses the first's)", () => {
    assert.deepEqual(setup(":p%401@s1:1,admin:p2@s2:2,s3:3").sentinels, [
      { host: "s1", port: 1, password: "p@1" },
      { host: "s2", port: 2, username: "admin", password: "p2" },
      { host: "s3", port: 3, password: "p@1" },
    ]);
  });

  it("takes the master name (case kept), data credentials and database from the URL", () => {
    const s = setup(":sentpass@s1:26379", "redis://app:datapass@MyMaster/2");
    assert.equal(s.masterName, "MyMaster");
    assert.deepEqual(s.data, { tls: false, username: "app", password: "datapass", database: 2 });
    assert.deepEqual(s.sentinels, [{ host: "s1", port: 26379, password: "sentpass" }]);
    // no database in the URL: none (the first entry's, as anycable-go falls back to it)
    assert.deepEqual(setup("s1:1", "redis://mymaster").data, { tls: false });
    assert.equal(setup("s1:1/5", "redis://mymaster").data.database, 5);
    assert.equal(setup("s1:1/5", "redis://mymaster/0").data.database, 0);
    // a bare name, and a port in the URL (ignored: sentinels give the port)
    assert.equal(setup("s1:1", "mymaster").masterName, "mymaster");
    assert.equal(setup("s1:1", "redis://mymaster:6379/1").masterName, "mymaster");
  });

  it("reaches the data node over TLS when the URL or the first entry says rediss://", () => {
    assert.equal(setup("s1:1", "rediss://mymaster").data.tls, true);
    assert.equal(setup("rediss://s1:1,s2:2", "redis://mymaster").data.tls, true);
    assert.equal(setup("s1:1,rediss://s2:2", "redis://mymaster").data.tls, false);
  });

  it("rejects malformed entries naming the flag, without echoing a password", () => {
    for (const bad of ["s1:notaport", "s1:70000", "s1:0", "http://s1:1", "s1:1:2", "bad host:1", " , "]) {
      assert.match(error(bad), /--redis_sentinels/, bad);
    }
    const secret = error(":topsecret@s1:abc");
    assert.ok(!secret.includes("topsecret"), secret);
    assert.match(secret, /\*\*\*@s1:abc/);
    const schemed = error("redis://u:topsecret@bad host:1");
    assert.ok(!schemed.includes("topsecret"), schemed);
  });

  it("rejects a URL that cannot name the master", () => {
    assert.match(error("s1:1", "redis:///2"), /--redis_url must name the Sentinel master/);
    assert.match(error("s1:1", "redis://:pw@/2"), /--redis_url/);
    assert.match(error("s1:1", "redis://a,redis://b"), /--redis_url/);
    assert.match(error("s1:1", "redis://mymaster/db1"), /--redis_url/);
  });

  it("says where it connects in log lines, never the credentials", () => {
    assert.equal(
      describeTarget({ url: "redis://:pw@mymaster/1", sentinels: ":sp@10.0.0.1:26379,[::1]:26380" }),
      "master mymaster via sentinels 10.0.0.1:26379,[::1]:26380",
    );
    assert.equal(describeTarget({ url: "redis://h:7", sentinels: "" }), "h:7");
  });

  it("reads SENTINEL SENTINELS replies in RESP2 and RESP3 shapes", () => {
    assert.deepEqual(
      parseSentinelList([
        ["name", "x", "ip", "10.0.0.2", "port", "26379"],
        { ip: "10.0.0.3", port: 26380 },
        new Map([
          ["ip", "10.0.0.4"],
          ["port", "1"],
        ]),
        ["ip", "10.0.0.5", "port", "nope"],
        "junk",
      ]),
      [
        { host: "10.0.0.2", port: 26379 },
        { host: "10.0.0.3", port: 26380 },
        { host: "10.0.0.4", port: 1 },
      ],
    );
    assert.deepEqual(parseSentinelList(null), []);
  });

  it("fails the start of a Redis part on a malformed entry", () => {
    assert.throws(
      () =>
        new RedisSupervisor(redisOptions("redis://mymaster", { sentinels: "s1:x" }), log, () => {}, {
          policy: { kind: "limited", maxAttempts: 1 },
        }),
      /invalid --redis_sentinels entry "s1:x"/,
    );
  });
});

const keepAlive = { keepAlive: true };

/** The port of the redis-server a client is connected to (CONFIG GET: a map in RESP3). */
async function portOf(client: RedisClient): Promise<number> {
  const reply = (await client.sendCommand(["CONFIG", "GET", "port"])) as unknown;
  return Number(Array.isArray(reply) ? reply[1] : (reply as Record<string, string>).port);
}

describe("Redis Sentinel against redis-server", { skip: !hasService("redis-server") }, () => {
  let set: SentinelSet;
  before(async () => {
    set = await startSentinelSet({ sentinels: 2, dataPassword: "datapass" });
  });
  after(async () => {
    await set?.stop();
  });

  it("names the master, learns the other sentinel, and says so when no sentinel can name it", async () => {
    const [first, second] = set.sentinels;
    const dead = await freePort();
    const monitor = new SentinelMonitor(setup(`127.0.0.1:${dead},127.0.0.1:${first.port}`), {
      log,
      discoveryIntervalSec: 0,
      keepAlive,
      onSwitch: () => {},
    });
    try {
      assert.deepEqual(await monitor.resolve(), { host: "127.0.0.1", port: set.nodes[0].port });
      // the one that answered is asked first from now on
      assert.equal(monitor.knownSentinels[0], `127.0.0.1:${first.port}`);
      // sentinels find each other through the master within seconds; then the first one lists it
      await waitFor(
        async () => {
          await monitor.resolve();
          return monitor.knownSentinels.includes(`127.0.0.1:${second.port}`);
        },
        "the second sentinel learnt from the first",
        15_000,
        200,
      );
    } finally {
      await monitor.close();
    }

    // --redis_sentinel_discovery_interval: asks by itself, without a connection failing
    const polling = new SentinelMonitor(setup(`127.0.0.1:${first.port}`), {
      log,
      discoveryIntervalSec: 1,
      keepAlive,
      onSwitch: () => {},
    });
    try {
      polling.start();
      await waitFor(() => polling.master?.port === set.nodes[0].port, "the periodic poll's answer", 5000);
    } finally {
      await polling.close();
    }

    const unknown = new SentinelMonitor(setup(`127.0.0.1:${first.port}`, "redis://nosuchmaster"), {
      log,
      discoveryIntervalSec: 0,
      keepAlive,
      onSwitch: () => {},
    });
    await assert.rejects(unknown.resolve(), /Redis Sentinel does not know master "nosuchmaster"/);
    await unknown.close();

    const unreachable = new SentinelMonitor(setup(`127.0.0.1:${dead}`), {
      log,
      discoveryIntervalSec: 0,
      keepAlive,
      onSwitch: () => {},
    });
    await assert.rejects(
      unreachable.resolve(),
      new RegExp(`no Redis Sentinel could name master "mymaster" \\(127\\.0\\.0\\.1:${dead}: .+\\)`),
    );
    await unreachable.close();
  });

  it("connects every client to the master with the URL's password and db, and follows SENTINEL FAILOVER", async () => {
    const fatals: Error[] = [];
    const supervisor = new RedisSupervisor(
      redisOptions("redis://:datapass@mymaster/3", { sentinels: set.sentinelAddrs }),
      log,
      (e) => fatals.push(e),
      { policy: { kind: "limited", maxAttempts: 5 }, recovered: "back on the master" },
    );
    const client: RedisClient = supervisor.create("probe");
    let readies = 0;
    client.on("ready", () => readies++);
    try {
      supervisor.connect(client);
      await waitFor(() => client.isReady, "ready through the sentinel");
      const info = String(await client.sendCommand(["CLIENT", "INFO"]));
      assert.match(info, /\bdb=3\b/);
      const first = await set.master();
      assert.equal(((await client.sendCommand(["ROLE"])) as string[])[0], "master");
      assert.equal(await portOf(client), first.port);
      assert.equal(readies, 1);

      await set.replicaReady();
      assert.equal(
        String(await redisCommand(set.sentinels[0], undefined, ["SENTINEL", "FAILOVER", "mymaster"])),
        "OK",
      );
      const other = set.nodes.find((n) => n !== first)!;
      // the handle the part holds reaches the new master: same object, another connection
      await waitFor(
        async () => client.isReady && (await portOf(client)) === other.port,
        "the client on the promoted replica",
        20_000,
        100,
      );
      assert.equal(((await client.sendCommand(["ROLE"])) as string[])[0], "master");
      assert.match(String(await client.sendCommand(["CLIENT", "INFO"])), /\bdb=3\b/);
      assert.equal(readies, 2, "'ready' once per connection to a master");
      assert.deepEqual(fatals, []);
      assert.ok(
        lines.some((l) => l.includes(`Redis Sentinel: master mymaster moved to 127.0.0.1:${other.port}`)),
        lines.join("\n"),
      );
      assert.ok(lines.some((l) => l.includes("back on the master")));
    } finally {
      await supervisor.close();
    }
  });

  it("retries and gives up like an unreachable Redis when the master name is unknown", async () => {
    const fatals: Error[] = [];
    const supervisor = new RedisSupervisor(
      redisOptions("redis://nosuchmaster", { sentinels: set.sentinelAddrs }),
      log,
      (e) => fatals.push(e),
      { policy: { kind: "limited", maxAttempts: 1 } },
    );
    try {
      supervisor.connect(supervisor.create("probe"));
      await waitFor(() => fatals.length > 0, "fatal after the attempts", 10_000);
      assert.equal(fatals.length, 1);
      assert.match(
        fatals[0].message,
        /Redis reconnect attempts exceeded \(Redis Sentinel does not know master "nosuchmaster"/,
      );
    } finally {
      await supervisor.close();
    }
  });

  it("does not use a node the sentinel names master while its ROLE says slave", async () => {
    const odd = await startSentinelSet({ dataPassword: "datapass", monitorReplicaAs: "notamaster" });
    const fatals: Error[] = [];
    const supervisor = new RedisSupervisor(
      redisOptions("redis://:datapass@notamaster", { sentinels: odd.sentinelAddrs }),
      log,
      (e) => fatals.push(e),
      { policy: { kind: "limited", maxAttempts: 1 } },
    );
    const client = supervisor.create("probe");
    let readies = 0;
    client.on("ready", () => readies++);
    try {
      supervisor.connect(client);
      await waitFor(() => fatals.length > 0, "fatal after the attempts", 10_000);
      assert.match(
        fatals[0].message,
        new RegExp(`127\\.0\\.0\\.1:${odd.nodes[1].port} is not the master \\(ROLE: slave\\)`),
      );
      assert.equal(readies, 0);
      assert.equal(client.isReady, false);
    } finally {
      await supervisor.close();
      await odd.stop();
    }
  });
});
