import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { describe, it } from "node:test";
import { Logger } from "../../src/log/logger.ts";
import type { CommandResult, Controller } from "../../src/node/controller.ts";
import { NullController } from "../../src/node/null_controller.ts";
import {
  CableReadyController,
  StreamsController,
  TurboStreamsController,
} from "../../src/streams/controller.ts";
import { buildChannelRouter } from "../../src/streams/factory.ts";
import type { Options as StreamsOptions } from "../../src/streams/options.ts";
import { MessageVerifier } from "../../src/streams/verifier.ts";
import { signStream } from "../support/signing.ts";

// turbo-rails with signed_stream_verifier_key = "s3Krit": signed_stream_name([:chat, "2021"]).
const TURBO_VECTOR = "ImNoYXQ6MjAyMSI=--f9ee45dbccb1da04d8ceb99cc820207804370ba0d06b46fc3b8b373af1315628";
const env = { url: "ws://x/cable", headers: {}, cstate: {}, istate: {} };
const silent = new Logger("error", "text", {}, { write() {} });

const pubsub = (fields: Record<string, unknown>) => JSON.stringify({ channel: "$pubsub", ...fields });

async function sub(c: Controller, identifier: string): Promise<CommandResult> {
  const res = await c.subscribe({ sid: "sid", env, identifiers: "{}", identifier });
  assert.ok(res, "controller answered");
  return res;
}

function assertRejected(res: CommandResult, identifier: string) {
  assert.equal(res.status, "failure");
  assert.deepEqual(res.transmissions, [
    JSON.stringify({ type: "reject_subscription", identifier: identifier }),
  ]);
  assert.equal(res.streams, undefined);
}

describe("MessageVerifier", () => {
  it("reproduces and verifies turbo-rails' signature", () => {
    const v = new MessageVerifier("s3Krit");
    assert.equal(v.generate("chat:2021"), TURBO_VECTOR);
    assert.deepEqual(v.verified(TURBO_VECTOR), { ok: true, value: "chat:2021" });
    assert.equal(signStream("chat:2021", "s3Krit"), TURBO_VECTOR);
  });

  it("round-trips non-ASCII names signed by the documented algorithm", () => {
    const v = new MessageVerifier("k");
    for (const name of ["чат/1", "emoji 🎉", "a--b", 'quote"d', ""]) {
      assert.deepEqual(v.verified(signStream(name, "k")), { ok: true, value: name });
    }
  });

  it("refuses wrong keys, tampering, bad shapes and an empty key", () => {
    const v = new MessageVerifier("s3Krit");
    const [data, digest] = TURBO_VECTOR.split("--") as [string, string];
    const cases = [
      signStream("chat:2021", "other"),
      `${data}--${digest.toUpperCase()}`,
      `${data}--${digest.slice(0, -1)}`,
      `${data}--${digest}0`,
      `${data}x--${digest}`,
      `${Buffer.from('"chat:2022"').toString("base64")}--${digest}`,
      `${data}--${digest}--${digest}`,
      data,
      "",
      "--",
      `${data}--${"z".repeat(64)}`,
      `${data}--${"é".repeat(64)}`,
      "x".repeat(9000),
    ];
    for (const c of cases) assert.equal(v.verified(c).ok, false, c);
    assert.equal(new MessageVerifier("").verified(signStream("chat", "")).ok, false);
  });

  it("refuses signed payloads that are not strict base64 JSON", () => {
    const key = "k";
    const sign = (encoded: string) => `${encoded}--${hmac(key, encoded)}`;
    const v = new MessageVerifier(key);
    assert.equal(v.verified(sign("bm90IGpzb24=")).ok, false); // "not json"
    assert.equal(v.verified(sign("ImNoYXQxIg")).ok, false); // '"chat1"' without its padding
    assert.equal(v.verified(sign("Im#oYXQi")).ok, false); // not base64
    assert.deepEqual(v.verified(sign("ImNoYXQxIg==")), { ok: true, value: "chat1" });
  });
});

function hmac(key: string, data: string): string {
  return createHmac("sha256", key).update(data).digest("hex");
}

