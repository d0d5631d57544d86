// The test-side @anycable/core encoders (test/support/anycable_encoders.ts) against the server's
// encoders, both directions, and driving @anycable/core's own protocol objects with what they
// decode — as createCable({ protocol, encoder }) will in the e2e tests.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ActionCableExtendedProtocol, ActionCableProtocol } from "@anycable/core";
import type { Encoder } from "../../src/protocols/encoder.ts";
import { protocolInfo } from "../../src/protocols/registry.ts";
import { MsgpackEncoder, ProtobufEncoder, ProtobufEncoderV2 } from "../support/anycable_encoders.ts";

type ClientEncoder = MsgpackEncoder | ProtobufEncoder;
type Obj = Record<string, unknown>;

const CASES: Array<[string, () => ClientEncoder]> = [
  ["actioncable-v1-msgpack", () => new MsgpackEncoder()],
  ["actioncable-v1-ext-msgpack", () => new MsgpackEncoder()],
  ["actioncable-v1-protobuf", () => new ProtobufEncoder()],
  ["actioncable-v1-ext-protobuf", () => new ProtobufEncoderV2()],
];

const ID = JSON.stringify({ channel: "ChatChannel", id: 42 });

/** What a WebSocket with binaryType "arraybuffer" hands to core: an ArrayBuffer copy. */
function asArrayBuffer(frame: unknown): ArrayBuffer {
  const b = frame as Uint8Array;
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
}

/** The Cable side @anycable/core's protocols call into. */
function fakeCable() {
  const calls: Array<[string, ...unknown[]]> = [];
  return {
    calls,
    state: "connected",
    send: (msg: unknown) => calls.push(["send", msg]),
    connected: (sid?: string) => calls.push(["connected", sid]),
    restored: (ids: string[]) => calls.push(["restored", ids]),
    closed: (err?: { reason?: string }) => calls.push(["closed", err?.reason]),
    disconnected: (err?: { reason?: string }) => calls.push(["disconnected", err?.reason]),
    // Core calls keepalive() without a timestamp for every other message: only pings are noted.
    keepalive: (ts?: number) => ts !== undefined && calls.push(["keepalive", ts]),
    setSessionId: (sid: string) => calls.push(["setSessionId", sid]),
    notify: (event: string, id?: string) => calls.push(["notify", event, id]),
  };
}

