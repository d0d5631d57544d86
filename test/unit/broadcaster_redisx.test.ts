// The Broadcaster contract on the redisx (Redis Streams) broadcaster against a real redis-server,
// publishing as anycable-rb does (XADD <stream> * payload <json>); plus consumer-group behaviour:
// one consumer per entry, claiming a dead consumer's entries, retries, acks, leaving the group.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { PublicationHandler } from "../../src/broadcast/broadcaster.ts";
import type { ParsedPublication } from "../../src/broadcast/publication.ts";
import { RedisxBroadcaster, randomConsumerName } from "../../src/broadcast/redisx.ts";
import { Logger } from "../../src/log/logger.ts";
import { redisOptions } from "../support/redis_options.ts";
import { type RedisProbe as Client, redisProbe as client } from "../support/redis_probe.ts";
import { hasService, type ServiceProcess, startRedis } from "../support/services.ts";
import { waitFor } from "../support/wait.ts";
import { broadcasterContract, RecordingHandler } from "./contracts/broadcaster_contract.ts";

const silent = new Logger("error", "text", {}, { write() {} });

let seq = 0;
const nextStream = () => `__anycable_x_${process.pid}_${++seq}__`;

async function groupExists(c: Client, stream: string, group: string): Promise<boolean> {
  try {
    return (await c.xInfoGroups(stream)).some((g) => g.name === group);
  } catch {
    return false;
  }
}

async function pendingCount(c: Client, stream: string, group: string): Promise<number> {
  return (await c.xPending(stream, group)).pending;
}

const pub = (stream: string, data: string) => JSON.stringify({ stream, data });

function streamsOf(p: ParsedPublication): string[] {
  return p.kind === "broadcast" ? p.publications.map((x) => x.dataJson) : [];
}

