// Redis pub/sub against a real redis-server: the PubSub contract (multi-node), anycable-go's wire
// format and channel naming, and what happens while Redis is unreachable.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { StreamMessage } from "../../src/broadcast/publication.ts";
import { Logger } from "../../src/log/logger.ts";
import { Metrics } from "../../src/metrics/registry.ts";
import { DROPPED_METRIC, RedisPubSub } from "../../src/pubsub/redis.ts";
import { freePort } from "../support/ports.ts";
import { redisOptions } from "../support/redis_options.ts";
import { redisProbe as client, numSub } from "../support/redis_probe.ts";
import { hasService, type ServiceProcess, startRedis } from "../support/services.ts";
import { waitFor } from "../support/wait.ts";
import { pubsubContract, RecordingPubSubHandler } from "./contracts/pubsub_contract.ts";

const silent = new Logger("error", "text", {}, { write() {} });

function capturing(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  return { logger: new Logger("debug", "text", {}, { write: (l) => lines.push(l) }), lines };
}

let seq = 0;
const internal = () => `__anycable_internal_${process.pid}_${++seq}__`;

const msg = (stream: string, data: unknown, extra: Partial<StreamMessage> = {}): StreamMessage => ({
  stream,
  dataJson: JSON.stringify(data),
  ...extra,
});

