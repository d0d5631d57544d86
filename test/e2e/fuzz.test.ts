// Protocol fuzzing against a live server, per runtime, in bounded time: random and mutated
// Action Cable frames (JSON, msgpack, protobuf), JWTs, signed stream names, broadcast bodies and
// raw HTTP requests. After every batch a healthy client still gets a fresh broadcast, /health
// answers, and the server's RSS and open descriptors stay under bounds. A seeded generator makes a
// failure reproducible: the seed is in every assertion message (FUZZ_SEED=<n> reruns it).
import { afterAll, beforeAll, describe, it } from "bun:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { readdirSync } from "node:fs";
import { connect as tcpConnect } from "node:net";
import WS from "ws";
import { MsgpackEncoder, ProtobufEncoderV2 } from "../support/anycable_encoders.ts";
import { prng } from "../support/prng.ts";
import { publish, rssOf } from "../support/publish.ts";
import { e2eRuntimes, type ServerProcess, startServer } from "../support/server.ts";
import { nowSec, rawJwt, signStream } from "../support/signing.ts";
import { waitFor } from "../support/wait.ts";

const SECRET = "fuzz-secret";
const BROADCAST_KEY = createHmac("sha256", SECRET).update("broadcast-cable").digest("hex");
const SEED = Number(process.env.FUZZ_SEED ?? Date.now() % 1_000_000);
const runtimes = e2eRuntimes(["bun", "deno"]);
/** Bounds well above a healthy server's figures (Bun ~50 MiB idle, Deno ~100 MiB) yet far below a leak's. */
const RSS_LIMIT = { bun: 400, deno: 800, binary: 400 } as const;
const FD_SLACK = 150;

const token = (identifiers: unknown, exp = nowSec() + 600) =>
  rawJwt({ alg: "HS256", typ: "JWT" }, { ext: JSON.stringify(identifiers), exp }, SECRET);

function fdCount(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return 0;
  }
}

