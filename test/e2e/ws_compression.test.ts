// --enable_ws_compression: permessage-deflate, checked at the frame level by a raw client (the
// `ws` package is replaced by Bun's own WebSocket under `bun test`, which hides the frames):
// negotiated without context takeover both ways, a compressed (RSV1) client message understood,
// a compressible broadcast sent compressed at a fraction of its size; a standard client (`ws`)
// negotiates it too; without the flag nothing is negotiated.
import { afterAll, beforeAll, describe, it } from "bun:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { randomBytes } from "node:crypto";
import { type Socket, connect as tcpConnect } from "node:net";
import { constants, deflateRawSync, inflateRawSync } from "node:zlib";
import { freePort } from "../support/ports.ts";
import { publish } from "../support/publish.ts";
import { e2eRuntimes, type ServerProcess, startServer } from "../support/server.ts";
import { waitFor } from "../support/wait.ts";
import { connect } from "../support/ws_client.ts";

const runtimes = e2eRuntimes(["bun", "deno"]);
const args = ["--public", "--norpc", "--broadcast_adapter=http"];
const TAIL = Buffer.from([0, 0, 0xff, 0xff]);

interface ServerFrame {
  rsv1: boolean;
  opcode: number;
  payload: Buffer;
}

/** A WebSocket client on a bare TCP socket offering permessage-deflate: every frame as it came. */
async function rawClient(url: string) {
  const { hostname, port, pathname } = new URL(url);
  const socket: Socket = tcpConnect(Number(port), hostname);
  await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject));
  socket.write(
    `GET ${pathname} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${randomBytes(16).toString("base64")}\r\nSec-WebSocket-Version: 13\r\n` +
      "Sec-WebSocket-Protocol: actioncable-v1-json\r\n" +
      "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n",
  );
  let buf = Buffer.alloc(0);
  let headers = "";
  const frames: ServerFrame[] = [];
  socket.on("data", (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    if (!headers) {
      const end = buf.indexOf("\r\n\r\n");
      if (end < 0) return;
      headers = buf.subarray(0, end).toString();
      buf = buf.subarray(end + 4);
    }
    for (;;) {
      if (buf.length < 2) return;
      let len = buf[1]! & 0x7f;
      let at = 2;
      if (len === 126) {
        if (buf.length < 4) return;
        len = buf.readUInt16BE(2);
        at = 4;
      }
      if (buf.length < at + len) return;
      frames.push({
        rsv1: (buf[0]! & 0x40) !== 0,
        opcode: buf[0]! & 0x0f,
        payload: buf.subarray(at, at + len),
      });
      buf = buf.subarray(at + len);
    }
  });
  await waitFor(() => headers, "the handshake");
  const text = (f: ServerFrame) =>
    (f.rsv1
      ? inflateRawSync(Buffer.concat([f.payload, TAIL]), { finishFlush: constants.Z_SYNC_FLUSH })
      : f.payload
    ).toString();
  return {
    headers,
    frames,
    text,
    /** A masked text frame, deflated (RSV1) when `compress`. */
    send(message: unknown, compress: boolean) {
      let payload = Buffer.from(JSON.stringify(message));
      if (compress) {
        const d = deflateRawSync(payload, { finishFlush: constants.Z_SYNC_FLUSH });
        payload = d.subarray(0, d.length - 4);
      }
      const head =
        payload.length < 126
          ? Buffer.from([0x81 | (compress ? 0x40 : 0), 0x80 | payload.length])
          : Buffer.from([
              0x81 | (compress ? 0x40 : 0),
              0x80 | 126,
              payload.length >> 8,
              payload.length & 0xff,
            ]);
      const mask = randomBytes(4);
      socket.write(Buffer.concat([head, mask, Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!))]));
    },
    async next(match: (m: Record<string, unknown>, f: ServerFrame) => boolean, what: string) {
      return waitFor(
        () => frames.find((f) => f.opcode === 1 && match(JSON.parse(text(f)) as Record<string, unknown>, f)),
        what,
      );
    },
    close: () => socket.destroy(),
  };
}

for (const runtime of runtimes) {
  describe(`[${runtime}] WebSocket compression`, () => {
    let server: ServerProcess;
    let plain: ServerProcess;
    beforeAll(async () => {
      const port = await freePort();
      [server, plain] = await Promise.all([
        startServer(runtime, {
          port,
          args: [...args, "--enable_ws_compression", `--http_broadcast_port=${port}`],
        }),
        startServer(runtime, { args }),
      ]);
    });
    afterAll(async () => {
      await Promise.all([server?.stop(), plain?.stop()]);
    });

    it("negotiates permessage-deflate without context takeover and compresses both ways", async () => {
      const c = await rawClient(server.wsUrl);
      const ext = /sec-websocket-extensions: *([^\r\n]*)/i.exec(c.headers)?.[1] ?? "";
      assert.match(ext, /^permessage-deflate/);
      assert.match(ext, /server_no_context_takeover/);
      assert.match(ext, /client_no_context_takeover/);
      await c.next((m) => m.type === "welcome", "welcome");
      const stream = `room-${"z".repeat(1024)}`;
      const identifier = JSON.stringify({ channel: "$pubsub", stream_name: stream });
      c.send({ command: "subscribe", identifier }, true);
      await c.next((m) => m.type === "confirm_subscription", "the confirm of a compressed subscribe");
      const text = "all work and no play makes jack a dull boy ".repeat(250);
      const res = await publish(`${server.url}/_broadcast`, { stream, data: JSON.stringify({ text }) });
      assert.equal(res.status, 201);
      const f = await c.next(
        (m) => (m.message as { text?: string } | undefined)?.text === text,
        "the broadcast",
      );
      assert.equal(f.rsv1, true, "sent compressed");
      assert.ok(
        f.payload.length < text.length / 10,
        `${f.payload.length} bytes for a ${text.length}-byte message`,
      );
      c.close();
    });

    it("negotiates it with a standard client (ws), and nothing without the flag", async () => {
      const c = await connect(server.wsUrl);
      assert.match(c.ws.extensions, /permessage-deflate/);
      await c.next((m) => m.type === "welcome", "welcome");
      c.close();
      const p = await rawClient(plain.wsUrl);
      assert.doesNotMatch(p.headers, /sec-websocket-extensions/i);
      await p.next((m) => m.type === "welcome", "welcome");
      p.close();
    });
  });
}
