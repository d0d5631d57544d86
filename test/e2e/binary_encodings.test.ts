// The binary Action Cable sub-protocols (msgpack, protobuf; v1 and ext) end to end, per runtime
// (Bun, Deno and the compiled binary): real @anycable/core clients with client-side encoders
// built on other libraries than the server's (test/support/anycable_encoders.ts) through the
// @grpc/grpc-js backend; one stream shared by clients of all six sub-protocols; and bad input on
// the wire (wrong frame kinds, malformed msgpack / protobuf, oversized frames, odd offers).

import { afterAll, beforeAll, describe, it } from "bun:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import WS from "ws";
import {
  clientPack,
  clientUnpack,
  MsgpackEncoder,
  ProtobufEncoder,
  ProtobufEncoderV2,
} from "../support/anycable_encoders.ts";
import { type CommandReq, type GrpcBackend, Status, startGrpcBackend } from "../support/grpc_backend.ts";
import { freePort } from "../support/ports.ts";
import { metric, publish } from "../support/publish.ts";
import { maskedTextFrame, rawUpgrade } from "../support/raw_ws.ts";
import { e2eRuntimes, type ServerProcess, startServer } from "../support/server.ts";
import { waitFor } from "../support/wait.ts";

const runtimes = e2eRuntimes(["bun", "deno", "binary"]);

const JSON_PROTOCOLS = ["actioncable-v1-json", "actioncable-v1-ext-json"] as const;
const BINARY_PROTOCOLS = [
  "actioncable-v1-msgpack",
  "actioncable-v1-ext-msgpack",
  "actioncable-v1-protobuf",
  "actioncable-v1-ext-protobuf",
] as const;
const ALL_PROTOCOLS = [...JSON_PROTOCOLS, ...BINARY_PROTOCOLS] as const;
type Protocol = (typeof ALL_PROTOCOLS)[number];
type BinaryProtocol = (typeof BINARY_PROTOCOLS)[number];

/** The client encoder @anycable/core is given for a binary sub-protocol. */
function clientEncoder(protocol: BinaryProtocol): MsgpackEncoder | ProtobufEncoder {
  if (protocol.endsWith("msgpack")) return new MsgpackEncoder();
  return protocol === "actioncable-v1-protobuf" ? new ProtobufEncoder() : new ProtobufEncoderV2();
}

/** Short label: "msgpack", "ext-protobuf", ... */
const short = (p: string) => p.replace("actioncable-v1-", "");

type Msg = Record<string, unknown>;
type Frame = string | Uint8Array;

interface Codec {
  binary: boolean;
  encode(msg: object): Frame;
  decode(frame: Frame): object | undefined;
}

const JSON_CODEC: Codec = {
  binary: false,
  encode: (msg) => JSON.stringify(msg),
  decode(frame) {
    if (typeof frame !== "string") return undefined;
    try {
      const v: unknown = JSON.parse(frame);
      return typeof v === "object" && v !== null ? v : undefined;
    } catch {
      return undefined;
    }
  },
};

function codecFor(protocol: Protocol): Codec {
  if (protocol.endsWith("json")) return JSON_CODEC;
  const enc = clientEncoder(protocol as BinaryProtocol);
  return { binary: true, encode: (msg) => enc.encode(msg), decode: (frame) => enc.decode(frame) };
}

/** A raw `ws` client speaking one sub-protocol's format, recording the kind of every frame. */
interface WireClient {
  ws: WS;
  /** The sub-protocol the server selected. */
  protocol: string;
  codec: Codec;
  /** Decoded frames not yet taken by next(). */
  messages: Msg[];
  /** The kind of every frame received, in order. */
  kinds: Array<"binary" | "text">;
  /** Frames the codec could not decode (a server speaking the wrong format). */
  undecodable: Frame[];
  closeCode?: number;
  send(msg: object): void;
  sendRaw(data: Frame): void;
  next(match: (m: Msg) => boolean, what: string, timeoutMs?: number): Promise<Msg>;
  waitClosed(timeoutMs?: number): Promise<number>;
  close(): void;
}

