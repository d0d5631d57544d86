// No single client can stall or crash a node, per runtime: request bodies are capped, stalled
// bodies are cut, slowness is judged over time.
import { afterEach, describe, it } from "bun:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { type Socket, connect as tcpConnect } from "node:net";
import { freePort } from "../support/ports.ts";
import { metric, publish } from "../support/publish.ts";
import { maskedTextFrame, rawUpgrade } from "../support/raw_ws.ts";
import { e2eRuntimes, type ServerProcess, startServer } from "../support/server.ts";
import { waitFor } from "../support/wait.ts";
import { connect } from "../support/ws_client.ts";

const runtimes = e2eRuntimes(["bun", "deno"]);

interface RawResponse {
  /** 0: the server closed the connection before an answer could be read. */
  status: number;
  head: string;
}

/**
 * Sends a request head over TCP and collects the response head; the body is written by `feed`. A
 * server that answers and closes while the client is still sending may reset the connection, and
 * the reset can destroy the answer before it is read: that resolves with status 0.
 */
function rawRequest(
  port: number,
  head: string,
  feed: (socket: Socket, answered: () => boolean) => Promise<void> | void,
): Promise<RawResponse & { socket: Socket }> {
  return new Promise((resolve) => {
    const socket = tcpConnect(port, "127.0.0.1");
    let buf = "";
    let answered = false;
    socket.on("error", () => {});
    socket.on("close", () => {
      if (answered) return;
      answered = true;
      resolve({ status: 0, head: buf, socket });
    });
    socket.on("data", (d) => {
      buf += d.toString("latin1");
      const end = buf.indexOf("\r\n\r\n");
      if (answered || end < 0) return;
      answered = true;
      resolve({ status: Number(buf.split(" ")[1]), head: buf.slice(0, end), socket });
    });
    socket.on("connect", () => {
      socket.write(head);
      Promise.resolve(feed(socket, () => answered)).catch(() => {});
    });
  });
}

/** Writes `total` bytes in 64 KiB chunks (chunked encoding), stopping once the server answered. */
async function chunked(
  socket: Socket,
  answered: () => boolean,
  total: number,
  progress: { sent: number },
): Promise<void> {
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  const frame = Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from("\r\n")]);
  while (progress.sent < total && !answered() && !socket.destroyed) {
    progress.sent += chunk.length;
    if (!socket.write(frame)) await new Promise((r) => socket.once("drain", r));
  }
}

for (const runtime of runtimes) {
  describe(`[${runtime}] hardening: request bodies`, () => {
    let server: ServerProcess | undefined;
    afterEach(async () => {
      await server?.stop("SIGKILL");
      server = undefined;
    });

    const CAP = 1024 * 1024;
    const start = async () => {
      const port = await freePort();
      server = await startServer(runtime, {
        port,
        args: ["--public", "--norpc", `--max_body_size=${CAP}`, `--http_broadcast_port=${port}`],
      });
      return server;
    };

    for (const path of ["/_broadcast", "/api/publish"]) {
      it(`answers 413 to a declared body over --max_body_size on ${path} without waiting for it`, async () => {
        const s = await start();
        // 100 MiB announced, a few bytes sent: the answer must not wait for the rest
        const res = await rawRequest(
          s.port,
          `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${100 * 1024 * 1024}\r\n\r\n{"stream":`,
          () => {},
        );
        assert.equal(res.status, 413, res.head);
        res.socket.destroy();
      });

      it(`stops reading a chunked body past --max_body_size on ${path}`, async () => {
        const s = await start();
        const progress = { sent: 0 };
        const total = 256 * 1024 * 1024;
        const res = await rawRequest(
          s.port,
          `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`,
          (socket, answered) => chunked(socket, answered, total, progress),
        );
        assert.ok(res.status === 413 || res.status === 0, res.head);
        // the server could only refuse after more than the cap arrived, and refused long before the end
        assert.ok(progress.sent > CAP, `only ${progress.sent} bytes sent`);
        assert.ok(progress.sent < total / 4, `answered after ${progress.sent} of ${total} bytes`);
        res.socket.destroy();
        // the server still takes publications within the cap
        const ok = await fetch(`${s.url}${path}`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ stream: "s", data: "x".repeat(1000) }),
        });
        assert.equal(ok.status, 201);
      });
    }
  });
}

