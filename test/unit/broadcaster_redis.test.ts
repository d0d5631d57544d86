// The Broadcaster contract on the Redis pub/sub broadcaster against a real redis-server (one private
// server for this file), publishing with a separate node-redis client; plus the reconnect policy.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Broadcaster, PublicationHandler } from "../../src/broadcast/broadcaster.ts";
import { RedisBroadcaster } from "../../src/broadcast/redis.ts";
import { Logger } from "../../src/log/logger.ts";
import { freePort } from "../support/ports.ts";
import { redisOptions } from "../support/redis_options.ts";
import { redisProbe as client, numSub } from "../support/redis_probe.ts";
import { hasService, type ServiceProcess, startRedis } from "../support/services.ts";
import { waitFor } from "../support/wait.ts";
import { broadcasterContract, RecordingHandler } from "./contracts/broadcaster_contract.ts";

const silent = new Logger("error", "text", {}, { write() {} });

let channelSeq = 0;
const nextChannel = () => `__anycable_contract_${process.pid}_${++channelSeq}__`;

describe("Redis broadcaster", { skip: !hasService("redis-server") }, () => {
  let redis: ServiceProcess;
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis?.stop();
  });

  broadcasterContract("redis", async (handler) => {
    const channel = nextChannel();
    // Counts what reached the broadcaster's handler, so settle() can wait for it.
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
    const broadcaster = new RedisBroadcaster(
      { redis: redisOptions(redis.url, { maxReconnectAttempts: 5 }), channel },
      counting,
      silent,
    );
    const publisher = await client(redis.url);
    // A second subscriber of the channel: once it has a payload, Redis has dispatched it to all.
    const observer = await client(redis.url);
    let observed = 0;
    await observer.subscribe(channel, () => {
      observed++;
    });
    let published = 0;
    let publishedSinceReady = 0;
    return {
      broadcaster,
      fanout: true,
      async publish(payload) {
        await publisher.publish(channel, payload);
        published++;
        publishedSinceReady++;
      },
      async ready() {
        await waitFor(async () => (await numSub(publisher, channel)) >= 2, "the broadcaster's SUBSCRIBE");
        publishedSinceReady = 0;
        delivered = 0;
      },
      async settle() {
        await waitFor(() => observed >= published, "the observer to receive every payload");
        // Still subscribed (the observer is the other one): wait until the broadcaster got them too.
        if ((await numSub(publisher, channel)) > 1) {
          await waitFor(() => delivered >= publishedSinceReady, "the broadcaster to receive every payload");
        }
      },
      async close() {
        await observer.close();
        await publisher.close();
      },
    };
  });

  it("leaves the channel on shutdown (Redis counts no subscriber)", async () => {
    const channel = nextChannel();
    const b: Broadcaster = new RedisBroadcaster(
      { redis: redisOptions(redis.url, { maxReconnectAttempts: 5 }), channel },
      new RecordingHandler(),
      silent,
    );
    const probe = await client(redis.url);
    try {
      await b.start(() => {});
      await waitFor(async () => (await numSub(probe, channel)) === 1, "the SUBSCRIBE");
      await b.shutdown(AbortSignal.timeout(2000));
      await waitFor(async () => (await numSub(probe, channel)) === 0, "the subscription to go");
      assert.equal(await probe.publish(channel, '{"stream":"s","data":"1"}'), 0, "no receiver left");
    } finally {
      await b.shutdown(AbortSignal.timeout(2000));
      await probe.close();
    }
  });

  it("resubscribes after Redis restarts, and publications arrive again", { timeout: 10_000 }, async () => {
    let own = await startRedis();
    const channel = nextChannel();
    const handler = new RecordingHandler();
    const fatals: Error[] = [];
    const b: Broadcaster = new RedisBroadcaster(
      { redis: redisOptions(own.url, { maxReconnectAttempts: 3 }), channel },
      handler,
      silent,
    );
    try {
      await b.start((e) => fatals.push(e));
      let probe = await client(own.url);
      await waitFor(async () => (await numSub(probe, channel)) === 1, "the first SUBSCRIBE");
      await probe.publish(channel, '{"stream":"before","data":"1"}');
      await handler.atLeast(1, "the publication before the restart");
      await probe.close();

      await own.stop();
      own = await own.restart();
      probe = await client(own.url);
      await waitFor(
        async () => (await numSub(probe, channel)) === 1,
        "the SUBSCRIBE after the restart",
        8000,
      );
      await probe.publish(channel, '{"stream":"after","data":"2"}');
      await handler.atLeast(2, "the publication after the restart");
      await probe.close();
      assert.deepEqual(
        handler.calls.map((c) => (c.kind === "handle" && c.payload.kind === "broadcast" ? c.payload : c)),
        [
          { kind: "broadcast", publications: [{ stream: "before", dataJson: "1" }] },
          { kind: "broadcast", publications: [{ stream: "after", dataJson: "2" }] },
        ],
      );
      assert.deepEqual(fatals, []);
    } finally {
      await b.shutdown(AbortSignal.timeout(2000));
      await own.stop();
    }
  });

  it("calls fatal once when Redis is gone past maxReconnectAttempts, after the backoff", {
    timeout: 10_000,
  }, async () => {
    const own = await startRedis();
    const channel = nextChannel();
    const fatals: Error[] = [];
    // 2 attempts: node-redis retries a dropped connection at once, the second attempt follows after
    // nextRetryMs(1) = 2-4 s (retry.ts); then the strategy gives up and fatal is called.
    const b: Broadcaster = new RedisBroadcaster(
      { redis: redisOptions(own.url, { maxReconnectAttempts: 2 }), channel },
      new RecordingHandler(),
      silent,
    );
    try {
      await b.start((e) => fatals.push(e));
      const probe = await client(own.url);
      await waitFor(async () => (await numSub(probe, channel)) === 1, "the SUBSCRIBE");
      await probe.close();
      const killedAt = Date.now();
      await own.stop(); // SIGKILL by PID
      await waitFor(() => fatals.length > 0, "fatal", 8000);
      const elapsed = Date.now() - killedAt;
      assert.ok(elapsed >= 2000, `fatal only after both attempts' backoff (${elapsed} ms)`);
      // why and how to do without Redis; the node-redis error stays the cause
      assert.equal(
        fatals[0].message,
        `no Redis at redis://127.0.0.1:${new URL(own.url).port}; pass --broadcast_adapter=http if you do not use Redis`,
      );
      assert.match(String((fatals[0].cause as Error).message), /reconnect attempts exceeded/i);
      // Nothing else may report: shut down, then let pending client events run out.
      await b.shutdown(AbortSignal.timeout(2000));
      await quietWindow();
      assert.equal(fatals.length, 1, "fatal is called exactly once");
    } finally {
      await b.shutdown(AbortSignal.timeout(2000));
      await own.stop();
    }
  });

  it("calls fatal once when Redis is never reachable", async () => {
    const port = await freePort(); // nothing listens there
    const fatals: Error[] = [];
    const b: Broadcaster = new RedisBroadcaster(
      {
        redis: redisOptions(`redis://127.0.0.1:${port}`, { maxReconnectAttempts: 1 }),
        channel: nextChannel(),
      },
      new RecordingHandler(),
      silent,
    );
    try {
      await b.start((e) => fatals.push(e));
      await waitFor(() => fatals.length > 0, "fatal", 5000);
      await quietWindow();
      assert.equal(fatals.length, 1, "fatal is called exactly once");
    } finally {
      await b.shutdown(AbortSignal.timeout(2000));
    }
  });
});

/**
 * Not synchronisation: a bounded window in which a second, wrong call would show up (the node-redis
 * client's close and end events fire within a few event-loop turns of the first).
 */
function quietWindow(ms = 300): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
