import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FILTERED, frameForLog, redactHeaders, redactSigned, redactUrl } from "../../src/log/redact.ts";

describe("log redaction", () => {
  it("filters signed stream names in identifiers, in frames holding them and in Turbo's key", () => {
    const id = JSON.stringify({ channel: "$pubsub", signed_stream_name: "eyJhIjoiYiJ9--0a1b2c" });
    assert.equal(redactSigned(id), `{"channel":"$pubsub","signed_stream_name":"${FILTERED}"}`);
    const frame = JSON.stringify({ command: "subscribe", identifier: id });
    assert.equal(redactSigned(frame).includes("eyJhIjoiYiJ9--0a1b2c"), false);
    assert.equal(JSON.parse(JSON.parse(redactSigned(frame)).identifier).signed_stream_name, FILTERED);
    const turbo = JSON.stringify({ channel: "Turbo::StreamsChannel", turbo_signed_stream_name: "x--y" });
    assert.equal(JSON.parse(redactSigned(turbo)).turbo_signed_stream_name, FILTERED);
    assert.equal(redactSigned('{"channel":"ChatChannel"}'), '{"channel":"ChatChannel"}');
  });

  it("filters credential-like query parameters and the named extra ones, keeping the rest", () => {
    const u = new URL(redactUrl("ws://h/cable?jid=abc&pi=5&access_token=t&x=1", ["x"]));
    assert.equal(u.searchParams.get("jid"), FILTERED);
    assert.equal(u.searchParams.get("access_token"), FILTERED);
    assert.equal(u.searchParams.get("x"), FILTERED);
    assert.equal(u.searchParams.get("pi"), "5");
    assert.equal(redactUrl("ws://h/cable?pi=5"), "ws://h/cable?pi=5");
    assert.equal(redactUrl("ws://h/cable"), "ws://h/cable");
    assert.equal(redactUrl("not a url?token=1"), `not a url?${FILTERED}`);
  });

  it("filters cookie, authorization and token headers", () => {
    const h = redactHeaders(
      {
        cookie: "s=1",
        Authorization: "Bearer x",
        "x-jid": "t",
        "x-api-key": "k",
        origin: "o",
        "x-auth": "a",
      },
      ["auth"],
    );
    assert.deepEqual(h, {
      cookie: FILTERED,
      Authorization: FILTERED,
      "x-jid": FILTERED,
      "x-api-key": FILTERED,
      origin: "o",
      "x-auth": FILTERED,
    });
  });

  it("cuts frames after filtering, binary frames as their size", () => {
    const id = JSON.stringify({ signed_stream_name: "a".repeat(300) });
    assert.equal(frameForLog(id).includes("aaaa"), false);
    assert.equal(frameForLog(new Uint8Array(7)), "<7 bytes binary>");
    assert.ok(frameForLog("b".repeat(500)).startsWith("b".repeat(100)));
  });
});