for (const runtime of runtimes) {
  describe(`[${runtime}] hardening: stalled requests`, () => {
    let server: ServerProcess | undefined;
    afterEach(async () => {
      await server?.stop("SIGKILL");
      server = undefined;
    });

    // Deadlines (seconds): the request head (anycable-go's ReadHeaderTimeout is 5 s; Bun's server
    // has a fixed 10 s before the first request), the whole request, an idle keep-alive connection.
    const limits =
      runtime === "deno" ? { head: 5, request: 10, idle: 10 } : { head: 10, request: 10, idle: 10 };
    const MARGIN = 6;

    it("closes slowloris connections (idle, half-sent head, body or upgrade) within the deadlines", async () => {
      const port = await freePort();
      server = await startServer(runtime, {
        port,
        args: ["--public", "--norpc", `--http_broadcast_port=${port}`],
      });
      const kinds: Record<string, { limit: number; start(s: Socket): void }> = {
        idle: { limit: limits.head, start() {} },
        halfHead: { limit: limits.head, start: (s) => s.write("GET /health HTTP/1.1\r\nHost: x\r\n") },
        trickledHead: {
          limit: limits.head,
          start: (s) => {
            s.write("GET /health HTTP/1.1\r\n");
            const t = setInterval(() => (s.destroyed ? clearInterval(t) : s.write("X-A: b\r\n")), 500);
          },
        },
        halfUpgrade: {
          limit: limits.head,
          start: (s) =>
            s.write("GET /cable HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"),
        },
        halfBody: {
          limit: limits.request,
          start: (s) => s.write("POST /_broadcast HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"),
        },
        trickledBody: {
          limit: limits.request,
          start: (s) => {
            s.write("POST /_broadcast HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n");
            const t = setInterval(() => (s.destroyed ? clearInterval(t) : s.write(" ")), 500);
          },
        },
        keepAliveIdle: {
          limit: limits.idle,
          start: (s) => s.write("GET /health HTTP/1.1\r\nHost: x\r\n\r\n"),
        },
      };
      const t0 = Date.now();
      const closed = await Promise.all(
        Object.entries(kinds).flatMap(([kind, k]) =>
          Array.from(
            { length: 5 },
            () =>
              new Promise<{ kind: string; limit: number; after: number }>((resolve) => {
                const s = tcpConnect(port, "127.0.0.1", () => k.start(s));
                s.on("error", () => {});
                s.on("data", () => {});
                s.on("close", () => resolve({ kind, limit: k.limit, after: (Date.now() - t0) / 1000 }));
              }),
          ),
        ),
      );
      const late = closed.filter((c) => c.after > c.limit + MARGIN);
      assert.deepEqual(late, [], "closed too late");
      assert.equal((await fetch(`${server.url}/health`)).status, 200);
    });

    it("cuts bodies that stop arriving and logs the burst once", async () => {
      const port = await freePort();
      server = await startServer(runtime, {
        port,
        args: ["--public", "--norpc", `--http_broadcast_port=${port}`],
      });
      const s = server;
      const stalled = await Promise.all(
        Array.from({ length: 6 }, () =>
          rawRequest(
            s.port,
            `POST /_broadcast HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"stream":`,
            () => {},
          ),
        ),
      );
      // every stalled request is ended by the server's deadline (answered or closed)
      for (const r of stalled) r.socket.destroy();
      await s.waitForOutput("failed to read request body", 30_000);
      const ok = await fetch(`${s.url}/_broadcast`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ stream: "s", data: "1" }),
      });
      assert.equal(ok.status, 201);
      await s.waitForOutput("request bodies are read again");
      const errors = s
        .output()
        .split("\n")
        .filter((l) => l.includes("failed to read request body"));
      assert.equal(errors.length, 1, errors.join("\n"));
      assert.match(s.output(), /request bodies are read again .*failed_reads=6/);
    });
  });
}