describe("Redis pub/sub", { skip: !hasService("redis-server") }, () => {
  let redis: ServiceProcess;
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis?.stop();
  });

  pubsubContract(
    "redis",
    async () => {
      const nodes: RedisPubSub[] = [];
      // One internal channel per harness: nodes of other tests never see this one's commands.
      const channel = internal();
      return {
        async node(handler) {
          const ps = new RedisPubSub({ redis: redisOptions(redis.url), channel }, handler, silent);
          nodes.push(ps);
          return ps;
        },
        async synced() {
          await Promise.all(nodes.map((n) => n.synced()));
        },
        async close() {},
      };
    },
    { multiNode: true },
  );

  it("speaks anycable-go's JSON on channels named after the streams", async () => {
    const channel = internal();
    const handler = new RecordingPubSubHandler();
    const ps = new RedisPubSub({ redis: redisOptions(redis.url), channel }, handler, silent);
    const observer = await client(redis.url);
    const publisher = await client(redis.url);
    const seen: Array<[string, string]> = [];
    await observer.subscribe(["chat_1", channel], (m, c) => seen.push([c, m]));
    try {
      await ps.start(() => {});
      ps.subscribe("chat_1");
      await ps.synced();
      assert.equal(await numSub(publisher, "chat_1"), 2, "the node subscribed to the stream's own channel");
      ps.broadcast(msg("chat_1", { text: "hi" }, { excludeSocket: "sid-1", broadcastType: "whisper" }));
      ps.broadcast(msg("chat_1", "plain", { offset: 3, epoch: "ep1", transient: true }));
      ps.broadcastCommand({ command: "disconnect", identifier: '{"user":"u1"}', reconnect: true });
      await waitFor(() => seen.length >= 3, "three messages on the observer");
      assert.deepEqual(seen, [
        [
          "chat_1",
          '{"stream":"chat_1","data":"{\\"text\\":\\"hi\\"}","meta":{"exclude_socket":"sid-1","broadcast_type":"whisper"}}',
        ],
        [
          "chat_1",
          '{"stream":"chat_1","data":"\\"plain\\"","meta":{"transient":true},"offset":3,"epoch":"ep1"}',
        ],
        [
          channel,
          '{"command":"disconnect","payload":{"identifier":"{\\"user\\":\\"u1\\"}","reconnect":true}}',
        ],
      ]);

      // What an anycable-go node publishes (data is the application's string, JSON or not).
      handler.events.length = 0;
      await publisher.publish("chat_1", '{"stream":"chat_1","data":"{\\"n\\":1}","offset":7,"epoch":"go"}');
      await publisher.publish("chat_1", '{"stream":"chat_1","data":"not json"}');
      await publisher.publish("chat_1", "garbage{");
      await publisher.publish("chat_1", '[{"stream":"chat_1","data":"1"}]');
      await publisher.publish(
        channel,
        '{"command":"disconnect","payload":{"identifier":"x","reconnect":false}}',
      );
      await waitFor(() => handler.events.length >= 3, "the go-format messages");
      assert.deepEqual(handler.events, [
        { kind: "broadcast", message: { stream: "chat_1", dataJson: '{"n":1}', offset: 7, epoch: "go" } },
        { kind: "broadcast", message: { stream: "chat_1", dataJson: '"not json"' } },
        { kind: "command", command: { command: "disconnect", identifier: "x", reconnect: false } },
      ]);
    } finally {
      await ps.shutdown(AbortSignal.timeout(2000));
      await observer.close();
      await publisher.close();
    }
  });

  it("holds a Redis subscription only while the stream has local subscribers", async () => {
    const channel = internal();
    const ps = new RedisPubSub(
      { redis: redisOptions(redis.url), channel },
      new RecordingPubSubHandler(),
      silent,
    );
    const probe = await client(redis.url);
    try {
      await ps.start(() => {});
      await ps.synced();
      assert.equal(await numSub(probe, channel), 1, "the internal channel");
      assert.equal(await numSub(probe, "room"), 0);
      ps.subscribe("room");
      await ps.synced();
      assert.equal(await numSub(probe, "room"), 1);
      ps.unsubscribe("room");
      await ps.synced();
      assert.equal(await numSub(probe, "room"), 0, "left with the last local subscriber");
      // A stream named like the internal channel never takes the internal subscription away.
      ps.subscribe(channel);
      ps.unsubscribe(channel);
      await ps.synced();
      assert.equal(await numSub(probe, channel), 1);
      await ps.shutdown(AbortSignal.timeout(2000));
      await waitFor(async () => (await numSub(probe, channel)) === 0, "the internal subscription to go");
    } finally {
      await ps.shutdown(AbortSignal.timeout(2000));
      await probe.close();
    }
  });

  it("resubscribes after Redis restarts, with what changed while it was down", {
    timeout: 15_000,
  }, async () => {
    let own = await startRedis();
    const channel = internal();
    const handler = new RecordingPubSubHandler();
    const fatals: Error[] = [];
    const ps = new RedisPubSub({ redis: redisOptions(own.url), channel }, handler, silent);
    try {
      await ps.start((e) => fatals.push(e));
      ps.subscribe("kept");
      ps.subscribe("left");
      await ps.synced();
      await own.stop();
      await waitFor(() => !ps.connected, "the node to notice");
      ps.subscribe("added");
      ps.unsubscribe("left");
      own = await own.restart();
      const probe = await client(own.url);
      await waitFor(
        async () => (await numSub(probe, "added")) === 1 && (await numSub(probe, "kept")) === 1,
        "the resubscription",
        12_000,
      );
      await ps.synced();
      assert.equal(await numSub(probe, "left"), 0, "a stream left while Redis was down is not resubscribed");
      assert.equal(await numSub(probe, channel), 1);
      for (const s of ["kept", "added", "left"]) ps.broadcast(msg(s, s));
      ps.broadcastCommand({ command: "disconnect", identifier: "u", reconnect: false });
      await waitFor(() => handler.events.length >= 3, "the deliveries after the restart");
      assert.deepEqual(handler.events, [
        { kind: "broadcast", message: msg("kept", "kept") },
        { kind: "broadcast", message: msg("added", "added") },
        { kind: "command", command: { command: "disconnect", identifier: "u", reconnect: false } },
      ]);
      await probe.close();
      assert.deepEqual(fatals, []);
    } finally {
      await ps.shutdown(AbortSignal.timeout(2000));
      await own.stop();
    }
  });

  it("starts while Redis is down: bounded queue, one log line per burst, delivery once it is up", {
    timeout: 15_000,
  }, async () => {
    const port = await freePort();
    const channel = internal();
    const handler = new RecordingPubSubHandler();
    const metrics = new Metrics();
    const { logger, lines } = capturing();
    const fatals: Error[] = [];
    const ps = new RedisPubSub(
      { redis: redisOptions(`redis://127.0.0.1:${port}`), channel, maxQueued: 3 },
      handler,
      logger,
      metrics,
    );
    let own: ServiceProcess | undefined;
    try {
      await ps.start((e) => fatals.push(e));
      ps.subscribe("early");
      for (let i = 1; i <= 5; i++) ps.broadcast(msg("early", i));
      assert.equal(metrics.counterValue(DROPPED_METRIC), 2, "the two oldest of five dropped (queue of 3)");
      // Both connections fail at least twice (at once, then after 250 ms) before Redis starts.
      await waitFor(
        () => lines.filter((l) => l.includes("Redis connection error")).length >= 4,
        "two failed attempts per connection",
      );
      own = await startRedis(port);
      await waitFor(() => handler.messages.length >= 3, "the queued messages", 12_000);
      assert.deepEqual(handler.messages, [msg("early", 3), msg("early", 4), msg("early", 5)]);
      const info = lines.filter((l) => / (INF|WRN|ERR) /.test(l)).map((l) => l.replace(/^\S+ \S+ /, ""));
      assert.equal(info.filter((l) => l.includes("next Redis reconnect attempt")).length, 1, info.join("\n"));
      assert.equal(info.filter((l) => l.startsWith("INF reconnected to Redis")).length, 1, info.join("\n"));
      assert.ok(info.some((l) => l.startsWith("INF connected ") && l.includes(`channel=${channel}`)));
      assert.deepEqual(fatals, []);
    } finally {
      await ps.shutdown(AbortSignal.timeout(2000));
      await own?.stop();
    }
  });

  it("calls fatal once when Redis stays unreachable past the attempts limit", async () => {
    const port = await freePort();
    const fatals: Error[] = [];
    const ps = new RedisPubSub(
      { redis: redisOptions(`redis://127.0.0.1:${port}`, { maxReconnectAttempts: 1 }), channel: internal() },
      new RecordingPubSubHandler(),
      silent,
    );
    try {
      await ps.start((e) => fatals.push(e));
      await waitFor(() => fatals.length > 0, "fatal", 5000);
      assert.equal(
        fatals[0].message,
        `no Redis at redis://127.0.0.1:${port}; pass --pubsub=none if this node runs alone`,
      );
      assert.match(String((fatals[0].cause as Error).message), /reconnect attempts exceeded/i);
      await new Promise((r) => setTimeout(r, 300)); // a window for a wrong second call
      assert.equal(fatals.length, 1, "fatal once for both connections");
    } finally {
      await ps.shutdown(AbortSignal.timeout(2000));
    }
  });
});
