// Pusher signatures, checked against the real `pusher` server SDK (an independent implementation)
// and against Pusher's worked examples.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import Pusher from "pusher";
import {
  authMatches,
  channelAuth,
  md5Hex,
  requestStringToSign,
  sign,
  signRequest,
  userAuth,
  verifyRequest,
  webhookSignature,
} from "../../src/protocols/pusher/signatures.ts";

const APP = { appId: "3", key: "278d425bdf160c739803", secret: "7ad3773142a6692b25b8" };
const sdk = new Pusher({ ...APP, host: "localhost", port: "1", useTLS: false });
const NOW = 1_700_000_000;

describe("pusher signatures: channels and users", () => {
  it("private channel auth equals the SDK's authorizeChannel (and Pusher's worked example)", () => {
    const auth = channelAuth(APP.key, APP.secret, "1234.1234", "private-foobar");
    assert.equal(auth, sdk.authorizeChannel("1234.1234", "private-foobar").auth);
    // Pusher's documented example for exactly these credentials
    assert.equal(
      auth,
      "278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4",
    );
  });

  it("presence channel auth signs the channel_data text as sent", () => {
    const presence = { user_id: "10", user_info: { name: "Mr. Channels" } };
    const fromSdk = sdk.authorizeChannel("1234.1234", "presence-foobar", presence);
    assert.equal(
      channelAuth(APP.key, APP.secret, "1234.1234", "presence-foobar", fromSdk.channel_data),
      fromSdk.auth,
    );
    // a different channel_data text (same object, other key order) is another signature
    const reordered = JSON.stringify({ user_info: presence.user_info, user_id: "10" });
    assert.notEqual(
      channelAuth(APP.key, APP.secret, "1234.1234", "presence-foobar", reordered),
      fromSdk.auth,
    );
  });

  it("user auth equals the SDK's authenticateUser", () => {
    const fromSdk = sdk.authenticateUser("1234.1234", { id: "42", name: "Ada" });
    assert.equal(userAuth(APP.key, APP.secret, "1234.1234", fromSdk.user_data), fromSdk.auth);
  });

  it("authMatches accepts only the exact string", () => {
    const auth = channelAuth(APP.key, APP.secret, "1.2", "private-a");
    assert.ok(authMatches(auth, auth));
    assert.ok(!authMatches(`${auth}0`, auth));
    assert.ok(!authMatches(auth.toUpperCase(), auth));
    assert.ok(!authMatches(undefined, auth));
    assert.ok(!authMatches(42, auth));
    assert.ok(!authMatches("", auth));
  });

  it("webhook signature is the SDK's (its WebHook validates it)", () => {
    const body = JSON.stringify({ time_ms: 1, events: [{ name: "channel_occupied", channel: "a" }] });
    const hook = sdk.webhook({
      headers: {
        "x-pusher-key": APP.key,
        "x-pusher-signature": webhookSignature(APP.secret, body),
        "content-type": "application/json",
      },
      rawBody: body,
    });
    assert.ok(hook.isValid());
    assert.equal(webhookSignature(APP.secret, body), sign(APP.secret, body));
  });
});

describe("pusher signatures: HTTP API requests", () => {
  const body = JSON.stringify({ name: "foo", channels: ["project-3"], data: '{"some":"data"}' });

  it("the string to sign: method, path, sorted lowercased params without auth_signature", () => {
    const q = new URLSearchParams("b=2&A=1&auth_signature=x&c=hello world");
    assert.equal(
      requestStringToSign("post", "/apps/3/events", q),
      "POST\n/apps/3/events\na=1&b=2&c=hello world",
    );
  });

  it("accepts what the SDK signs (POST with body_md5, GET with extra params)", () => {
    const post = new URLSearchParams(
      sdk.createSignedQueryString({ method: "POST", path: "/apps/3/events", body }),
    );
    const ts = Number(post.get("auth_timestamp"));
    assert.deepEqual(
      verifyRequest({ method: "POST", path: "/apps/3/events", query: post, body }, APP.key, APP.secret, ts),
      { ok: true },
    );
    const get = new URLSearchParams(
      sdk.createSignedQueryString({
        method: "GET",
        path: "/apps/3/channels",
        params: { filter_by_prefix: "presence-", info: "user_count" },
      }),
    );
    assert.deepEqual(
      verifyRequest(
        { method: "GET", path: "/apps/3/channels", query: get, body: "" },
        APP.key,
        APP.secret,
        ts,
      ),
      { ok: true },
    );
  });

  it("our signRequest is accepted and matches Pusher's body_md5", () => {
    const q = signRequest(APP.key, APP.secret, "POST", "/apps/3/events", {}, body, NOW);
    assert.equal(q.get("body_md5"), md5Hex(body));
    assert.equal(md5Hex(""), "d41d8cd98f00b204e9800998ecf8427e");
    assert.deepEqual(
      verifyRequest({ method: "POST", path: "/apps/3/events", query: q, body }, APP.key, APP.secret, NOW),
      { ok: true },
    );
  });

  const reject = (
    q: URLSearchParams,
    over: Partial<{ method: string; path: string; body: string; now: number }>,
  ) =>
    verifyRequest(
      {
        method: over.method ?? "POST",
        path: over.path ?? "/apps/3/events",
        query: q,
        body: over.body ?? body,
      },
      APP.key,
      APP.secret,
      over.now ?? NOW,
    );
  const signed = () => signRequest(APP.key, APP.secret, "POST", "/apps/3/events", {}, body, NOW);

  it("refuses a wrong secret, key, path, method or a tampered body", () => {
    const other = signRequest(APP.key, "wrong", "POST", "/apps/3/events", {}, body, NOW);
    assert.equal(reject(other, {}).ok, false);
    const otherKey = signRequest("otherkey", APP.secret, "POST", "/apps/3/events", {}, body, NOW);
    assert.deepEqual(reject(otherKey, {}), { ok: false, error: "unknown auth_key" });
    assert.deepEqual(reject(signed(), { path: "/apps/4/events" }), {
      ok: false,
      error: "invalid auth_signature",
    });
    assert.equal(reject(signed(), { method: "GET" }).ok, false);
    assert.deepEqual(reject(signed(), { body: `${body} ` }), {
      ok: false,
      error: "body_md5 does not match the body",
    });
  });

  it("refuses a timestamp outside ±600 s, and accepts the edges", () => {
    assert.equal(reject(signed(), { now: NOW + 600 }).ok, true);
    assert.equal(reject(signed(), { now: NOW - 600 }).ok, true);
    assert.equal(reject(signed(), { now: NOW + 601 }).ok, false);
    assert.equal(reject(signed(), { now: NOW - 601 }).ok, false);
  });

  it("refuses missing or malformed parameters", () => {
    for (const drop of ["auth_key", "auth_timestamp", "auth_signature", "body_md5"]) {
      const q = signed();
      q.delete(drop);
      assert.equal(reject(q, {}).ok, false, drop);
    }
    for (const ts of ["", "abc", "1e9", "1.5", "99999999999999999999"]) {
      const q = signed();
      q.set("auth_timestamp", ts);
      assert.equal(reject(q, {}).ok, false, ts);
    }
    const extra = signed();
    extra.set("info", "user_count"); // added after signing
    assert.equal(reject(extra, {}).ok, false);
  });

  it("an upper-case hex signature is the same signature", () => {
    const q = signed();
    q.set("auth_signature", (q.get("auth_signature") ?? "").toUpperCase());
    assert.equal(reject(q, {}).ok, true);
  });
});