for (const [protocol, make] of CASES) {
  const server: Encoder = protocolInfo(protocol).encoder;
  const ext = protocol.includes("-ext-");

  describe(`test-side ${make().constructor.name} <-> server ${protocol}`, () => {
    const client = make();
    const fromServer = (frame: unknown) => client.decode(asArrayBuffer(frame)) as Obj;

    it("client commands as @anycable/core builds them decode on the server", () => {
      const sent: Obj[] = [
        { command: "subscribe", identifier: ID },
        { command: "message", identifier: ID, data: JSON.stringify({ action: "speak", text: "hi" }) },
        { command: "unsubscribe", identifier: ID },
        { command: "pong" },
        {
          identifier: ID,
          command: "history",
          history: { since: 1700000000, streams: { s: { epoch: "e", offset: 3 } } },
        },
      ];
      for (const msg of sent) {
        const r = server.decode(client.encode(msg));
        assert.ok(r.ok, JSON.stringify(r));
        assert.deepEqual(r.command, { identifier: "", ...msg });
      }
    });
    it("decodes server frames from an ArrayBuffer or a Uint8Array, and nothing from text or garbage", () => {
      const frame = server.encodeReply({ type: "welcome", sid: "s1" }) as Uint8Array;
      assert.equal(fromServer(frame).type, "welcome");
      assert.equal((client.decode(frame) as Obj).type, "welcome");
      assert.equal(client.decode('{"type":"welcome"}' as unknown as Uint8Array), undefined);
      assert.equal(client.decode(new Uint8Array([0xc1, 0xff, 0xff])), undefined);
    });
    it("a broadcast reaches @anycable/core's protocol as {identifier, message}", () => {
      const p = ext
        ? new ActionCableExtendedProtocol({ historyTimestamp: 1700000000 })
        : new ActionCableProtocol();
      const cable = fakeCable();
      p.attached(cable as never);
      const meta = { stream_id: "chat_42", epoch: "x123", offset: 32 };
      const got = p.receive(fromServer(server.encodeBroadcast(ID, '{"text":"hello","user_id":43}', meta)));
      const want: Obj = { identifier: ID, message: { text: "hello", user_id: 43 } };
      if (ext) want.meta = { stream: "chat_42", epoch: "x123", offset: 32 };
      assert.deepEqual(got, want);
      if (ext) {
        // ...and the position it tracked goes back to the server in the next history request.
        const history = (
          p as ActionCableExtendedProtocol & { historyRequestFor(id: string): Obj }
        ).historyRequestFor(ID);
        const r = server.decode(client.encode({ identifier: ID, command: "history", history }));
        assert.deepEqual(r, {
          ok: true,
          command: {
            command: "history",
            identifier: ID,
            history: { since: 1700000000, streams: { chat_42: { epoch: "x123", offset: 32 } } },
          },
        });
      }
    });
    it("welcome, ping and disconnect drive the cable", () => {
      const p = ext
        ? new ActionCableExtendedProtocol({ historyTimestamp: false })
        : new ActionCableProtocol();
      const cable = fakeCable();
      p.attached(cable as never);
      p.receive(fromServer(server.encodeReply({ type: "welcome", sid: "sid-9" })));
      p.receive(fromServer(server.encodeReply({ type: "ping", message: 1_700_000_000_123 })));
      p.receive(
        fromServer(
          server.encodeTransmission('{"type":"disconnect","reason":"unauthorized","reconnect":false}'),
        ),
      );
      p.receive(
        fromServer(server.encodeReply({ type: "disconnect", reason: "server_restart", reconnect: true })),
      );
      // The extended protocol also forgets the session on a disconnect.
      const forget = ext ? [["setSessionId", ""]] : [];
      // v1 protobuf's Message has no sid field: that client never learns the session id.
      const sid = protocol === "actioncable-v1-protobuf" ? [] : [["setSessionId", "sid-9"]];
      const welcome = [...sid, ["connected", ext ? "sid-9" : undefined]];
      assert.deepEqual(cable.calls, [
        ...welcome,
        ["keepalive", 1_700_000_000_123],
        ...forget,
        ["closed", "unauthorized"],
        ...forget,
        ["disconnected", "server_restart"],
      ]);
    });
    if (ext) {
      it("a restored welcome makes the client ask for history of the restored channels", () => {
        const p = new ActionCableExtendedProtocol({ historyTimestamp: 1700000000 });
        const cable = fakeCable();
        p.attached(cable as never);
        p.receive(
          fromServer(server.encodeReply({ type: "welcome", sid: "s2", restored: true, restored_ids: [ID] })),
        );
        assert.deepEqual(cable.calls.at(-1), ["restored", [ID]]);
        const send = cable.calls.find((c) => c[0] === "send")!;
        assert.deepEqual(server.decode(client.encode(send[1] as Obj)), {
          ok: true,
          command: { command: "history", identifier: ID, history: { since: 1700000000 } },
        });
      });
    }
  });
}

describe("test-side protobuf encoders behave like @anycable/protobuf-encoder", () => {
  it("decode yields every field with its default (v1 Message / ext Reply)", () => {
    const v1 = new ProtobufEncoder().decode(
      protocolInfo("actioncable-v1-protobuf").encoder.encodeReply({ type: "ping", message: 5 }) as Uint8Array,
    );
    assert.deepEqual(v1, {
      type: "ping",
      command: "unknown_command",
      identifier: "",
      data: "",
      message: 5,
      reason: "",
      reconnect: false,
    });
    const v2 = new ProtobufEncoderV2().decode(
      protocolInfo("actioncable-v1-ext-protobuf").encoder.encodeBroadcast("x", '"m"') as Uint8Array,
    );
    assert.deepEqual(v2, {
      type: "no_type",
      identifier: "x",
      message: "m",
      reason: "",
      reconnect: false,
      stream_id: "",
      epoch: "",
      offset: 0,
      sid: "",
      restored: false,
      restored_ids: [],
    });
  });
  it("encode refuses what the schema cannot carry, like the upstream verify()", () => {
    const e = new ProtobufEncoder();
    assert.throws(
      () => e.encode({ command: "whisper", identifier: "x", data: { a: 1 } }),
      /data: string expected/,
    );
    assert.throws(() => e.encode({ command: "fly", identifier: "x" }), /unknown name/);
    assert.throws(() => e.encode({ command: "subscribe", identifier: 1 }), /identifier: string expected/);
  });
  it("encode turns names into enum numbers and msgpack-encodes message", () => {
    const frame = new ProtobufEncoder().encode({
      type: "confirm_history",
      command: "whisper",
      message: { a: 1 },
    });
    assert.deepEqual([...frame.subarray(0, 4)], [0x08, 0x06, 0x10, 0x06]);
  });
});
