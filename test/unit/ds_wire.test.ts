// The Durable Streams read request and wire format, against the cases of anycable-go's
// ds/ds_test.go and ds/encoder_test.go (offsets, live modes, cursors, events) and the malformed
// input a client can send.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  catchUpEtag,
  DS_ENCODER,
  etagMatches,
  historyItems,
  jsonBatch,
  liveItem,
  sseControlEvent,
  sseDataEvent,
} from "../../src/transports/ds/encoder.ts";
import { decodeOffset, dsParams, encodeOffset, nextCursor } from "../../src/transports/ds/params.ts";

const req = (path: string, headers: Record<string, string> = {}) =>
  dsParams(new URL(`http://h${path}`), "/ds", new Headers(headers));

describe("Durable Streams offsets", () => {
  it("encodes a position as <offset>::<epoch>, and a stream without one as 0", () => {
    assert.equal(encodeOffset(42, "abc123"), "42::abc123");
    assert.equal(encodeOffset(0, ""), "0");
    assert.equal(encodeOffset(7, ""), "0");
  });

  it("decodes tokens and the reserved offsets", () => {
    assert.deepEqual(decodeOffset("42::abc123"), { ok: true, value: { offset: 42, epoch: "abc123" } });
    for (const r of ["", "0", "-1", "now"]) {
      assert.deepEqual(decodeOffset(r), { ok: true, value: { offset: 0, epoch: "" } }, r);
    }
    assert.deepEqual(decodeOffset("5"), { ok: true, value: { offset: 5, epoch: "" } });
    assert.deepEqual(decodeOffset("5::e::x"), { ok: true, value: { offset: 5, epoch: "e" } });
  });

  it("refuses offsets that are not unsigned integers", () => {
    for (const r of ["abc", "-5", "1.5", "::e", " 3", "99999999999999999999::e", "0x10::e"]) {
      assert.equal(decodeOffset(r).ok, false, r);
    }
  });
});

describe("Durable Streams request parameters", () => {
  it("takes the stream from the path below --ds_path, slashes and escapes included", () => {
    const p = req("/ds/chat/room-42?offset=3::ep&live=sse&cursor=77&signed=tok");
    assert.ok(p.ok);
    assert.deepEqual(p.value, {
      stream: "chat/room-42",
      signed: "tok",
      rawOffset: "3::ep",
      offset: 3,
      epoch: "ep",
      live: "sse",
      cursor: "77",
    });
    const esc = req("/ds/a%20b%2Fc");
    assert.ok(esc.ok);
    assert.equal(esc.value.stream, "a b/c");
  });

  it("defaults to a catch-up from the start; the signed name also comes from X-Signed", () => {
    const p = req("/ds/s", { "X-Signed": "from-header" });
    assert.ok(p.ok);
    assert.equal(p.value.rawOffset, "-1");
    assert.equal(p.value.live, "");
    assert.equal(p.value.signed, "from-header");
    const both = req("/ds/s?signed=q", { "X-Signed": "h" });
    assert.ok(both.ok);
    assert.equal(both.value.signed, "q");
  });

  it("refuses a missing stream, a bad live mode, a live mode without offset, a bad offset, bad escapes", () => {
    for (const path of [
      "/ds",
      "/ds/",
      "/ds/s?live=poll&offset=-1",
      "/ds/s?live=sse",
      "/ds/s?live=long-poll",
      "/ds/s?offset=x",
      "/ds/%E0%A4%A",
    ]) {
      const p = req(path);
      assert.equal(p.ok, false, path);
    }
  });
});

describe("Durable Streams cursors", () => {
  const at = Date.UTC(2024, 9, 9) + 20_000 * 1000 + 5;

  it("counts 20-second intervals from 2024-10-09", () => {
    assert.equal(nextCursor("", at), "1000");
    assert.equal(nextCursor("garbage", at), "1000");
    assert.equal(nextCursor("999", at), "1000");
  });

  it("moves past a cursor the client already holds (1 to 60 intervals on)", () => {
    assert.equal(
      nextCursor("1000", at, () => 0),
      "1001",
    );
    assert.equal(
      nextCursor("1500", at, () => 0.999),
      "1560",
    );
    const n = Number(nextCursor("1000", at));
    assert.ok(n > 1000 && n <= 1060);
  });
});

