// NATS pub/sub against a real nats-server: the PubSub contract (multi-node), anycable-go's wire
// format and subjects, subscriptions following local subscribers, and the reconnect policy.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { Logger } from "../../src/log/logger.ts";
import { parseServers } from "../../src/nats/options.ts";
import { NatsPubSub, streamSubject } from "../../src/pubsub/nats.ts";
import { freePort } from "../support/ports.ts";
import { hasService, type NatsProcess, natsSubscribers, startNats } from "../support/services.ts";
import { waitFor } from "../support/wait.ts";
import { pubsubContract, RecordingPubSubHandler } from "./contracts/pubsub_contract.ts";

const silent = new Logger("error", "text", {}, { write() {} });
let channelSeq = 0;
const nextChannel = () => `__anycable_internal_${process.pid}_${++channelSeq}__`;

function pubsub(url: string, handler: RecordingPubSubHandler, channel = nextChannel(), max = 5) {
  return new NatsPubSub({ nats: parseServers(url, false, max), channel }, handler, silent);
}

async function ready(...nodes: NatsPubSub[]): Promise<void> {
  await waitFor(() => nodes.every((n) => n.connected), "NATS connections");
  for (const n of nodes) await n.flush();
}

describe("NATS pub/sub", { skip: !hasService("nats-server") }, () => {
  let nats: NatsProcess;
  let client: NatsConnection;
  before(async () => {
    nats = await startNats();
    client = await connect({ servers: nats.url });
  });
  after(async () => {
    await client?.close();
    await nats?.stop();
  });

  pubsubContract(
    "nats",
    async () => {
      const channel = nextChannel();
      const nodes: NatsPubSub[] = [];
      return {
        async node(handler) {
          const n = new NatsPubSub({ nats: parseServers(nats.url), channel }, handler, silent);
          nodes.push(n);
          return n;
        },
        async synced() {
          await ready(...nodes);
        },
        async close() {},
      };
    },
    { multiNode: true },
  );

  it("speaks anycable-go's wire format: subjects are stream names, commands go to the channel", async () => {
    const handler = new RecordingPubSubHandler();
    const channel = nextChannel();
    const ps = pubsub(nats.url, handler, channel);
    const seen: { subject: string; data: string }[] = [];
    const probe = (subject: string) =>
      client.subscribe(subject, {
        callback: (_e, m) => {
          seen.push({ subject: m.subject, data: m.string() });
        },
      });
    const subs = [probe("chat.42"), probe(channel)];
    await client.flush();
    try {
      await ps.start(() => {});
      ps.subscribe("chat.42");
      await ready(ps);
      ps.broadcast({
        stream: "chat.42",
        dataJson: '{"text":"hi"}',
        excludeSocket: "s1",
        offset: 3,
        epoch: "e1",
      });
      ps.broadcastCommand({ command: "disconnect", identifier: '{"u":1}', reconnect: true });
      await waitFor(() => seen.length >= 2, "both on the wire");
      assert.deepEqual(seen, [
        {
          subject: "chat.42",
          data: '{"stream":"chat.42","data":"{\\"text\\":\\"hi\\"}","meta":{"exclude_socket":"s1"},"offset":3,"epoch":"e1"}',
        },
        {
          subject: channel,
          data: '{"command":"disconnect","payload":{"identifier":"{\\"u\\":1}","reconnect":true}}',
        },
      ]);
      // and what an anycable-go node publishes is understood
      client.publish(
        "chat.42",
        '{"stream":"chat.42","data":"plain text","meta":{"broadcast_type":"x","transient":true}}',
      );
      client.publish(channel, '{"command":"disconnect","payload":{"identifier":"abc","reconnect":false}}');
      client.publish("chat.42", "not json");
      await waitFor(() => handler.events.length >= 4, "the own and the foreign messages");
      assert.deepEqual(handler.events.slice(2), [
        {
          kind: "broadcast",
          message: { stream: "chat.42", dataJson: '"plain text"', broadcastType: "x", transient: true },
        },
        { kind: "command", command: { command: "disconnect", identifier: "abc", reconnect: false } },
      ]);
    } finally {
      for (const s of subs) s.unsubscribe();
      await ps.shutdown();
    }
  });

  it("holds a NATS subscription only while the stream has local subscribers", async () => {
    const ps = pubsub(nats.url, new RecordingPubSubHandler());
    try {
      await ps.start(() => {});
      ps.subscribe("followed");
      await ready(ps);
      assert.equal(await natsSubscribers(nats.monitorUrl, "followed"), 1);
      ps.unsubscribe("followed");
      await ps.flush();
      await waitFor(async () => (await natsSubscribers(nats.monitorUrl, "followed")) === 0, "UNSUB");
    } finally {
      await ps.shutdown();
    }
  });

  it("maps names NATS cannot carry to hashed subjects, and keeps literal ones", () => {
    assert.equal(streamSubject("chat_1"), "chat_1");
    assert.equal(streamSubject("a.b.c"), "a.b.c");
    assert.equal(streamSubject("wild*card>"), "wild*card>");
    for (const odd of ["with space", "a..b", ".a", "a.", "a.*", ">", "x\ty", "x".repeat(3000)]) {
      assert.match(streamSubject(odd), /^__anycable_stream__\.[A-Za-z0-9_-]{43}$/, odd);
    }
    assert.notEqual(streamSubject("a b"), streamSubject("a  b"));
  });

  it("reconnects after nats-server restarts: resubscribes, follows changes made while down, delivers locally meanwhile", {
    timeout: 20_000,
  }, async () => {
    let own = await startNats();
    const handler = new RecordingPubSubHandler();
    const fatals: Error[] = [];
    const ps = pubsub(own.url, handler);
    try {
      await ps.start((e) => fatals.push(e));
      ps.subscribe("kept");
      ps.subscribe("dropped");
      await ready(ps);
      await own.stop();
      await waitFor(() => !ps.connected, "the disconnect");
      ps.unsubscribe("dropped");
      ps.subscribe("added");
      ps.broadcast({ stream: "kept", dataJson: '"while down"' });
      ps.broadcastCommand({ command: "disconnect", identifier: "x", reconnect: false });
      // to this node's clients at once, and never again
      assert.deepEqual(handler.events, [
        { kind: "broadcast", message: { stream: "kept", dataJson: '"while down"' } },
        { kind: "command", command: { command: "disconnect", identifier: "x", reconnect: false } },
      ]);
      own = await own.restart();
      await waitFor(() => ps.connected, "the reconnect", 10_000);
      await ps.flush();
      assert.equal(await natsSubscribers(own.monitorUrl, "kept"), 1);
      assert.equal(await natsSubscribers(own.monitorUrl, "added"), 1);
      await waitFor(
        async () => (await natsSubscribers(own.monitorUrl, "dropped")) === 0,
        "no subscription left",
      );
      ps.broadcast({ stream: "dropped", dataJson: '"no"' });
      ps.broadcast({ stream: "added", dataJson: '"yes"' });
      ps.broadcast({ stream: "kept", dataJson: '"after"' });
      await handler.received((m) => m.dataJson === '"after"', "the message after the restart");
      assert.deepEqual(handler.messages, [
        { stream: "kept", dataJson: '"while down"' },
        { stream: "added", dataJson: '"yes"' },
        { stream: "kept", dataJson: '"after"' },
      ]);
      assert.deepEqual(fatals, []);
    } finally {
      await ps.shutdown();
      await own.stop();
    }
  });

  it("starts without NATS, connects once it is up", { timeout: 15_000 }, async () => {
    const port = await freePort();
    const handler = new RecordingPubSubHandler();
    const ps = pubsub(`nats://127.0.0.1:${port}`, handler);
    let own: NatsProcess | undefined;
    try {
      await ps.start(() => {});
      ps.subscribe("late");
      own = await startNats(port);
      await waitFor(() => ps.connected, "the first connection", 10_000);
      await ps.flush();
      ps.broadcast({ stream: "late", dataJson: "1" });
      await handler.received((m) => m.stream === "late", "the message");
    } finally {
      await ps.shutdown();
      await own?.stop();
    }
  });

  it("calls fatal once when NATS stays unreachable past max_reconnect_attempts", {
    timeout: 15_000,
  }, async () => {
    const port = await freePort();
    const fatals: Error[] = [];
    const ps = pubsub(`nats://127.0.0.1:${port}`, new RecordingPubSubHandler(), nextChannel(), 1);
    const started = Date.now();
    try {
      await ps.start((e) => fatals.push(e));
      await waitFor(() => fatals.length > 0, "fatal", 10_000);
      // the first attempt, then one more after nats.go's 2 s ReconnectWait
      assert.ok(Date.now() - started >= 1900, `after the wait (${Date.now() - started} ms)`);
      assert.match(fatals[0]!.message, /NATS connection failed after 2 attempts/);
      await new Promise((r) => setTimeout(r, 300)); // a window for a wrong second call
      assert.equal(fatals.length, 1);
    } finally {
      await ps.shutdown();
    }
  });

  it("calls fatal once when a lost connection cannot be restored", { timeout: 15_000 }, async () => {
    const own = await startNats();
    const fatals: Error[] = [];
    const ps = pubsub(own.url, new RecordingPubSubHandler(), nextChannel(), 1);
    try {
      await ps.start((e) => fatals.push(e));
      await ready(ps);
      await own.stop();
      await waitFor(() => fatals.length > 0, "fatal", 10_000);
      assert.match(fatals[0]!.message, /NATS reconnect attempts exceeded/);
      await new Promise((r) => setTimeout(r, 300)); // a window for a wrong second call
      assert.equal(fatals.length, 1);
    } finally {
      await ps.shutdown();
      await own.stop();
    }
  });
});
