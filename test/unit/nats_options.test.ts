// --nats_servers as anycable-go reads it (comma-separated URLs, credentials inside them), and
// those credentials working against a nats-server that requires them.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Logger } from "../../src/log/logger.ts";
import { describeServers, parseServers } from "../../src/nats/options.ts";
import { NatsPubSub } from "../../src/pubsub/nats.ts";
import { hasService, startNats } from "../support/services.ts";
import { waitFor } from "../support/wait.ts";
import { RecordingPubSubHandler } from "./contracts/pubsub_contract.ts";

describe("NATS server list", () => {
  it("splits the list, adds the scheme where missing, keeps the order", () => {
    const o = parseServers(" nats://a:4222, b:4223 ,tls://c:4224,", true, 7);
    assert.deepEqual(o.servers, ["nats://a:4222", "nats://b:4223", "tls://c:4224"]);
    assert.equal(o.dontRandomize, true);
    assert.equal(o.maxReconnectAttempts, 7);
    assert.equal(o.user, undefined);
    assert.equal(o.token, undefined);
  });

  it("takes user/password or a token out of the URLs and never shows them", () => {
    const userPass = parseServers("nats://app:s%40cret@n1:4222,nats://n2:4222");
    assert.deepEqual(
      { servers: userPass.servers, user: userPass.user, pass: userPass.pass },
      { servers: ["nats://n1:4222", "nats://n2:4222"], user: "app", pass: "s@cret" },
    );
    assert.equal(describeServers(userPass), "nats://n1:4222,nats://n2:4222");
    const token = parseServers("nats://t0k3n@n1:4222");
    assert.equal(token.token, "t0k3n");
    assert.equal(token.user, undefined);
    assert.equal(describeServers(token), "nats://n1:4222");
  });
});

const silent = new Logger("error", "text", {}, { write() {} });

describe("NATS credentials in --nats_servers", { skip: !hasService("nats-server") }, () => {
  it("connects to a server requiring user and password with the ones in the URL", async () => {
    const nats = await startNats(undefined, undefined, ["--user", "app", "--pass", "s3cret"]);
    const handler = new RecordingPubSubHandler();
    const ps = new NatsPubSub(
      { nats: parseServers(`nats://app:s3cret@127.0.0.1:${nats.port}`), channel: "__anycable_internal__" },
      handler,
      silent,
    );
    try {
      await ps.start(() => {});
      ps.subscribe("secret-stream");
      await waitFor(() => ps.connected, "the authenticated connection");
      await ps.flush();
      ps.broadcast({ stream: "secret-stream", dataJson: "1" });
      await handler.received((m) => m.stream === "secret-stream", "the message through NATS");
    } finally {
      await ps.shutdown();
      await nats.stop();
    }
  });
});