/** Open descriptors of a process (Linux). */
const fdsOf = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;

for (const runtime of runtimes) {
  describe(`[${runtime}] hardening: slow clients`, () => {
    let server: ServerProcess | undefined;
    afterEach(async () => {
      await server?.stop("SIGKILL");
      server = undefined;
    });

    it("frees the connections of clients dropped as too_slow within --ws_write_timeout", async () => {
      const port = await freePort();
      server = await startServer(runtime, {
        port,
        args: [
          "--public",
          "--norpc",
          "--metrics_http=/metrics",
          "--ws_max_pending_size=262144",
          "--ws_write_timeout=2",
          `--http_broadcast_port=${port}`,
        ],
      });
      const s = server;
      const pid = s.proc.pid!;
      const ID = JSON.stringify({ channel: "$pubsub", stream_name: "slow" });
      const healthy = await connect(s.wsUrl);
      await healthy.next((m) => m.type === "welcome", "welcome");
      const idleFds = fdsOf(pid);
      const N = 20;
      const slow = await Promise.all(
        Array.from({ length: N }, async () => {
          const raw = await rawUpgrade(s.port, "/cable", "actioncable-v1-json");
          raw.socket.write(maskedTextFrame(JSON.stringify({ command: "subscribe", identifier: ID })));
          await waitFor(() => raw.rest.includes("confirm_subscription"), "slow client subscribed");
          raw.socket.pause();
          return raw;
        }),
      );
      assert.ok(fdsOf(pid) >= idleFds + N);
      const chunk = JSON.stringify("y".repeat(256 * 1024));
      let sent = 0;
      await waitFor(
        async () => {
          if (sent < 400) {
            await publish(`${s.url}/_broadcast`, { stream: "slow", data: chunk });
            sent++;
          }
          return (await metric(`${s.url}/metrics`, "disconnected_slow_clients_total")) >= N;
        },
        "every non-reader dropped as too slow",
        60_000,
        1,
      );
      // dropped within the write timeout: their descriptors come back although none of them reads
      const droppedAt = Date.now();
      await waitFor(() => fdsOf(pid) <= idleFds + 2, `descriptors back near ${idleFds}`, 10_000, 50);
      const after = (Date.now() - droppedAt) / 1000;
      assert.ok(after <= 2 + 2, `descriptors freed ${after}s after the drop`);
      healthy.send({ command: "ping" });
      await healthy.next((m) => m.type === "pong", "the healthy client is served");
      healthy.close();
      for (const raw of slow) raw.socket.destroy();
    });

    it("does not count clients that close normally while broadcasts flow as slow", async () => {
      const port = await freePort();
      server = await startServer(runtime, {
        port,
        args: ["--public", "--norpc", "--metrics_http=/metrics", `--http_broadcast_port=${port}`],
      });
      const s = server;
      const ID = JSON.stringify({ channel: "$pubsub", stream_name: "closing" });
      const clients = await Promise.all(
        Array.from({ length: 20 }, async () => {
          const c = await connect(s.wsUrl);
          c.send({ command: "subscribe", identifier: ID });
          await c.next((m) => m.type === "confirm_subscription", "subscribed");
          return c;
        }),
      );
      let stop = false;
      const pump = (async () => {
        for (let n = 0; !stop; n++)
          await publish(`${s.url}/_broadcast`, { stream: "closing", data: `{"n":${n}}` });
      })();
      // each client closes (close handshake) while publications keep arriving for it
      for (const c of clients) {
        c.close();
        await c.waitClosed();
      }
      await waitFor(async () => (await metric(`${s.url}/metrics`, "clients_num")) === 0, "every close seen");
      stop = true;
      await pump;
      assert.equal(await metric(`${s.url}/metrics`, "disconnected_slow_clients_total"), 0);
    });

    it("keeps a reader through a burst above --ws_max_pending_size; drops one that does not read", async () => {
      const port = await freePort();
      server = await startServer(runtime, {
        port,
        args: [
          "--public",
          "--norpc",
          "--metrics_http=/metrics",
          "--ws_max_pending_size=65536",
          `--http_broadcast_port=${port}`,
        ],
      });
      const s = server;
      const ID = JSON.stringify({ channel: "$pubsub", stream_name: "burst" });
      const reader = await connect(s.wsUrl);
      await reader.next((m) => m.type === "welcome", "welcome");
      reader.send({ command: "subscribe", identifier: ID });
      await reader.next((m) => m.type === "confirm_subscription", "reader subscribed");
      const idle = await rawUpgrade(s.port, "/cable", "actioncable-v1-json");
      idle.socket.write(maskedTextFrame(JSON.stringify({ command: "subscribe", identifier: ID })));
      await waitFor(() => idle.rest.includes("confirm_subscription"), "non-reader subscribed");
      idle.socket.pause();

      // one batch: ~2 MB for each subscriber, produced in one turn of the server's event loop
      const N = 20_000;
      const batch = Array.from({ length: N }, (_, n) => ({
        stream: "burst",
        data: JSON.stringify({ n, pad: "x".repeat(60) }),
      }));
      assert.equal((await publish(`${s.url}/_broadcast`, batch)).status, 201);
      await waitFor(
        () => reader.raw.filter((r) => r.includes('"message"')).length >= N || reader.closeCode,
        "the whole batch at the reader",
        30_000,
      );
      assert.equal(reader.closeCode, undefined, "the reader was disconnected");
      assert.equal(reader.raw.filter((r) => r.includes('"message"')).length, N);
      assert.ok(!reader.raw.some((r) => r.includes("too_slow")));

      // the non-reader is let go once its backlog stops shrinking (more data until it cannot hide
      // in the kernel's buffers)
      const chunk = JSON.stringify("y".repeat(256 * 1024));
      let sent = 0;
      await waitFor(
        async () => {
          if (sent < 200) {
            await publish(`${s.url}/_broadcast`, { stream: "burst", data: chunk });
            sent++;
          }
          return (await metric(`${s.url}/metrics`, "disconnected_slow_clients_total")) >= 1;
        },
        "the non-reader dropped as too slow",
        60_000,
        1,
      );
      assert.equal(await metric(`${s.url}/metrics`, "disconnected_slow_clients_total"), 1);
      reader.send({ command: "ping" });
      await reader.next((m) => m.type === "pong", "the reader is still served");
      reader.close();
      idle.socket.destroy();
    });
  });
}

