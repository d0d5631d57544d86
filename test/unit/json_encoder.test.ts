import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  broadcastMessage,
  confirmMessage,
  decodeCommand,
  disconnectMessage,
  pingMessage,
  publicationDataJson,
  rejectMessage,
  replyFromJson,
  replyJson,
  welcomeMessage,
} from "../../src/protocols/actioncable.ts";
import { jsonEncoder } from "../../src/protocols/json_encoder.ts";

const ID = '{"channel":"Chat","id":"ü\\"1"}';

describe("JSON encoder: the same bytes as the actioncable.ts functions", () => {
  it("welcome, ping, confirm, reject, disconnect", () => {
    assert.equal(jsonEncoder.encodeReply({ type: "welcome", sid: "s-1" }), welcomeMessage("s-1"));
    assert.equal(
      jsonEncoder.encodeReply({ type: "ping", message: 1_700_000_000 }),
      pingMessage(1_700_000_000),
    );
    assert.equal(
      jsonEncoder.encodeReply({ type: "confirm_subscription", identifier: ID }),
      confirmMessage(ID),
    );
    assert.equal(jsonEncoder.encodeReply({ type: "reject_subscription", identifier: ID }), rejectMessage(ID));
    for (const reconnect of [true, false]) {
      assert.equal(
        jsonEncoder.encodeReply({ type: "disconnect", reason: "server_restart", reconnect }),
        disconnectMessage("server_restart", reconnect),
      );
    }
    assert.equal(jsonEncoder.encodeReply({ type: "disconnect" }), disconnectMessage("", false));
  });
  it("broadcasts embed the payload text verbatim, with and without a type", () => {
    for (const data of ['{"a": 1}', "hello", "", "null", "[1, 2]", "3.50"]) {
      const dataJson = publicationDataJson(data);
      assert.equal(jsonEncoder.encodeBroadcast(ID, dataJson), broadcastMessage(ID, dataJson));
      assert.equal(
        jsonEncoder.encodeBroadcast(ID, dataJson, { type: "presence" }),
        broadcastMessage(ID, dataJson, "presence"),
      );
    }
    assert.equal(jsonEncoder.encodeBroadcast("x", '{"a": 1}'), '{"identifier":"x","message":{"a": 1}}');
  });
  it("a stream position follows the message, empty parts omitted", () => {
    assert.equal(
      jsonEncoder.encodeBroadcast("x", "1", { type: "t", stream_id: "s", epoch: "e", offset: 5 }),
      '{"type":"t","identifier":"x","message":1,"stream_id":"s","epoch":"e","offset":5}',
    );
    assert.equal(
      jsonEncoder.encodeBroadcast("x", "1", { stream_id: "s", epoch: "", offset: 0 }),
      '{"identifier":"x","message":1,"stream_id":"s"}',
    );
    assert.equal(broadcastMessage("x", "1", undefined, {}), broadcastMessage("x", "1"));
  });
  it("replies in anycable-go's Reply field order", () => {
    assert.equal(
      replyJson({
        restored_ids: ["a"],
        restored: true,
        sid: "s",
        offset: 3,
        epoch: "e",
        stream_id: "st",
        reconnect: true,
        reason: "r",
        presence: { id: "p" },
        message: { m: 1 },
        identifier: "i",
        type: "welcome",
      }),
      '{"type":"welcome","identifier":"i","message":{"m":1},"presence":{"id":"p"},"reason":"r","reconnect":true,' +
        '"stream_id":"st","epoch":"e","offset":3,"sid":"s","restored":true,"restored_ids":["a"]}',
    );
  });
  it("message is kept when falsy but not null", () => {
    assert.equal(replyJson({ identifier: "i", message: 0 }), '{"identifier":"i","message":0}');
    assert.equal(replyJson({ identifier: "i", message: "" }), '{"identifier":"i","message":""}');
    assert.equal(replyJson({ identifier: "i", message: null }), '{"identifier":"i"}');
  });
});

describe("JSON encoder: decode", () => {
  it("is decodeCommand for text frames", () => {
    for (const frame of [
      '{"command":"message","identifier":"x","data":"{\\"a\\":1}"}',
      "null",
      '{"command":"ping","extra":[1]}',
      "[]",
      '{"command":1}',
      "{",
    ]) {
      assert.deepEqual(jsonEncoder.decode(frame), decodeCommand(frame));
    }
  });
  it("reads a binary frame's bytes as JSON text, like anycable-go (the frame kind is ignored)", () => {
    const r = jsonEncoder.decode(new TextEncoder().encode('{"command":"subscribe","identifier":"x"}'));
    assert.deepEqual(r, { ok: true, command: { command: "subscribe", identifier: "x" } });
    assert.equal(
      jsonEncoder.decode(new Uint8Array([0x82, 0xa1, 0x61])).ok,
      false,
      "msgpack bytes are not JSON",
    );
  });
  it("carries history and presence, dropping zero values and nulls", () => {
    assert.deepEqual(
      decodeCommand(
        '{"command":"history","identifier":"x","history":{"since":0,"streams":{"a":{"epoch":"e","offset":3},"b":null}}}',
      ),
      {
        ok: true,
        command: {
          command: "history",
          identifier: "x",
          history: { streams: { a: { epoch: "e", offset: 3 }, b: { epoch: "", offset: 0 } } },
        },
      },
    );
    assert.deepEqual(decodeCommand('{"command":"subscribe","identifier":"x","history":null}'), {
      ok: true,
      command: { command: "subscribe", identifier: "x" },
    });
    assert.deepEqual(decodeCommand('{"command":"subscribe","identifier":"x","history":{"streams":{}}}'), {
      ok: true,
      command: { command: "subscribe", identifier: "x" },
    });
    assert.deepEqual(decodeCommand('{"command":"history","history":{"since":-5}}'), {
      ok: true,
      command: { command: "history", identifier: "", history: { since: -5 } },
    });
    assert.deepEqual(decodeCommand('{"command":"join","presence":{"id":"u","info":"x","type":null}}'), {
      ok: true,
      command: { command: "join", identifier: "", presence: { id: "u", info: "x" } },
    });
  });
});

describe("stream names are plain keys", () => {
  it('a stream called "__proto__" is an own entry (JSON)', () => {
    const r = decodeCommand(
      '{"command":"history","history":{"streams":{"__proto__":{"epoch":"e","offset":1}}}}',
    );
    assert.ok(r.ok);
    const streams = r.command.history?.streams ?? {};
    assert.ok(Object.hasOwn(streams, "__proto__"));
    assert.deepEqual(Object.entries(streams), [["__proto__", { epoch: "e", offset: 1 }]]);
    assert.equal(Object.getPrototypeOf(streams), Object.prototype);
  });
});

describe("JSON encoder: transmissions", () => {
  it("go out unchanged, even when they are not JSON", () => {
    for (const t of ['{"identifier":"x","message":{"a": 1}}', "not json", ""]) {
      assert.equal(jsonEncoder.encodeTransmission(t), t);
    }
  });
  it("replyFromJson keeps the known fields with their types", () => {
    assert.deepEqual(
      replyFromJson('{"type":"welcome","sid":"s","restored":false,"identifier":null,"x":1,"message":[1]}'),
      { type: "welcome", sid: "s", restored: false, message: [1] },
    );
    assert.equal(replyFromJson('{"sid":1}'), "sid must be a string");
    assert.equal(replyFromJson('{"presence":{"id":2}}'), "presence.id must be a string");
  });
});
