// Operating the server: flags, limits, TLS, slow clients, shutdown — per runtime.

import { afterEach, describe, it } from "bun:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import WebSocket from "ws";
import { freePort } from "../support/ports.ts";
import { metric, publish, rssOf } from "../support/publish.ts";
import { maskedTextFrame, rawUpgrade } from "../support/raw_ws.ts";
import { commandFor, e2eRuntimes, type ServerProcess, startServer } from "../support/server.ts";
import { waitFor } from "../support/wait.ts";
import { connect } from "../support/ws_client.ts";

const ID = JSON.stringify({ channel: "$pubsub", stream_name: "ops" });
const runtimes = e2eRuntimes(["bun", "deno"]);

function upgradeStatus(url: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, ["actioncable-v1-json"], { headers });
    ws.on("open", () => {
      ws.close();
      resolve(101);
    });
    ws.on("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0));
    ws.on("error", reject);
  });
}

for (const runtime of runtimes) {
  describe(`[${runtime}] operations`, () => {
    let server: ServerProcess | undefined;
    afterEach(async () => {
      await server?.stop("SIGKILL");
      server = undefined;
    });

    it("exits 1 with one line naming a bad flag or value", () => {
      const [cmd, base] = commandFor(runtime);
      for (const [args, name] of [
        [["--no-such-flag"], "no-such-flag"],
        [["--port=abc"], "port"],
        [["--log_level=loud"], "log_level"],
      ] as const) {
        const r = spawnSync(cmd, [...base, ...args], { encoding: "utf8", timeout: 20_000 });
        assert.equal(r.status, 1, `${args} exit status; stderr=${r.stderr}`);
        const lines = `${r.stdout}${r.stderr}`.trim().split("\n");
        assert.equal(lines.length, 1, `one line for ${args}: ${lines.join(" | ")}`);
        assert.ok(lines[0]!.includes(name), `${lines[0]} names ${name}`);
      }
    });

    it("reports a server that dies during start-up at once, with the end of its log", async () => {
      const started = Date.now();
      await assert.rejects(
        startServer(runtime, { args: ["--no-such-flag"] }),
        (err: Error) =>
          /exited during start-up \(code 1\)/.test(err.message) && err.message.includes("no-such-flag"),
      );
      // the health wait gives up after 30 s; a dead process must not be waited on that long
      assert.ok(Date.now() - started < 10_000, `reported after ${Date.now() - started} ms`);
    });

    it("the default broadcast adapters without Redis: gives up after its attempts, exit 1, the last line says why and how to avoid it", async () => {
      // nothing listens on the port; one attempt keeps it short (the default is 5, ~40 s); pub/sub
      // stays local as it is without a Redis URL, so only the `redis` broadcaster talks to Redis
      const dir = mkdtempSync(join(tmpdir(), "acts-noredis-"));
      writeFileSync(join(dir, "anycable.toml"), "[redis]\nmax_reconnect_attempts = 1\n");
      const redisPort = await freePort();
      server = await startServer(runtime, {
        cwd: dir,
        args: ["--norpc", `--redis_url=redis://127.0.0.1:${redisPort}`, "--pubsub=none"],
        noWait: true,
      });
      assert.equal(await server.exited, 1);
      await server.waitForOutput("fatal:"); // the output is complete a little after the exit
      const lines = server.output().trimEnd().split("\n");
      assert.match(lines.at(-2)!, /ERR failed to reconnect to Redis: attempts exceeded error=.*ECONNREFUSED/);
      assert.match(
        lines.at(-1)!,
        new RegExp(
          ` ERR fatal: no Redis at redis://127\\.0\\.0\\.1:${redisPort}; pass --broadcast_adapter=http if you do not use Redis nodeid=\\S+ context=main$`,
        ),
      );
    });

    it("prints the version with -v and a config that loads back unchanged", () => {
      const [cmd, base] = commandFor(runtime);
      const v = execFileSync(cmd, [...base, "-v"], { encoding: "utf8" }).trim();
      assert.match(v, /^\d+\.\d+\.\d+/);
      const dir = mkdtempSync(join(tmpdir(), "acts-"));
      const args = [
        "--port=9123",
        "--path=/a,/b/*",
        "--ping_interval=7",
        "--broadcast_key=k1",
        "--headers=cookie,x-api-token",
      ];
      const printed = execFileSync(cmd, [...base, ...args, "--print-config"], { encoding: "utf8", cwd: dir });
      const file = join(dir, "printed.toml");
      writeFileSync(file, printed);
      const again = execFileSync(cmd, [...base, `--config-path=${file}`, "--print-config"], {
        encoding: "utf8",
        cwd: dir,
      });
      assert.equal(again, printed);
      assert.match(printed, /9123/);
    });

    it("loads an anycable-go style anycable.toml from the working directory", async () => {
      const dir = mkdtempSync(join(tmpdir(), "acts-"));
      const port = await freePort();
      const broadcastPort = await freePort();
      writeFileSync(
        join(dir, "anycable.toml"),
        `public = true\nbroadcast_adapters = ["http"]\n\n[server]\nhost = "127.0.0.1"\nport = ${port}\nhealth_path = "/up"\n\n[rpc]\nimplementation = "none"\n\n[http_broadcast]\nport = ${broadcastPort}\n`,
      );
      const [cmd, base] = commandFor(runtime);
      const proc = (await import("node:child_process")).spawn(cmd, base, { cwd: dir, stdio: "ignore" });
      try {
        await waitFor(
          async () => (await fetch(`http://127.0.0.1:${port}/up`)).status === 200,
          "/up from toml",
        );
        const res = await fetch(`http://127.0.0.1:${broadcastPort}/_broadcast`, {
          method: "POST",
          body: JSON.stringify({ stream: "toml", data: "1" }),
        });
        assert.equal(res.status, 201);
      } finally {
        proc.kill("SIGKILL");
      }
    });

    it("applies the broadcast auth and port rules", async () => {
      // secret only: derived key, main port
      server = await startServer(runtime, {
        args: ["--norpc", "--secret=s3cret", "--broadcast_adapter=http"],
      });
      const { createHmac } = await import("node:crypto");
      const key = createHmac("sha256", "s3cret").update("broadcast-cable").digest("hex");
      assert.equal((await publish(`${server.url}/_broadcast`, { stream: "x", data: "1" })).status, 401);
      assert.equal(
        (await publish(`${server.url}/_broadcast`, { stream: "x", data: "1" }, "wrong")).status,
        401,
      );
      assert.equal((await publish(`${server.url}/_broadcast`, { stream: "x", data: "1" }, key)).status, 201);
      assert.match(server.output(), /_broadcast \(authorization required\)/);
      await server.stop();
      // explicit port wins, explicit key used as is
      const bport = await freePort();
      server = await startServer(runtime, {
        args: [
          "--norpc",
          "--broadcast_key=plainkey",
          `--http_broadcast_port=${bport}`,
          "--broadcast_adapter=http",
        ],
      });
      const url = `http://127.0.0.1:${bport}/_broadcast`;
      assert.equal((await publish(url, { stream: "x", data: "1" }, "plainkey")).status, 201);
      assert.equal(
        (await publish(`${server.url}/_broadcast`, { stream: "x", data: "1" }, "plainkey")).status,
        404,
      );
      await server.stop();
      // public with a secret: stays on the main port, no auth
      server = await startServer(runtime, {
        args: ["--norpc", "--public", "--secret=s", "--broadcast_adapter=http"],
      });
      assert.equal((await publish(`${server.url}/_broadcast`, { stream: "x", data: "1" })).status, 201);
      assert.match(server.output(), /_broadcast \(no authorization\)/);
    });

    it("enforces --max-conn, --allowed_origins and custom --path/--health-path", async () => {
      server = await startServer(runtime, {
        healthPath: "/healthz",
        args: [
          "--public",
          "--norpc",
          `--http_broadcast_port=${await freePort()}`,
          "--max-conn=1",
          "--allowed_origins=*.example.com",
          "--path=/live/{room},/ws/*",
          "--health-path=/healthz",
        ],
      });
      assert.equal((await fetch(`${server.url}/healthz`)).status, 200);
      const origin = { origin: "https://app.example.com" };
      assert.equal(await upgradeStatus(`ws://127.0.0.1:${server.port}/cable`, origin), 404);
      assert.equal(
        await upgradeStatus(`ws://127.0.0.1:${server.port}/live/r1`, { origin: "https://evil.com" }),
        403,
      );
      const first = await connect(`ws://127.0.0.1:${server.port}/live/r1`, "actioncable-v1-json", origin);
      await first.next((m) => m.type === "welcome", "welcome");
      assert.equal(await upgradeStatus(`ws://127.0.0.1:${server.port}/ws/deep/path`, origin), 503);
      first.close();
      await first.waitClosed();
      await waitFor(
        async () => (await upgradeStatus(`ws://127.0.0.1:${server!.port}/ws/deep/path`, origin)) === 101,
        "slot freed",
      );
    });

    it("serves TLS with --ssl_cert/--ssl_key", async () => {
      const dir = mkdtempSync(join(tmpdir(), "acts-tls-"));
      const cert = join(dir, "cert.pem");
      const key = join(dir, "key.pem");
      execFileSync(
        "openssl",
        [
          "req",
          "-x509",
          "-newkey",
          "rsa:2048",
          "-nodes",
          "-keyout",
          key,
          "-out",
          cert,
          "-days",
          "1",
          "-subj",
          "/CN=127.0.0.1",
        ],
        { stdio: "ignore" },
      );
      const port = await freePort();
      server = await startServer(runtime, {
        port,
        noWait: true,
        args: ["--public", "--norpc", `--ssl_cert=${cert}`, `--ssl_key=${key}`],
      });
      await server.waitForOutput("Handle WebSocket connections at https://");
      const ws = new WebSocket(`wss://127.0.0.1:${port}/cable`, ["actioncable-v1-json"], {
        rejectUnauthorized: false,
      });
      const first = await new Promise<string>((resolve, reject) => {
        ws.on("message", (d) => resolve(d.toString()));
        ws.on("error", reject);
      });
      assert.equal(JSON.parse(first).type, "welcome");
      ws.close();
    });

    it("disconnects a client that stops reading as too_slow, keeping memory bounded", async () => {
      server = await startServer(runtime, {
        args: [
          "--public",
          "--norpc",
          "--secret=x",
          "--metrics_http=/metrics",
          "--ws_max_pending_size=262144",
        ],
      });
      const port = server.port;
      // A raw socket that completes the handshake, subscribes, then never reads again.
      const raw = await rawUpgrade(port, "/cable", "actioncable-v1-json");
      raw.socket.write(maskedTextFrame(JSON.stringify({ command: "subscribe", identifier: ID })));
      await waitFor(() => raw.rest.includes("confirm_subscription"), "slow client subscribed");
      raw.socket.pause();
      const healthy = await connect(server.wsUrl);
      await healthy.next((m) => m.type === "welcome", "welcome");
      const rssBefore = await rssOf(server.proc.pid!);
      const chunk = JSON.stringify("y".repeat(256 * 1024));
      let sent = 0;
      await waitFor(
        async () => {
          if (sent < 400) {
            await publish(`${server!.url}/_broadcast`, { stream: "ops", data: chunk });
            sent++;
          }
          return (await metric(`${server!.url}/metrics`, "disconnected_slow_clients_total")) >= 1;
        },
        "slow client disconnected",
        60_000,
        1,
      );
      const rssAfter = await rssOf(server.proc.pid!);
      assert.ok(
        rssAfter - rssBefore < 200 * 1024 * 1024,
        `RSS grew by ${(rssAfter - rssBefore) / 1048576} MiB`,
      );
      healthy.send({ command: "ping" });
      await healthy.next((m) => m.type === "pong", "healthy client unaffected");
      healthy.close();
      raw.socket.destroy();
    });

    it("shuts down gracefully: server_restart to clients, exit 0", async () => {
      server = await startServer(runtime, { args: ["--public", "--norpc"] });
      const c = await connect(server.wsUrl);
      await c.next((m) => m.type === "welcome", "welcome");
      const code = server.stop("SIGTERM");
      assert.deepEqual(await c.next((m) => m.type === "disconnect", "server_restart"), {
        type: "disconnect",
        reason: "server_restart",
        reconnect: true,
      });
      assert.equal(await c.waitClosed(), 1001);
      assert.equal(await code, 0);
      server = undefined;
    });
  });
}