describe("$pubsub streams controller", () => {
  it("confirms a verified signed name with presence (default) but no whisper stream", async () => {
    const c = new StreamsController({ secret: "s3Krit" });
    const id = pubsub({ signed_stream_name: TURBO_VECTOR });
    const res = await sub(c, id);
    assert.deepEqual(res, {
      status: "success",
      transmissions: [JSON.stringify({ type: "confirm_subscription", identifier: id })],
      streams: ["chat:2021"],
      disconnectInterest: -1,
      istate: { $p: "chat:2021" },
    });
  });

  it("adds the whisper stream with --streams_whisper and drops presence when disabled", async () => {
    const c = new StreamsController({ secret: "s3Krit", whisper: true, presence: false });
    const res = await sub(c, pubsub({ signed_stream_name: TURBO_VECTOR }));
    assert.deepEqual(res.istate, { $w: "chat:2021" });
    const none = new StreamsController({ secret: "s3Krit", presence: false });
    assert.equal((await sub(none, pubsub({ signed_stream_name: TURBO_VECTOR }))).istate, undefined);
  });

  it("accepts public names only with public streams, always with whisper and presence", async () => {
    const id = pubsub({ stream_name: "chat" });
    assertRejected(await sub(new StreamsController({ secret: "k" }), id), id);
    const res = await sub(new StreamsController({ publicStreams: true, presence: false }), id);
    assert.deepEqual(res.streams, ["chat"]);
    assert.deepEqual(res.istate, { $w: "chat", $p: "chat" });
  });

  it("verifies the signed name when both names are given", async () => {
    const c = new StreamsController({ secret: "k", publicStreams: true });
    const forged = pubsub({ stream_name: "chat", signed_stream_name: signStream("admin", "wrong") });
    assertRejected(await sub(c, forged), forged);
    const good = pubsub({ stream_name: "chat", signed_stream_name: signStream("admin", "k") });
    assert.deepEqual((await sub(c, good)).streams, ["admin"]);
  });

  it("rejects tampered, unsigned, non-string and malformed identifiers", async () => {
    const c = new StreamsController({ secret: "k", publicStreams: false });
    const bad = [
      pubsub({ signed_stream_name: `${signStream("chat", "k")}0` }),
      pubsub({ signed_stream_name: signStream("chat", "other") }),
      pubsub({ signed_stream_name: signStream(["chat", 1], "k") }),
      pubsub({ signed_stream_name: signStream({ s: 1 }, "k") }),
      pubsub({ signed_stream_name: 42 }),
      pubsub({ stream_name: ["a"] }),
      pubsub({ stream_name: "chat" }),
      pubsub({}),
      "not json",
      "[]",
      "null",
    ];
    for (const id of bad) assertRejected(await sub(c, id), id);
  });

  it("rejects every signed name when no streams secret is configured", async () => {
    const c = new StreamsController({ publicStreams: true });
    const id = pubsub({ signed_stream_name: signStream("chat", "") });
    assertRejected(await sub(c, id), id);
  });

  it("unsubscribes by stopping all streams", async () => {
    const res = await new StreamsController().unsubscribe();
    assert.equal(res.stopAllStreams, true);
    assert.equal(res.status, "success");
  });
});

describe("Turbo::StreamsChannel and CableReady::Stream controllers", () => {
  it("serve turbo-rails signed names, without whisper or presence state", async () => {
    const c = new TurboStreamsController("s3Krit");
    const id = JSON.stringify({ channel: "Turbo::StreamsChannel", signed_stream_name: TURBO_VECTOR });
    const res = await sub(c, id);
    assert.deepEqual(res.streams, ["chat:2021"]);
    assert.equal(res.istate, undefined);
    assert.equal(res.disconnectInterest, -1);
    const fake = JSON.stringify({ channel: "Turbo::StreamsChannel", signed_stream_name: "fake_id" });
    assertRejected(await sub(c, fake), fake);
    // a public name means nothing to Turbo
    const unsigned = JSON.stringify({ channel: "Turbo::StreamsChannel", stream_name: "chat" });
    assertRejected(await sub(c, unsigned), unsigned);
  });

  it("serve CableReady's signed `identifier`", async () => {
    const c = new CableReadyController("cr-key");
    const id = JSON.stringify({ channel: "CableReady::Stream", identifier: signStream("posts", "cr-key") });
    assert.deepEqual((await sub(c, id)).streams, ["posts"]);
    const bad = JSON.stringify({ channel: "CableReady::Stream", identifier: signStream("posts", "x") });
    assertRejected(await sub(c, bad), bad);
  });
});

function settings(over: Partial<StreamsOptions> = {}, publicStreams = false): StreamsOptions {
  return {
    publicStreams,
    pubsubChannel: "$pubsub",
    secret: "",
    whisper: false,
    presence: true,
    turboSecret: "",
    cableReadySecret: "",
    ...over,
  };
}

describe("buildChannelRouter", () => {
  const app = new NullController();
  const turboId = (key: string) =>
    JSON.stringify({ channel: "Turbo::StreamsChannel", signed_stream_name: signStream("t", key) });
  const crId = (key: string) =>
    JSON.stringify({ channel: "CableReady::Stream", identifier: signStream("c", key) });

  it("routes Turbo and CableReady only when their keys resolve", async () => {
    const off = buildChannelRouter(app, settings({ secret: "s" }), silent);
    // without the controllers these channels go to the application (here: --norpc refusal)
    assertRejected(await sub(off, turboId("s")), turboId("s"));
    assertRejected(await sub(off, crId("s")), crId("s"));
    const on = buildChannelRouter(app, settings({ turboSecret: "t", cableReadySecret: "c" }), silent);
    assert.deepEqual((await sub(on, turboId("t"))).streams, ["t"]);
    assert.deepEqual((await sub(on, crId("c"))).streams, ["c"]);
  });

  it("serves the pub/sub channel under its configured name and streams key", async () => {
    const r = buildChannelRouter(app, settings({ pubsubChannel: "$streams", secret: "k" }, true), silent);
    const signed = JSON.stringify({ channel: "$streams", signed_stream_name: signStream("x", "k") });
    assert.deepEqual((await sub(r, signed)).streams, ["x"]);
    const old = pubsub({ stream_name: "x" });
    assertRejected(await sub(r, old), old);
    const none = buildChannelRouter(app, settings({ pubsubChannel: "" }, true), silent);
    assert.equal(none, app, "no routes: the application controller itself");
  });
});