class Fuzzer {
  constructor(readonly random: () => number) {}
  int(n: number): number {
    return Math.floor(this.random() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
  bytes(n: number): Uint8Array {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
  /** Flips, truncates, duplicates or splices bytes of a valid frame. */
  mutate(frame: Uint8Array): Uint8Array {
    const out = Uint8Array.from(frame);
    switch (this.int(5)) {
      case 0:
        for (let i = 0; i < 1 + this.int(4); i++)
          if (out.length) out[this.int(out.length)] ^= 1 << this.int(8);
        return out;
      case 1:
        return out.subarray(0, this.int(out.length + 1));
      case 2:
        return new Uint8Array([...out, ...out.subarray(this.int(out.length + 1))]);
      case 3: {
        const at = this.int(out.length + 1);
        return new Uint8Array([...out.subarray(0, at), ...this.bytes(1 + this.int(8)), ...out.subarray(at)]);
      }
      default:
        return this.bytes(this.int(64));
    }
  }
  value(depth = 0): unknown {
    switch (this.int(depth > 3 ? 5 : 8)) {
      case 0:
        return null;
      case 1:
        return this.int(2) === 0;
      case 2:
        return this.pick([0, -1, 2 ** 53, 1e308, -0.5, 42]);
      case 3:
        return this.pick(["", "x", "\u0000", "\ud800", "🙂", "a".repeat(2000), "$pubsub", "{"]);
      case 4:
        return this.pick([
          "subscribe",
          "message",
          "unsubscribe",
          "whisper",
          "history",
          "pong",
          "ping",
          "join",
        ]);
      case 5:
        return Array.from({ length: this.int(4) }, () => this.value(depth + 1));
      default: {
        const o: Record<string, unknown> = {};
        for (let i = 0; i < this.int(5); i++) {
          o[this.pick(["command", "identifier", "data", "history", "presence", "__proto__", "since", "x"])] =
            this.value(depth + 1);
        }
        return o;
      }
    }
  }
  /** A command-shaped object with random field values. */
  command(): Record<string, unknown> {
    const identifier = this.pick([
      JSON.stringify({ channel: "$pubsub", stream_name: `fz-${this.int(20)}` }),
      JSON.stringify({ channel: "$pubsub", signed_stream_name: this.signedName() }),
      JSON.stringify({ channel: "ChatChannel" }),
      JSON.stringify(this.value()),
      `${JSON.stringify(this.value())}}`,
    ]);
    const cmd: Record<string, unknown> = {
      command: this.pick(["subscribe", "unsubscribe", "message", "whisper", "history", "pong", "bogus"]),
      identifier,
    };
    if (this.int(2)) cmd.data = this.int(2) ? JSON.stringify({ action: "x", v: this.value() }) : this.value();
    if (this.int(4) === 0) cmd.history = this.value();
    return cmd;
  }
  signedName(): string {
    const good = signStream(`fz-signed-${this.int(5)}`, SECRET);
    if (this.int(3) === 0) return good;
    const b = new TextEncoder().encode(good);
    return new TextDecoder().decode(this.mutate(b));
  }
  jwt(): string {
    const ids = { user: `u${this.int(100)}` };
    switch (this.int(7)) {
      case 0:
        return token(ids);
      case 1:
        return token(ids, nowSec() - 100);
      case 2:
        return rawJwt({ alg: "none" }, { ext: JSON.stringify(ids) }, SECRET, "none");
      case 3:
        return rawJwt({ alg: "HS256" }, this.value(), SECRET);
      case 4:
        return "a".repeat(this.int(20_000));
      case 5:
        return new TextDecoder().decode(this.mutate(new TextEncoder().encode(token(ids))));
      default:
        return rawJwt({ alg: this.pick(["HS384", "RS256", "HS256", 7]) }, { ext: this.value() }, SECRET);
    }
  }
}

const msgpack = new MsgpackEncoder();
const protobuf = new ProtobufEncoderV2();

function openWs(url: string, protocol: string, timeoutMs = 5000): Promise<WS | undefined> {
  return new Promise((resolve) => {
    let ws: WS;
    try {
      ws = new WS(url, protocol);
    } catch {
      // the client library refuses what it cannot put on the wire (e.g. a mutated token protocol)
      resolve(undefined);
      return;
    }
    ws.binaryType = "arraybuffer";
    const timer = setTimeout(() => {
      ws.terminate();
      resolve(undefined);
    }, timeoutMs);
    ws.on("open", () => {
      clearTimeout(timer);
      resolve(ws);
    });
    ws.on("error", () => {
      clearTimeout(timer);
      resolve(undefined);
    });
  });
}

for (const runtime of runtimes) {
  describe(`[${runtime}] protocol fuzzing (seed ${SEED})`, () => {
    let server: ServerProcess;
    let healthy: WS;
    const received: string[] = [];
    let idleFds = 0;
    let round = 0;

    beforeAll(async () => {
      server = await startServer(runtime, {
        args: [
          `--secret=${SECRET}`,
          "--norpc",
          "--public_streams",
          "--streams_whisper",
          "--broadcast_adapter=http",
          "--api_port=0",
          "--max_message_size=65536",
          "--metrics_http=/metrics",
        ],
      });
      const ws = await openWs(`${server.wsUrl}?jid=${token({ user: "healthy" })}`, "actioncable-v1-json");
      assert.ok(ws, "healthy client connects");
      healthy = ws;
      healthy.on("message", (d) => received.push(d.toString()));
      healthy.send(
        JSON.stringify({
          command: "subscribe",
          identifier: JSON.stringify({ channel: "$pubsub", stream_name: "healthy" }),
        }),
      );
      await waitFor(() => received.some((m) => m.includes("confirm_subscription")), "healthy subscribed");
      idleFds = fdCount(server.proc.pid!);
    });

    afterAll(async () => {
      healthy?.close();
      await server?.stop();
    });

    /** The server is alive and serving: a fresh broadcast reaches the healthy client, bounds hold. */
    async function assertHealthy(what: string) {
      const marker = `round-${++round}`;
      const res = await publish(
        `${server.url}/_broadcast`,
        { stream: "healthy", data: JSON.stringify({ marker }) },
        BROADCAST_KEY,
      );
      assert.equal(res.status, 201, `${what} (seed ${SEED}): broadcast accepted`);
      await waitFor(
        () => received.some((m) => m.includes(marker)),
        `${what} (seed ${SEED}): broadcast delivered`,
      );
      assert.equal((await fetch(`${server.url}/health`)).status, 200, `${what}: /health`);
      const pid = server.proc.pid!;
      const rssMiB = (await rssOf(pid)) / 1024 / 1024;
      assert.ok(rssMiB < RSS_LIMIT[runtime], `${what} (seed ${SEED}): RSS ${rssMiB.toFixed(0)} MiB`);
      // sockets of a batch are closed by then; the server may still be closing some of its side
      await waitFor(
        () => fdCount(pid) < idleFds + FD_SLACK,
        `${what} (seed ${SEED}): descriptors back near idle`,
      );
      assert.equal(server.proc.exitCode, null, `${what}: server still running`);
    }

    it("survives random and mutated frames in every encoding", async () => {
      const f = new Fuzzer(prng(SEED));
      for (let batch = 0; batch < 8; batch++) {
        const clients = await Promise.all(
          [
            "actioncable-v1-json",
            "actioncable-v1-ext-json",
            "actioncable-v1-ext-msgpack",
            "actioncable-v1-ext-protobuf",
          ]
            .flatMap((p) => [p, p])
            .map((p) =>
              openWs(`${server.wsUrl}?jid=${token({ user: `fz${batch}` })}`, p).then(
                (ws) => [p, ws] as const,
              ),
            ),
        );
        for (const [protocol, ws] of clients) {
          if (!ws) continue;
          for (let i = 0; i < 250; i++) {
            const cmd = f.command();
            let frame: string | Uint8Array;
            try {
              if (protocol.includes("msgpack")) frame = msgpack.encode(cmd as never) as Uint8Array;
              else if (protocol.includes("protobuf")) {
                const data = typeof cmd.data === "string" ? cmd.data : undefined;
                frame = protobuf.encode({ ...cmd, data } as never) as Uint8Array;
              } else frame = JSON.stringify(cmd);
            } catch {
              // the test-side encoders refuse some random values: send random bytes instead
              frame = f.bytes(1 + f.int(40));
            }
            if (f.int(3) === 0)
              frame = f.mutate(typeof frame === "string" ? new TextEncoder().encode(frame) : frame);
            ws.send(f.int(4) === 0 && typeof frame !== "string" ? new TextDecoder().decode(frame) : frame);
          }
        }
        for (const [, ws] of clients) ws?.close();
        await assertHealthy(`frames batch ${batch}`);
      }
    });

    it("survives mutated JWTs and signed stream names", async () => {
      const f = new Fuzzer(prng(SEED + 1));
      for (let batch = 0; batch < 3; batch++) {
        const sockets = await Promise.all(
          Array.from({ length: 60 }, () => {
            const t = f.jwt();
            const url = t.length < 10_000 ? `${server.wsUrl}?jid=${encodeURIComponent(t)}` : server.wsUrl;
            return openWs(url, f.pick(["actioncable-v1-json", `anycable-token.${t.slice(0, 4000)}`]));
          }),
        );
        for (const ws of sockets) {
          ws?.send(
            JSON.stringify({
              command: "subscribe",
              identifier: JSON.stringify({ channel: "$pubsub", signed_stream_name: f.signedName() }),
            }),
          );
          ws?.close();
        }
        await assertHealthy(`tokens batch ${batch}`);
      }
    });

    it("answers random broadcast and API bodies with 201 or 422, never a 5xx", async () => {
      const f = new Fuzzer(prng(SEED + 2));
      const valid = JSON.stringify([{ stream: "fz", data: '{"a":1}', meta: { exclude_socket: "x" } }]);
      for (let batch = 0; batch < 3; batch++) {
        const statuses = await Promise.all(
          Array.from({ length: 150 }, () => {
            const body =
              f.int(2) === 0
                ? new TextDecoder().decode(f.mutate(new TextEncoder().encode(valid)))
                : JSON.stringify(f.value());
            return publish(`${server.url}/_broadcast`, body, BROADCAST_KEY).then((r) => r.status);
          }),
        );
        for (const s of statuses) assert.ok(s === 201 || s === 422, `broadcast status ${s} (seed ${SEED})`);
        await assertHealthy(`bodies batch ${batch}`);
      }
    });

    it("survives malformed HTTP requests and upgrade handshakes", async () => {
      const f = new Fuzzer(prng(SEED + 3));
      const requests = () => {
        const path = f.pick([
          "/cable",
          "/health",
          "/_broadcast",
          "/api/publish",
          "/metrics",
          "/%ff",
          `/${"x".repeat(5000)}`,
        ]);
        const headers = [
          `Host: 127.0.0.1:${server.port}`,
          ...(f.int(2)
            ? [
                "Upgrade: websocket",
                "Connection: Upgrade",
                `Sec-WebSocket-Version: ${f.pick(["13", "8", "x"])}`,
              ]
            : []),
          ...(f.int(2) ? [`Sec-WebSocket-Key: ${f.pick(["dGhlIHNhbXBsZSBub25jZQ==", "", "!!"])}`] : []),
          ...(f.int(2)
            ? [`Sec-WebSocket-Protocol: ${f.pick(["actioncable-v1-json", ",,,", "x".repeat(3000)])}`]
            : []),
          ...(f.int(3) === 0 ? [`Content-Length: ${f.pick(["5", "-1", "99999999", "abc"])}`] : []),
        ];
        const head = `${f.pick(["GET", "POST", "PUT", "OPTIONS", "BREW", "G E T"])} ${path} HTTP/1.1\r\n${headers.join("\r\n")}\r\n\r\n`;
        const bytes = new TextEncoder().encode(head);
        return f.int(4) === 0 ? f.mutate(bytes) : bytes;
      };
      for (let batch = 0; batch < 3; batch++) {
        await Promise.all(
          Array.from(
            { length: 60 },
            () =>
              new Promise<void>((resolve) => {
                const sock = tcpConnect(server.port, "127.0.0.1");
                const done = () => {
                  sock.destroy();
                  resolve();
                };
                sock.on("connect", () => {
                  sock.write(requests());
                  // read whatever comes back, then hang up: the server must not depend on us
                  setTimeout(done, 50);
                });
                sock.on("error", done);
              }),
          ),
        );
        await assertHealthy(`http batch ${batch}`);
      }
    });
  });
}