for (const runtime of runtimes) {
  describe(`[${runtime}] operations: pings, logs, shutdown delay`, () => {
    let server: ServerProcess | undefined;
    afterEach(async () => {
      await server?.stop("SIGKILL");
      server = undefined;
    });

    it("sends WebSocket-level pings with --enable_native_pings", async () => {
      server = await startServer(runtime, {
        args: ["--public", "--norpc", "--enable_native_pings", "--ping_interval=1"],
      });
      const ws = new WebSocket(server.wsUrl, ["actioncable-v1-json"]);
      let pings = 0;
      ws.on("ping", () => {
        pings++;
      });
      // Deno pings only an idle connection, so the client stays silent here.
      await waitFor(() => pings >= 1, "a native ping frame", 10_000);
      ws.close();
    });

    it("logs JSON lines with --log_format=json", async () => {
      server = await startServer(runtime, { args: ["--public", "--norpc", "--log_format=json", "--debug"] });
      const lines = server
        .output()
        .trim()
        .split("\n")
        .filter((l) => l.startsWith("{"));
      assert.ok(lines.length >= 3);
      const records = lines.map((l) => JSON.parse(l));
      assert.ok(records.some((r) => /^Starting AnyCable/.test(r.msg) && r.level === "INFO" && r.nodeid));
      assert.ok(records.some((r) => r.level === "DEBUG"));
    });

    it("keeps serving for --shutdown_delay before disconnecting clients", async () => {
      server = await startServer(runtime, { args: ["--public", "--norpc", "--shutdown_delay=1"] });
      const c = await connect(server.wsUrl);
      await c.next((m) => m.type === "welcome", "welcome");
      const started = Date.now();
      const exit = server.stop("SIGTERM");
      await server.waitForOutput("Waiting 1s before shutting down");
      c.send({ command: "ping" });
      await c.next((m) => m.type === "pong", "still served during the delay");
      await c.next((m) => m.type === "disconnect", "server_restart after the delay");
      assert.ok(Date.now() - started >= 900, `disconnected after ${Date.now() - started}ms`);
      assert.equal(await exit, 0);
      server = undefined;
    });
  });
}