/** Connects offering `offered` and decodes frames as `format` (the sub-protocol expected). */
function wire(url: string, format: Protocol, offered: string | string[] = format): Promise<WireClient> {
  return new Promise((resolve, reject) => {
    const ws = new WS(url, offered);
    ws.binaryType = "arraybuffer";
    const codec = codecFor(format);
    const c: WireClient = {
      ws,
      protocol: "",
      codec,
      messages: [],
      kinds: [],
      undecodable: [],
      send: (msg) => ws.send(codec.encode(msg)),
      sendRaw: (data) => ws.send(data),
      async next(match, what, timeoutMs = 10_000) {
        return waitFor(
          () => {
            const i = c.messages.findIndex(match);
            return i < 0 ? undefined : c.messages.splice(i, 1)[0];
          },
          `${what} (${short(format)}); got ${JSON.stringify(c.messages)}`,
          timeoutMs,
          5,
        );
      },
      waitClosed: (timeoutMs = 10_000) => waitFor(() => c.closeCode, "socket close", timeoutMs, 5),
      close: () => ws.close(),
    };
    ws.on("message", (data: ArrayBuffer | Buffer, isBinary: boolean) => {
      const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data);
      c.kinds.push(isBinary ? "binary" : "text");
      const frame: Frame = isBinary ? bytes : Buffer.from(bytes).toString("utf8");
      const decoded = codec.decode(frame);
      if (decoded === undefined) c.undecodable.push(frame);
      else c.messages.push(decoded as Msg);
    });
    ws.on("close", (code) => {
      c.closeCode = code;
    });
    ws.on("open", () => {
      c.protocol = ws.protocol;
      resolve(c);
    });
    ws.on("error", reject);
    ws.on("unexpected-response", (_req, res) => reject(new Error(`unexpected response ${res.statusCode}`)));
  });
}

/** Connected and welcomed: returns the client and its welcome. */
async function welcomed(url: string, protocol: Protocol): Promise<{ c: WireClient; welcome: Msg }> {
  const c = await wire(url, protocol);
  assert.equal(c.protocol, protocol);
  const welcome = await c.next((m) => m.type === "welcome", "welcome");
  return { c, welcome };
}

const pubsubId = (stream: string) => JSON.stringify({ channel: "$pubsub", stream_name: stream });

/** A broadcast (not a confirmation or a ping) to the subscription `identifier`. */
const fromStream = (identifier: string) => (m: Msg) => m.identifier === identifier && m.message !== undefined;

async function subscribe(c: WireClient, identifier: string): Promise<void> {
  c.send({ command: "subscribe", identifier });
  await c.next(
    (m) => m.identifier === identifier && m.type === "confirm_subscription",
    `confirm ${identifier}`,
  );
}

/** The frames a server sent on a raw socket (unmasked; only whole frames). */
function serverFrames(buf: Buffer): Array<{ opcode: number; payload: Buffer }> {
  const out: Array<{ opcode: number; payload: Buffer }> = [];
  let off = 0;
  while (off + 2 <= buf.length) {
    const opcode = buf[off]! & 0x0f;
    let len = buf[off + 1]! & 0x7f;
    let p = off + 2;
    if (len === 126) {
      if (p + 2 > buf.length) break;
      len = buf.readUInt16BE(p);
      p += 2;
    } else if (len === 127) {
      if (p + 8 > buf.length) break;
      len = Number(buf.readBigUInt64BE(p));
      p += 8;
    }
    if (p + len > buf.length) break;
    out.push({ opcode, payload: buf.subarray(p, p + len) });
    off = p + len;
  }
  return out;
}

/** A payload with the JSON value kinds msgpack carries differently (ints, floats, nesting, UTF-8). */
const PAYLOAD = {
  text: "héllo wörld ✓",
  int: 42,
  negative: -7,
  big: 2 ** 40,
  float: 1.5,
  yes: true,
  no: false,
  nothing: null,
  list: [1, "two", { three: 3 }],
  nested: { deep: { er: ["x"] } },
  empty: {},
};