describe("Durable Streams encoder and events", () => {
  it("encodes stream messages with a position once for every DS client, and skips the rest", () => {
    const frame = DS_ENCODER.encodeBroadcast("id", '{"a":1}', { offset: 4, epoch: "ep", stream_id: "s" });
    assert.equal(frame, '4::ep\n{"a":1}');
    assert.deepEqual(liveItem(frame as string), { offset: 4, epoch: "ep", token: "4::ep", item: '{"a":1}' });
    assert.deepEqual(liveItem(new TextEncoder().encode(frame as string))?.item, '{"a":1}');
    assert.equal(DS_ENCODER.encodeBroadcast("id", '"x"', {}), null, "no broker offset");
    assert.equal(DS_ENCODER.encodeBroadcast("id", '"x"', { type: "presence", offset: 1, epoch: "e" }), null);
    assert.equal(DS_ENCODER.encodeReply(), null);
    assert.equal(DS_ENCODER.encodeTransmission(), null);
    assert.equal(DS_ENCODER.decode("{}").ok, false);
    assert.equal(liveItem("no line break"), undefined);
    assert.equal(liveItem("4ep\nx"), undefined);
  });

  it("writes batches and SSE events as anycable-go does", () => {
    const items = historyItems([
      { stream: "s", dataJson: '{"id":1,"msg":"hello"}', offset: 1, epoch: "e" },
      { stream: "s", dataJson: '{"id":2,"msg":"world"}', offset: 2, epoch: "e" },
    ]);
    assert.equal(jsonBatch(items), '[{"id":1,"msg":"hello"},{"id":2,"msg":"world"}]');
    assert.equal(jsonBatch([]), "[]");
    assert.equal(
      sseDataEvent(items),
      'event: data\ndata:[{"id":1,"msg":"hello"},{"id":2,"msg":"world"}]\n\n',
    );
    assert.equal(
      sseControlEvent("3::epoch", "12345", true),
      'event: control\ndata:{"streamNextOffset":"3::epoch","streamCursor":"12345","upToDate":true}\n\n',
    );
    assert.equal(sseControlEvent("0", "", false), 'event: control\ndata:{"streamNextOffset":"0"}\n\n');
  });

  it("keeps a pretty-printed item inside its data field", () => {
    const ev = sseDataEvent(['{\n  "a": "x\\ny"\r\n}']);
    assert.equal(ev, 'event: data\ndata:[{   "a": "x\\ny" }]\n\n');
    assert.deepEqual(JSON.parse(ev.slice("event: data\ndata:".length)), [{ a: "x\ny" }]);
  });
});

describe("Durable Streams catch-up ETags", () => {
  const msg = (offset: number) => ({ stream: "s", dataJson: "1", offset, epoch: "ep" });

  it("names the first message and the tail: new messages or expired ones change it", () => {
    assert.equal(catchUpEtag([msg(1), msg(3)], "3::ep"), '"1::ep-3::ep"');
    assert.notEqual(catchUpEtag([msg(1), msg(4)], "4::ep"), catchUpEtag([msg(1), msg(3)], "3::ep"));
    assert.notEqual(catchUpEtag([msg(2), msg(3)], "3::ep"), catchUpEtag([msg(1), msg(3)], "3::ep"));
    assert.equal(catchUpEtag([], "0"), '"none-0"');
    // only characters an entity tag may hold
    assert.equal(catchUpEtag([], 'a "b"'), '"none-a__b_"');
  });

  it("If-None-Match: the tag, one of a list, a weak tag, or *", () => {
    const tag = '"1::ep-3::ep"';
    assert.equal(etagMatches(null, tag), false);
    assert.equal(etagMatches(tag, tag), true);
    assert.equal(etagMatches(`"x", ${tag}`, tag), true);
    assert.equal(etagMatches(`W/${tag}`, tag), true);
    assert.equal(etagMatches("*", tag), true);
    assert.equal(etagMatches('"1::ep-2::ep"', tag), false);
  });
});
