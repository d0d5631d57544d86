// The Pusher wire format: client frames -> node commands, replies and broadcasts -> Pusher events.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { presenceEventJson } from "../../src/broker/presence_json.ts";
import {
  allowsClientEvents,
  channelToIdentifier,
  decodeFrame,
  errorFrame,
  INVALID_COMMAND,
  identifierToChannel,
  newSocketId,
  PUSHER_PROTOCOL,
  pusherEncoder,
  SIGNIN_COMMAND,
  SOCKET_ID_PATTERN,
  subscriptionSucceededData,
  validChannelName,
} from "../../src/protocols/pusher/protocol.ts";
import { protocolInfo } from "../../src/protocols/registry.ts";

const enc = pusherEncoder;
const ID = channelToIdentifier("private-chat");
const json = (f: unknown) => JSON.parse(f as string) as Record<string, unknown>;

describe("pusher protocol: identifiers and names", () => {
  it("channel <-> identifier round trip, foreign identifiers are not channels", () => {
    assert.equal(ID, '{"channel":"$pusher","stream":"private-chat"}');
    assert.equal(identifierToChannel(ID), "private-chat");
    assert.equal(identifierToChannel(channelToIdentifier('we"ird\u2028')), 'we"ird\u2028');
    assert.equal(identifierToChannel('{"channel":"$pubsub","stream_name":"x"}'), undefined);
    assert.equal(identifierToChannel("not json"), undefined);
    assert.equal(identifierToChannel('{"channel":"$pusher","stream":5}'), undefined);
  });

  it("channel names follow Pusher's rule", () => {
    for (const ok of ["a", "private-a_b-c=d@e,f.g;h", "presence-1", "#server-to-user-42", "x".repeat(200)]) {
      assert.ok(validChannelName(ok), ok);
    }
    for (const bad of ["", "a b", "a/b", "é", "#other", "#server-to-user-", "x".repeat(201), "a\u0000"]) {
      assert.ok(!validChannelName(bad), JSON.stringify(bad));
    }
  });

  it("client events: private and presence channels only, never encrypted ones", () => {
    assert.ok(allowsClientEvents("private-a"));
    assert.ok(allowsClientEvents("presence-a"));
    assert.ok(!allowsClientEvents("public"));
    assert.ok(!allowsClientEvents("private-encrypted-a"));
    assert.ok(!allowsClientEvents("#server-to-user-1"));
  });

  it("socket ids are <digits>.<digits> and differ", () => {
    const ids = new Set(Array.from({ length: 1000 }, newSocketId));
    assert.equal(ids.size, 1000);
    for (const id of ids) assert.match(id, SOCKET_ID_PATTERN);
  });

  it("the registry knows the internal protocol, never as a negotiable sub-protocol", () => {
    assert.equal(protocolInfo(PUSHER_PROTOCOL).encoder, pusherEncoder);
    assert.equal(protocolInfo(PUSHER_PROTOCOL).extended, false);
  });
});