for (const runtime of runtimes) {
  describe(`[${runtime}] binary sub-protocols through gRPC RPC (@anycable/core)`, () => {
    let backend: GrpcBackend;
    let server: ServerProcess;

    beforeAll(async () => {
      backend = await startGrpcBackend();
      const port = await freePort();
      server = await startServer(runtime, {
        port,
        args: [`--rpc_host=${backend.address}`, "--broadcast_adapter=http", `--http_broadcast_port=${port}`],
      });
      backend.broadcastUrl = `${server.url}/_broadcast`;
    });
    afterAll(async () => {
      await server?.stop();
      await backend?.stop();
    });

    for (const protocol of BINARY_PROTOCOLS) {
      it(`${short(protocol)}: welcome, RPC subscribe, RPC echo transmission, object broadcast`, async () => {
        backend.reset();
        // Like an Action Cable app, the backend's welcome carries the session id it was given.
        backend.onConnect = (req, md) => {
          const user = new URL(req.env.url).searchParams.get("user") ?? "anon";
          return {
            status: Status.SUCCESS,
            identifiers: JSON.stringify({ user }),
            transmissions: [JSON.stringify({ type: "welcome", sid: md.sid })],
          };
        };
        const label = short(protocol);
        const user = `u-${label}`;
        const room = `r-${label}`;
        // Records what came over the wire beside what @anycable/core makes of it.
        const kinds: boolean[] = [];
        let negotiated = "";
        class RecordingWS extends WS {
          constructor(address: string, protocols?: string | string[]) {
            super(address, protocols);
            this.on("open", () => {
              negotiated = this.protocol;
            });
            this.on("message", (_data, isBinary: boolean) => kinds.push(isBinary));
          }
        }
        const { createCable } = await import("@anycable/core");
        const cable = createCable(`${server.wsUrl}?user=${user}`, {
          protocol,
          encoder: clientEncoder(protocol),
          websocketImplementation: RecordingWS,
          logLevel: "error",
          maxReconnectAttempts: 0,
        });
        try {
          await cable.connect();
          assert.equal(cable.state, "connected");
          assert.equal(negotiated, protocol);
          const [connectCall] = backend.callsOf("Connect");
          assert.ok(connectCall?.metadata.sid, "Connect got a sid");
          // action_cable.Message (v1 protobuf) has no sid field: only there does it not arrive.
          const sessionId = (cable as unknown as { sessionId?: string }).sessionId;
          if (protocol === "actioncable-v1-protobuf") assert.equal(sessionId, undefined);
          else assert.equal(sessionId, connectCall.metadata.sid);

          const channel = cable.subscribeTo("ChatChannel", { room });
          const got: unknown[] = [];
          channel.on("message", (msg: unknown) => {
            got.push(msg);
          });
          await channel.ensureSubscribed();
          const identifier = JSON.stringify({ channel: "ChatChannel", room });
          const [sub] = backend.callsOf("Command", "subscribe");
          assert.ok(sub, "subscribe went through RPC");
          assert.equal((sub.request as CommandReq).identifier, identifier);
          assert.equal((sub.request as CommandReq).connection_identifiers, JSON.stringify({ user }));

          await channel.perform("echo", { text: `hi ${label}` });
          await waitFor(() => got.length >= 1, "echo transmission");
          assert.deepEqual(got[0], { echo: `hi ${label}` });
          const [perform] = backend.callsOf("Command", "message");
          assert.ok(perform, "perform went through RPC");
          const req = perform.request as CommandReq;
          assert.equal(req.identifier, identifier);
          assert.deepEqual(JSON.parse(req.data), { text: `hi ${label}`, action: "echo" });

          const res = await publish(`${server.url}/_broadcast`, {
            stream: `chat_${room}`,
            data: JSON.stringify({ ...PAYLOAD, protocol }),
          });
          assert.equal(res.status, 201);
          await waitFor(() => got.length >= 2, "HTTP broadcast");
          assert.deepEqual(got[1], { ...PAYLOAD, protocol });
          assert.equal(got.length, 2);
          // welcome, confirm, transmission, broadcast (and any pings): every frame binary
          assert.ok(kinds.length >= 4, `frames: ${kinds.length}`);
          assert.ok(
            kinds.every((b) => b),
            "every server frame is binary",
          );
        } finally {
          cable.disconnect();
        }
      });
    }
  });

  describe(`[${runtime}] binary sub-protocols on the wire (--public --norpc)`, () => {
    let server: ServerProcess;
    let broadcastUrl: string;
    let metricsUrl: string;
    const broadcast = async (stream: string, data: unknown, meta?: Record<string, unknown>) => {
      const res = await publish(broadcastUrl, {
        stream,
        data: JSON.stringify(data),
        ...(meta ? { meta } : {}),
      });
      assert.equal(res.status, 201);
    };
    const failedClientMsgs = () => metric(metricsUrl, "failed_client_msg_total");

    // Healthy clients of three formats on one stream: bad input elsewhere must not reach them.
    const HEALTHY = pubsubId("healthy");
    const healthy: WireClient[] = [];
    let seq = 0;
    async function othersUnaffected(): Promise<void> {
      const n = ++seq;
      await broadcast("healthy", { n });
      for (const h of healthy) {
        assert.deepEqual((await h.next(fromStream(HEALTHY), "healthy broadcast")).message, { n });
        assert.equal(h.closeCode, undefined);
      }
      assert.equal((await fetch(`${server.url}/health`)).status, 200);
    }

    /**
     * After a bad frame the client's input is ignored (anycable-go ends its read loop) while its
     * socket stays open for output: the failure is counted once, a valid subscribe sent after it
     * is not answered, and broadcasts of the stream it subscribed to before still arrive.
     */
    async function expectInputStopped(bad: WireClient, subscribed: string, before: number): Promise<void> {
      await waitFor(async () => (await failedClientMsgs()) === before + 1, "failed_client_msg_total + 1");
      const ignored = pubsubId(`ignored-${++seq}`);
      bad.send({ command: "subscribe", identifier: ignored });
      await broadcast(`ignored-${seq}`, "must not arrive");
      await broadcast(subscribed, { still: "served" });
      const got = await bad.next(
        (m) => m.identifier === ignored || fromStream(pubsubId(subscribed))(m),
        "broadcast after the bad frame",
      );
      assert.equal(got.identifier, pubsubId(subscribed));
      assert.deepEqual(got.message, { still: "served" });
      assert.ok(!bad.messages.some((m) => m.identifier === ignored), "the later subscribe was not processed");
      assert.equal(bad.closeCode, undefined, "the socket stays open");
      assert.equal(await failedClientMsgs(), before + 1, "later frames are not decoded (nor counted)");
    }

    beforeAll(async () => {
      server = await startServer(runtime, {
        args: [
          "--public",
          "--norpc",
          "--secret=binary-e2e",
          "--broadcast_adapter=http",
          "--metrics_http=/metrics",
          "--max_message_size=1024",
        ],
      });
      broadcastUrl = `${server.url}/_broadcast`;
      metricsUrl = `${server.url}/metrics`;
      for (const p of [
        "actioncable-v1-json",
        "actioncable-v1-msgpack",
        "actioncable-v1-ext-protobuf",
      ] as const) {
        const { c } = await welcomed(server.wsUrl, p);
        await subscribe(c, HEALTHY);
        healthy.push(c);
      }
    });
    afterAll(async () => {
      for (const h of healthy) h.close();
      await server?.stop();
    });

    it("one stream, six sub-protocols: each client gets one broadcast exactly once, in its format", async () => {
      const ID = pubsubId("mixed");
      const clients = await Promise.all(ALL_PROTOCOLS.map((p) => welcomed(server.wsUrl, p)));
      try {
        for (const { c } of clients) await subscribe(c, ID);
        await broadcast("mixed", PAYLOAD);
        await broadcast("mixed", "end");
        for (const { c } of clients) {
          assert.deepEqual((await c.next(fromStream(ID), "broadcast")).message, PAYLOAD);
          assert.equal((await c.next(fromStream(ID), "end")).message, "end");
          // deliveries to one socket are ordered: a duplicate would have come before "end"
          assert.deepEqual(c.messages.filter(fromStream(ID)), []);
          assert.deepEqual(c.undecodable, []);
          const kind = c.codec.binary ? "binary" : "text";
          assert.ok(
            c.kinds.every((k) => k === kind),
            `${c.protocol}: only ${kind} frames, got ${c.kinds}`,
          );
        }
      } finally {
        for (const { c } of clients) c.close();
      }
    });

    it("meta.exclude_socket skips exactly that client, whatever its sub-protocol", async () => {
      const ID = pubsubId("excl");
      const clients = await Promise.all(ALL_PROTOCOLS.map((p) => welcomed(server.wsUrl, p)));
      try {
        for (const { c } of clients) await subscribe(c, ID);
        // Every welcome but v1 protobuf's carries the sid (action_cable.Message has no such field).
        for (const { c, welcome } of clients) {
          if (c.protocol === "actioncable-v1-protobuf") assert.equal(welcome.sid, undefined);
          else assert.match(String(welcome.sid), /^[\w-]{21}$/);
        }
        const withSid = clients.filter(({ welcome }) => typeof welcome.sid === "string");
        assert.equal(withSid.length, 5);
        for (const { c: target, welcome } of withSid) {
          const label = short(target.protocol);
          await broadcast("excl", { skip: label }, { exclude_socket: welcome.sid });
          await broadcast("excl", { after: label });
          for (const { c } of clients) {
            if (c !== target) {
              assert.deepEqual((await c.next(fromStream(ID), `skip ${label}`)).message, { skip: label });
            }
            // the target's next message is the following broadcast: it never got the excluded one
            assert.deepEqual((await c.next(fromStream(ID), `after ${label}`)).message, { after: label });
          }
        }
        for (const { c } of clients) assert.deepEqual(c.messages.filter(fromStream(ID)), []);
      } finally {
        for (const { c } of clients) c.close();
      }
    });

    it("JSON sent in a binary frame on a json session is served (anycable-go ignores the frame kind)", async () => {
      const { c } = await welcomed(server.wsUrl, "actioncable-v1-json");
      try {
        const id = pubsubId("json-in-binary");
        c.sendRaw(Buffer.from(JSON.stringify({ command: "subscribe", identifier: id })));
        await c.next((m) => m.identifier === id && m.type === "confirm_subscription", "confirm");
      } finally {
        c.close();
      }
    });

    it("a binary frame on a json session is refused and counted; that client's input stops", async () => {
      const before = await failedClientMsgs();
      const { c } = await welcomed(server.wsUrl, "actioncable-v1-json");
      try {
        await subscribe(c, pubsubId("bad-json"));
        // a client with the wrong encoder: a msgpack subscribe sent to a JSON session
        c.sendRaw(clientPack({ command: "subscribe", identifier: pubsubId("bad-json-2") }));
        await expectInputStopped(c, "bad-json", before);
        await othersUnaffected();
      } finally {
        c.close();
      }
    });

    it("a text frame on a msgpack session is refused and counted; that client's input stops", async () => {
      const before = await failedClientMsgs();
      const { c } = await welcomed(server.wsUrl, "actioncable-v1-msgpack");
      try {
        await subscribe(c, pubsubId("bad-text"));
        c.sendRaw(JSON.stringify({ command: "subscribe", identifier: pubsubId("bad-text-2") }));
        await expectInputStopped(c, "bad-text", before);
        await othersUnaffected();
      } finally {
        c.close();
      }
    });

    it("truncated msgpack is refused and counted; that client's input stops", async () => {
      const before = await failedClientMsgs();
      const { c } = await welcomed(server.wsUrl, "actioncable-v1-ext-msgpack");
      try {
        await subscribe(c, pubsubId("bad-trunc"));
        const full = clientPack({ command: "subscribe", identifier: pubsubId("bad-trunc-2") });
        c.sendRaw(full.subarray(0, full.length - 5));
        await expectInputStopped(c, "bad-trunc", before);
        await othersUnaffected();
      } finally {
        c.close();
      }
    });

    it("msgpack that is not a map is refused and counted; that client's input stops", async () => {
      const before = await failedClientMsgs();
      const { c } = await welcomed(server.wsUrl, "actioncable-v1-msgpack");
      try {
        await subscribe(c, pubsubId("bad-scalar"));
        c.sendRaw(clientPack("subscribe"));
        await expectInputStopped(c, "bad-scalar", before);
        await othersUnaffected();
      } finally {
        c.close();
      }
    });

    for (const protocol of ["actioncable-v1-protobuf", "actioncable-v1-ext-protobuf"] as const) {
      it(`${short(protocol)}: unknown fields are skipped (proto3), the command is served`, async () => {
        const before = await failedClientMsgs();
        const { c } = await welcomed(server.wsUrl, protocol);
        try {
          const stream = `unknown-${short(protocol)}`;
          const ID = pubsubId(stream);
          const valid = c.codec.encode({ command: "subscribe", identifier: ID }) as Uint8Array;
          const extra = Buffer.from("extra field");
          // field 15 length-delimited, field 14 varint, field 13 fixed32, after the known ones
          const frame = Buffer.concat([
            valid,
            Buffer.from([(15 << 3) | 2, extra.length]),
            extra,
            Buffer.from([(14 << 3) | 0, 0x96, 0x01, (13 << 3) | 5, 1, 2, 3, 4]),
          ]);
          c.sendRaw(frame);
          await c.next((m) => m.identifier === ID && m.type === "confirm_subscription", "confirm");
          await broadcast(stream, { served: true });
          assert.deepEqual((await c.next(fromStream(ID), "broadcast")).message, { served: true });
          assert.equal(await failedClientMsgs(), before, "nothing counted as failed");
          await othersUnaffected();
        } finally {
          c.close();
        }
      });

      it(`${short(protocol)}: a known field with the wrong wire type is refused and counted; input stops`, async () => {
        const before = await failedClientMsgs();
        const { c } = await welcomed(server.wsUrl, protocol);
        try {
          const stream = `wire-${short(protocol)}`;
          await subscribe(c, pubsubId(stream));
          // command = subscribe (varint), then identifier (field 3, a string) sent as a varint
          c.sendRaw(Buffer.from([(2 << 3) | 0, 1, (3 << 3) | 0, 5]));
          await expectInputStopped(c, stream, before);
          await othersUnaffected();
        } finally {
          c.close();
        }
      });
    }

    for (const protocol of BINARY_PROTOCOLS) {
      it(`${short(protocol)}: a frame over --max_message_size closes that client with 1009`, async () => {
        const { c } = await welcomed(server.wsUrl, protocol);
        try {
          const frame = c.codec.encode({
            command: "message",
            identifier: pubsubId("big"),
            data: JSON.stringify({ action: "x", blob: "x".repeat(2000) }),
          });
          assert.ok(typeof frame !== "string" && frame.byteLength > 1024);
          c.sendRaw(frame);
          assert.equal(await c.waitClosed(), 1009);
          await othersUnaffected();
        } finally {
          c.close();
        }
      });
    }

    it("an unknown sub-protocol offered before a known one: the known one is selected", async () => {
      // with `ws`, which sends the offers comma-separated
      const c = await wire(server.wsUrl, "actioncable-v1-msgpack", ["foo-bar", "actioncable-v1-msgpack"]);
      try {
        assert.equal(c.protocol, "actioncable-v1-msgpack");
        const welcome = await c.next((m) => m.type === "welcome", "msgpack welcome");
        assert.match(String(welcome.sid), /^[\w-]{21}$/);
        await subscribe(c, pubsubId("offer"));
        await broadcast("offer", { via: "msgpack" });
        assert.deepEqual((await c.next(fromStream(pubsubId("offer")), "broadcast")).message, {
          via: "msgpack",
        });
        assert.ok(c.kinds.every((k) => k === "binary"));
        assert.deepEqual(c.undecodable, []);
      } finally {
        c.close();
      }
      // and with the header exactly as `foo-bar, actioncable-v1-msgpack`
      const raw = await rawUpgrade(server.port, "/cable", "foo-bar, actioncable-v1-msgpack");
      try {
        assert.equal(raw.status, 101);
        assert.equal(raw.headers["sec-websocket-protocol"], "actioncable-v1-msgpack");
        const [first] = await waitFor(() => {
          const frames = serverFrames(raw.rest);
          return frames.length > 0 ? frames : undefined;
        }, "first frame");
        assert.equal(first!.opcode, 2, "a binary frame");
        assert.equal((clientUnpack(first!.payload) as Msg).type, "welcome");
      } finally {
        raw.socket.destroy();
      }
    });

    it("only unknown sub-protocols: upgraded with none selected, and the session speaks JSON", async () => {
      const raw = await rawUpgrade(server.port, "/cable", "foo-bar, baz-qux");
      try {
        assert.equal(raw.status, 101);
        assert.equal(raw.headers["sec-websocket-protocol"], undefined);
        const textFrames = () =>
          serverFrames(raw.rest).map((f) => {
            assert.equal(f.opcode, 1, "text frames only");
            return JSON.parse(f.payload.toString()) as Msg;
          });
        const ID = pubsubId("no-protocol");
        const welcome = await waitFor(() => textFrames().find((m) => m.type === "welcome"), "JSON welcome");
        assert.match(String(welcome.sid), /^[\w-]{21}$/);
        raw.socket.write(maskedTextFrame(JSON.stringify({ command: "subscribe", identifier: ID })));
        await waitFor(
          () => textFrames().find((m) => m.identifier === ID && m.type === "confirm_subscription"),
          "JSON confirm",
        );
        await broadcast("no-protocol", { via: "json" });
        const got = await waitFor(() => textFrames().find(fromStream(ID)), "JSON broadcast");
        assert.deepEqual(got, { identifier: ID, message: { via: "json" } });
      } finally {
        raw.socket.destroy();
      }
    });
  });
}