describe("Redisx broadcaster", { skip: !hasService("redis-server") }, () => {
  let redis: ServiceProcess;
  let probe: Client;
  before(async () => {
    redis = await startRedis();
    probe = await client(redis.url);
  });
  after(async () => {
    await probe?.close();
    await redis?.stop();
  });

  broadcasterContract("redisx", async (handler) => {
    const stream = nextStream();
    let delivered = 0;
    const counting: PublicationHandler = {
      handle(p) {
        delivered++;
        handler.handle(p);
      },
      handleInvalid() {
        delivered++;
        handler.handleInvalid();
      },
    };
    const broadcaster = new RedisxBroadcaster(
      { redis: redisOptions(redis.url), stream, group: "bx", blockMs: 2000 },
      counting,
      silent,
    );
    let stopped = false;
    const shutdown = broadcaster.shutdown.bind(broadcaster);
    broadcaster.shutdown = async (deadline) => {
      stopped = true;
      await shutdown(deadline);
    };
    let published = 0;
    return {
      broadcaster,
      fanout: false,
      async publish(payload) {
        await probe.xAdd(stream, "*", { payload });
        published++;
      },
      async ready() {
        await waitFor(() => groupExists(probe, stream, "bx"), "the consumer group");
      },
      async settle() {
        if (!stopped) {
          await waitFor(() => delivered >= published, "every entry handled");
          await waitFor(async () => (await probe.xLen(stream)) === 0, "every entry acked and deleted");
          return;
        }
        // Stopped: another consumer of the group gets what the stopped one never took.
        const left = published - delivered;
        const got = await probe.xReadGroup("bx", "probe", { key: stream, id: ">" }, { BLOCK: 2000 });
        assert.equal(got?.[0]?.messages.length ?? 0, left, "the entries published after shutdown are unread");
      },
      async close() {},
    };
  });

  it("gives each entry to one node of the group", async () => {
    const stream = nextStream();
    const a = new RecordingHandler();
    const b = new RecordingHandler();
    const opts = { redis: redisOptions(redis.url), stream, group: "bx", blockMs: 2000 };
    const na = new RedisxBroadcaster(opts, a, silent);
    const nb = new RedisxBroadcaster(opts, b, silent);
    try {
      await na.start(() => {});
      await nb.start(() => {});
      await waitFor(() => groupExists(probe, stream, "bx"), "the group");
      for (let i = 0; i < 30; i++) await probe.xAdd(stream, "*", { payload: pub("s", String(i)) });
      await waitFor(() => a.calls.length + b.calls.length >= 30, "30 entries handled");
      await waitFor(async () => (await probe.xLen(stream)) === 0, "acked and deleted");
      const seen = [...a.calls, ...b.calls].flatMap((c) => (c.kind === "handle" ? streamsOf(c.payload) : []));
      assert.deepEqual(
        seen.map(Number).sort((x, y) => x - y),
        Array.from({ length: 30 }, (_, i) => i),
        "each exactly once",
      );
    } finally {
      await na.shutdown(AbortSignal.timeout(3000));
      await nb.shutdown(AbortSignal.timeout(3000));
    }
  });

  it("claims the pending entries of a consumer that died, and leaves the group on shutdown", async () => {
    const stream = nextStream();
    await probe.xGroupCreate(stream, "bx", "$", { MKSTREAM: true });
    await probe.xAdd(stream, "*", { payload: pub("s", "1") });
    await probe.xAdd(stream, "*", { payload: pub("s", "2") });
    // A node read them and was SIGKILLed before acking.
    const taken = await probe.xReadGroup("bx", "dead", { key: stream, id: ">" });
    assert.equal(taken?.[0]?.messages.length, 2);
    const handler = new RecordingHandler();
    const b = new RedisxBroadcaster(
      { redis: redisOptions(redis.url), stream, group: "bx", blockMs: 200 },
      handler,
      silent,
    );
    try {
      await b.start(() => {});
      await handler.atLeast(2, "the claimed entries");
      assert.deepEqual(
        handler.calls.flatMap((c) => (c.kind === "handle" ? streamsOf(c.payload) : [])),
        ["1", "2"],
      );
      await waitFor(async () => (await pendingCount(probe, stream, "bx")) === 0, "acked");
      assert.equal(await probe.xLen(stream), 0, "deleted");
      const consumers = (await probe.xInfoConsumers(stream, "bx")).map((c) => c.name);
      assert.ok(consumers.includes(b.consumer));
      await b.shutdown(AbortSignal.timeout(3000));
      const after = (await probe.xInfoConsumers(stream, "bx")).map((c) => c.name);
      assert.ok(!after.includes(b.consumer), `XGROUP DELCONSUMER on shutdown (${after})`);
    } finally {
      await b.shutdown(AbortSignal.timeout(3000));
    }
  });

  it("leaves an entry whose handling failed pending and handles it again", async () => {
    const stream = nextStream();
    let failNext = true;
    const handled: ParsedPublication[] = [];
    const flaky: PublicationHandler = {
      handle(p) {
        if (failNext) {
          failNext = false;
          throw new Error("broker unavailable");
        }
        handled.push(p);
      },
      handleInvalid() {},
    };
    const b = new RedisxBroadcaster(
      { redis: redisOptions(redis.url), stream, group: "bx", blockMs: 200 },
      flaky,
      silent,
    );
    try {
      await b.start(() => {});
      await waitFor(() => groupExists(probe, stream, "bx"), "the group");
      await probe.xAdd(stream, "*", { payload: pub("s", '"retry me"') });
      await waitFor(() => handled.length === 1, "the retried entry", 5000);
      assert.deepEqual(streamsOf(handled[0]), ['"retry me"']);
      await waitFor(async () => (await probe.xLen(stream)) === 0, "acked and deleted after the retry");
    } finally {
      await b.shutdown(AbortSignal.timeout(3000));
    }
  });

  it("counts entries without a payload field or with bad JSON, and acks them", async () => {
    const stream = nextStream();
    const handler = new RecordingHandler();
    const b = new RedisxBroadcaster(
      { redis: redisOptions(redis.url), stream, group: "bx", blockMs: 2000 },
      handler,
      silent,
    );
    try {
      await b.start(() => {});
      await waitFor(() => groupExists(probe, stream, "bx"), "the group");
      await probe.xAdd(stream, "*", { data: pub("s", "1") });
      await probe.xAdd(stream, "*", { payload: "{oops" });
      await probe.xAdd(stream, "*", { payload: pub("s", "3") });
      await handler.atLeast(3, "three entries");
      assert.deepEqual(
        handler.calls.map((c) => c.kind),
        ["invalid", "invalid", "handle"],
      );
      await waitFor(async () => (await probe.xLen(stream)) === 0, "all acked and deleted");
      assert.equal(await pendingCount(probe, stream, "bx"), 0);
    } finally {
      await b.shutdown(AbortSignal.timeout(3000));
    }
  });

  it("keeps reading across a Redis restart that lost the group, without calling fatal", {
    timeout: 15_000,
  }, async () => {
    let own = await startRedis();
    const stream = nextStream();
    const handler = new RecordingHandler();
    const fatals: Error[] = [];
    const b = new RedisxBroadcaster(
      { redis: redisOptions(own.url, { maxReconnectAttempts: 1 }), stream, group: "bx", blockMs: 300 },
      handler,
      silent,
    );
    try {
      await b.start((e) => fatals.push(e));
      let c = await client(own.url);
      await waitFor(() => groupExists(c, stream, "bx"), "the group");
      await c.xAdd(stream, "*", { payload: pub("s", "1") });
      await handler.atLeast(1, "before the restart");
      await c.close();
      await own.stop();
      own = await own.restart(); // empty: no stream, no group
      c = await client(own.url);
      // Published before the node noticed: the stream exists, the group does not.
      await c.xAdd(stream, "*", { payload: pub("s", "2") });
      await waitFor(
        () => handler.calls.length >= 2,
        "the entry added before the group was recreated",
        12_000,
      );
      await c.xAdd(stream, "*", { payload: pub("s", "3") });
      await handler.atLeast(3, "after the restart");
      assert.deepEqual(
        handler.calls.flatMap((x) => (x.kind === "handle" ? streamsOf(x.payload) : [])),
        ["1", "2", "3"],
      );
      await c.close();
      assert.deepEqual(fatals, [], "redisx never gives up (maxReconnectAttempts is not its limit)");
    } finally {
      await b.shutdown(AbortSignal.timeout(3000));
      await own.stop();
    }
  });

  it("names consumers like anycable-go (6 nanoid characters)", () => {
    const names = new Set(Array.from({ length: 50 }, () => randomConsumerName()));
    assert.equal(names.size, 50);
    for (const n of names) assert.match(n, /^[\w-]{6}$/);
  });
});