/** The code of the close frame among the server frames in `buf` (undefined: none). */
function closeCodeIn(buf: Buffer): number | undefined {
  let at = 0;
  while (at + 2 <= buf.length) {
    const opcode = buf[at]! & 0x0f;
    let len = buf[at + 1]! & 0x7f;
    let offset = at + 2;
    if (len === 126) {
      len = buf.readUInt16BE(at + 2);
      offset = at + 4;
    } else if (len === 127) {
      len = Number(buf.readBigUInt64BE(at + 2));
      offset = at + 10;
    }
    if (opcode === 8) return len >= 2 ? buf.readUInt16BE(offset) : 1005;
    at = offset + len;
  }
  return undefined;
}

for (const runtime of runtimes) {
  describe(`[${runtime}] hardening: malformed frames`, () => {
    let server: ServerProcess | undefined;
    afterEach(async () => {
      await server?.stop("SIGKILL");
      server = undefined;
    });

    it("closes a text frame that is not UTF-8 with 1007 and keeps serving others", async () => {
      server = await startServer(runtime, { args: ["--public", "--norpc"] });
      const other = await connect(server.wsUrl);
      await other.next((m) => m.type === "welcome", "welcome");
      const bad = await rawUpgrade(server.port, "/cable", "actioncable-v1-json");
      await waitFor(() => bad.rest.includes("welcome"), "welcome");
      const closed = new Promise<void>((resolve) => bad.socket.on("close", () => resolve()));
      // a masked text frame whose payload is 0xff 0xfe
      const mask = Buffer.from([1, 2, 3, 4]);
      const payload = Buffer.from([0xff, 0xfe].map((b, i) => b ^ mask[i]!));
      bad.socket.write(Buffer.concat([Buffer.from([0x81, 0x80 | 2]), mask, payload]));
      await closed;
      assert.equal(closeCodeIn(bad.rest), 1007);
      other.send({ command: "ping" });
      await other.next((m) => m.type === "pong", "the other client is served");
      other.close();
    });
  });
}