describe("pusher protocol: client frames", () => {
  it("ping, pong", () => {
    assert.deepEqual(decodeFrame('{"event":"pusher:ping","data":{}}'), {
      ok: true,
      command: { command: "ping", identifier: "" },
    });
    assert.deepEqual(decodeFrame('{"event":"pusher:pong"}'), {
      ok: true,
      command: { command: "pong", identifier: "" },
    });
  });

  it("subscribe / unsubscribe carry the channel's identifier and the auth data", () => {
    const frame = JSON.stringify({
      event: "pusher:subscribe",
      data: { channel: "presence-a", auth: "k:sig", channel_data: '{"user_id":"1"}' },
    });
    assert.deepEqual(decodeFrame(frame), {
      ok: true,
      command: {
        command: "subscribe",
        identifier: channelToIdentifier("presence-a"),
        data: { channel: "presence-a", auth: "k:sig", channel_data: '{"user_id":"1"}' },
      },
    });
    assert.deepEqual(decodeFrame('{"event":"pusher:unsubscribe","data":{"channel":"x"}}'), {
      ok: true,
      command: { command: "unsubscribe", identifier: channelToIdentifier("x"), data: { channel: "x" } },
    });
    // data as JSON text is accepted too
    const asText = decodeFrame(JSON.stringify({ event: "pusher:subscribe", data: '{"channel":"y"}' }));
    assert.ok(asText.ok && asText.command.command === "subscribe");
  });

  it("client events become whispers with {event, channel, data}", () => {
    assert.deepEqual(decodeFrame('{"event":"client-typing","channel":"private-c","data":{"who":"me"}}'), {
      ok: true,
      command: {
        command: "whisper",
        identifier: channelToIdentifier("private-c"),
        data: { event: "client-typing", channel: "private-c", data: { who: "me" } },
      },
    });
  });

  it("signin", () => {
    assert.deepEqual(decodeFrame('{"event":"pusher:signin","data":{"auth":"a","user_data":"{}"}}'), {
      ok: true,
      command: { command: SIGNIN_COMMAND, identifier: "", data: { auth: "a", user_data: "{}" } },
    });
  });

  it("malformed frames become INVALID_COMMAND with a reason, never a throw", () => {
    const cases = [
      "",
      "{",
      "null",
      "[]",
      "42",
      '"str"',
      "{}",
      '{"event":5}',
      '{"event":"pusher:subscribe"}',
      '{"event":"pusher:subscribe","data":{}}',
      '{"event":"pusher:subscribe","data":{"channel":1}}',
      '{"event":"pusher:subscribe","data":{"channel":"a","auth":5}}',
      '{"event":"pusher:subscribe","data":{"channel":"a","channel_data":{}}}',
      '{"event":"pusher:subscribe","data":"not json"}',
      '{"event":"pusher:signin"}',
      '{"event":"pusher:signin","data":{"auth":[]}}',
      '{"event":"client-x"}',
      '{"event":"client-x","channel":7}',
      '{"event":"pusher:unknown"}',
      '{"event":"whatever"}',
      `{"event":"${"x".repeat(100_000)}"}`,
    ];
    for (const c of cases) {
      const r = decodeFrame(c);
      assert.ok(r.ok, c);
      assert.equal(r.command.command, INVALID_COMMAND, c.slice(0, 80));
      assert.equal(typeof r.command.data, "string");
      assert.ok((r.command.data as string).length < 300);
    }
  });

  it("binary frames are read as UTF-8 text", () => {
    const r = enc.decode(new TextEncoder().encode('{"event":"pusher:ping"}'));
    assert.deepEqual(r, { ok: true, command: { command: "ping", identifier: "" } });
  });
});

