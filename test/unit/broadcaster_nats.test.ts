// The Broadcaster contract on the nats broadcaster against a real nats-server, publishing the way
// anycable-rb's nats adapter does (a plain PUB of the JSON to the channel), plus its subject rules.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import type { PublicationHandler } from "../../src/broadcast/broadcaster.ts";
import { NatsBroadcaster } from "../../src/broadcast/nats.ts";
import { Logger } from "../../src/log/logger.ts";
import { parseServers } from "../../src/nats/options.ts";
import { hasService, type NatsProcess, natsSubscribers, startNats } from "../support/services.ts";
import { waitFor } from "../support/wait.ts";
import { broadcasterContract, RecordingHandler } from "./contracts/broadcaster_contract.ts";

const silent = new Logger("error", "text", {}, { write() {} });
let channelSeq = 0;
const nextChannel = () => `__anycable_contract_${process.pid}_${++channelSeq}__`;

describe("NATS broadcaster", { skip: !hasService("nats-server") }, () => {
  let nats: NatsProcess;
  let publisher: NatsConnection;
  before(async () => {
    nats = await startNats();
    publisher = await connect({ servers: nats.url });
  });
  after(async () => {
    await publisher?.close();
    await nats?.stop();
  });

  broadcasterContract("nats", async (handler) => {
    const channel = nextChannel();
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
    const broadcaster = new NatsBroadcaster({ nats: parseServers(nats.url), channel }, counting, silent);
    // A second subscriber of the channel: once it has a payload, NATS has dispatched it to all.
    const observer = await connect({ servers: nats.url });
    let observed = 0;
    observer.subscribe(channel, {
      callback: () => {
        observed++;
      },
    });
    await observer.flush();
    let published = 0;
    let publishedSinceReady = 0;
    return {
      broadcaster,
      fanout: true,
      async publish(payload) {
        publisher.publish(channel, payload);
        await publisher.flush();
        published++;
        publishedSinceReady++;
      },
      async ready() {
        await waitFor(
          async () => (await natsSubscribers(nats.monitorUrl, channel)) >= 2,
          "the broadcaster's SUB",
        );
        publishedSinceReady = 0;
        delivered = 0;
      },
      async settle() {
        await waitFor(() => observed >= published, "the observer to receive every payload");
        if ((await natsSubscribers(nats.monitorUrl, channel)) > 1) {
          await waitFor(() => delivered >= publishedSinceReady, "the broadcaster to receive every payload");
        }
      },
      async close() {
        await observer.close();
      },
    };
  });

  it("listens on __anycable__ by default and leaves it on shutdown", async () => {
    const b = new NatsBroadcaster(
      { nats: parseServers(nats.url), channel: "__anycable__" },
      new RecordingHandler(),
      silent,
    );
    try {
      await b.start(() => {});
      await waitFor(async () => (await natsSubscribers(nats.monitorUrl, "__anycable__")) === 1, "the SUB");
      await b.shutdown();
      await waitFor(async () => (await natsSubscribers(nats.monitorUrl, "__anycable__")) === 0, "gone");
    } finally {
      await b.shutdown();
    }
  });

  it("resubscribes after nats-server restarts", { timeout: 15_000 }, async () => {
    let own = await startNats();
    const channel = nextChannel();
    const handler = new RecordingHandler();
    const fatals: Error[] = [];
    const b = new NatsBroadcaster({ nats: parseServers(own.url), channel }, handler, silent);
    try {
      await b.start((e) => fatals.push(e));
      await waitFor(async () => (await natsSubscribers(own.monitorUrl, channel)) === 1, "the SUB");
      await own.stop();
      own = await own.restart();
      await waitFor(
        async () => (await natsSubscribers(own.monitorUrl, channel)) === 1,
        "the SUB again",
        10_000,
      );
      const pub = await connect({ servers: own.url });
      pub.publish(channel, '{"stream":"after","data":"2"}');
      await pub.flush();
      await pub.close();
      await handler.atLeast(1, "the publication after the restart");
      assert.deepEqual(handler.calls, [
        {
          kind: "handle",
          payload: { kind: "broadcast", publications: [{ stream: "after", dataJson: "2" }] },
        },
      ]);
      assert.deepEqual(fatals, []);
    } finally {
      await b.shutdown();
      await own.stop();
    }
  });
});