for (const runtime of runtimes) {
  describe(`[${runtime}] hardening: descriptors run out`, () => {
    let server: ServerProcess | undefined;
    afterEach(async () => {
      await server?.stop("SIGKILL");
      server = undefined;
    });

    it("keeps running when accepts fail with EMFILE, and serves again once descriptors free up", async () => {
      server = await startServer(runtime, { args: ["--public", "--norpc"] });
      const s = server;
      const pid = s.proc.pid!;
      const before = await connect(s.wsUrl);
      await before.next((m) => m.type === "welcome", "welcome");
      // this process may hold 256 descriptors from now on; the test's own limit is untouched
      execFileSync("prlimit", ["--pid", String(pid), "--nofile=256:256"]);
      const flood: Socket[] = [];
      for (let i = 0; i < 400; i++) {
        const c = tcpConnect(s.port, "127.0.0.1");
        c.on("error", () => {});
        flood.push(c);
      }
      await waitFor(() => fdsOf(pid) >= 250, "the server out of descriptors", 10_000, 50);
      // a connection made now cannot be accepted; the server must not die of it
      const during = fetch(`${s.url}/health`, { signal: AbortSignal.timeout(20_000) }).then(
        (r) => r.status,
        () => 0,
      );
      await waitFor(() => s.proc.exitCode === null && fdsOf(pid) >= 250, "still running, still full");
      for (const c of flood) c.destroy();
      // Deno's listener finds out that its accept loop is gone and listens again (the connections
      // waiting in the backlog meanwhile are reset: clients reconnect)
      if (runtime === "deno")
        await s.waitForOutput(
          new RegExp(`accepting connections again addr=127\\.0\\.0\\.1:${s.port}`),
          30_000,
        );
      await waitFor(
        async () => (await fetch(`${s.url}/health`, { signal: AbortSignal.timeout(2_000) })).status === 200,
        "health again",
        20_000,
        200,
      );
      assert.equal(s.proc.exitCode, null, s.output());
      assert.ok([0, 200].includes(await during));
      const after = await connect(s.wsUrl);
      await after.next((m) => m.type === "welcome", "a new client welcomed");
      before.send({ command: "ping" });
      await before.next((m) => m.type === "pong", "the client from before still served");
      if (runtime === "deno") {
        const lines = s.output().split("\n");
        // one line per burst for the listener the flood hit (another listener, probed while
        // descriptors were out, may have its own)
        const main = (l: string) => l.includes(`addr=127.0.0.1:${s.port}`);
        assert.equal(lines.filter((l) => l.includes("too many open files") && main(l)).length, 1, s.output());
        assert.equal(lines.filter((l) => l.includes("accepting connections again") && main(l)).length, 1);
      }
      before.close();
      after.close();
    });
  });
}