describe("pusher protocol: server events", () => {
  it("welcome -> connection_established with socket id and activity timeout 30", () => {
    const f = json(enc.encodeTransmission('{"type":"welcome","sid":"123.456"}'));
    assert.equal(f.event, "pusher:connection_established");
    assert.deepEqual(JSON.parse(f.data as string), { socket_id: "123.456", activity_timeout: 30 });
  });

  it("ping / pong", () => {
    assert.deepEqual(json(enc.encodeReply({ type: "ping", message: 1 })), { event: "pusher:ping", data: {} });
    assert.deepEqual(json(enc.encodeTransmission('{"type":"pong"}')), { event: "pusher:pong", data: {} });
  });

  it("confirm -> subscription_succeeded ('{}' or the presence data), on the channel", () => {
    assert.equal(
      enc.encodeTransmission(JSON.stringify({ type: "confirm_subscription", identifier: ID })),
      '{"event":"pusher_internal:subscription_succeeded","data":"{}","channel":"private-chat"}',
    );
    const members = { count: 1, ids: ["1"], hash: { "1": { name: "A" } } };
    const f = json(
      enc.encodeReply({
        type: "confirm_subscription",
        identifier: channelToIdentifier("presence-x"),
        message: subscriptionSucceededData(members),
      }),
    );
    assert.deepEqual(JSON.parse(f.data as string), { presence: members });
    assert.equal(f.channel, "presence-x");
  });

  it("reject -> pusher:error 4009; disconnect -> 4200 when reconnecting, else 4009", () => {
    assert.deepEqual(json(enc.encodeReply({ type: "reject_subscription", identifier: ID })), {
      event: "pusher:error",
      data: { message: "rejected", code: 4009 },
    });
    assert.deepEqual(
      json(enc.encodeTransmission('{"type":"disconnect","reason":"server_restart","reconnect":true}')),
      {
        event: "pusher:error",
        data: { message: "server_restart", code: 4200 },
      },
    );
    assert.deepEqual(json(enc.encodeReply({ type: "disconnect", reason: "remote", reconnect: false })), {
      event: "pusher:error",
      data: { message: "remote", code: 4009 },
    });
    assert.deepEqual(json(errorFrame("x", null)), {
      event: "pusher:error",
      data: { message: "x", code: null },
    });
  });

  it("a broadcast of {event, data} -> the event on the channel; without an event nothing is sent", () => {
    assert.equal(
      enc.encodeBroadcast(ID, JSON.stringify({ event: "new-message", data: '{"text":"hi"}' })),
      '{"event":"new-message","data":"{\\"text\\":\\"hi\\"}","channel":"private-chat"}',
    );
    assert.equal(enc.encodeBroadcast(ID, '{"text":"hello"}'), null);
    assert.equal(enc.encodeBroadcast(ID, '"just a string"'), null);
    assert.equal(enc.encodeBroadcast(ID, "not json"), undefined);
    assert.equal(enc.encodeBroadcast('{"channel":"$pubsub"}', '{"event":"x"}'), null);
    // a message without data: the whole message is the data (anycable-go)
    assert.deepEqual(json(enc.encodeBroadcast(ID, '{"event":"x","n":1}')), {
      event: "x",
      data: { event: "x", n: 1 },
      channel: "private-chat",
    });
  });

  it("a client event (whisper) keeps its data and a presence user_id", () => {
    const whisper = { event: "client-typing", channel: "presence-c", data: { a: 1 }, user_id: "7" };
    assert.deepEqual(json(enc.encodeBroadcast(channelToIdentifier("presence-c"), JSON.stringify(whisper))), {
      event: "client-typing",
      data: { a: 1 },
      channel: "presence-c",
      user_id: "7",
    });
  });

  it("presence broadcasts -> member_added (with user_info) / member_removed", () => {
    const pid = channelToIdentifier("presence-room");
    const join = json(
      enc.encodeBroadcast(pid, presenceEventJson({ type: "join", id: "42", info: { name: "Lolo" } }), {
        type: "presence",
      }),
    );
    assert.deepEqual(join, {
      event: "pusher_internal:member_added",
      data: '{"user_id":"42","user_info":{"name":"Lolo"}}',
      channel: "presence-room",
    });
    const bare = json(
      enc.encodeBroadcast(pid, presenceEventJson({ type: "join", id: "1" }), { type: "presence" }),
    );
    assert.equal(bare.data, '{"user_id":"1"}');
    const leave = json(
      enc.encodeBroadcast(pid, presenceEventJson({ type: "leave", id: "42" }), { type: "presence" }),
    );
    assert.deepEqual(leave, {
      event: "pusher_internal:member_removed",
      data: '{"user_id":"42"}',
      channel: "presence-room",
    });
    assert.equal(enc.encodeBroadcast(pid, '{"type":"other","id":"1"}', { type: "presence" }), null);
  });

  it("transmissions that are not JSON objects cannot be encoded; unknown ones are skipped", () => {
    assert.equal(enc.encodeTransmission("nope"), undefined);
    assert.equal(enc.encodeTransmission("[1]"), undefined);
    assert.equal(enc.encodeTransmission('{"type":"confirm_subscription","identifier":"x"}'), undefined);
    assert.equal(enc.encodeTransmission('{"identifier":"{}","message":{"a":1}}'), null);
    assert.equal(enc.encodeTransmission(JSON.stringify({ identifier: ID, message: { b: 2 } })), null);
  });
});
