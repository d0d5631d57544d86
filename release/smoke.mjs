#!/usr/bin/env node
// Smoke run of one release binary (the release workflow runs it on each binary its runner can
// execute; test/e2e/release_smoke.test.ts runs it on this machine's binary):
//   1. `<binary> -v` prints `<anycable-go version>-ts<version>` (with --version <v>: that version);
//   2. the server starts on a free port from an empty directory and answers GET /health with 200;
//   3. a WebSocket client (Action Cable JSON protocol) is welcomed, subscribes to a public stream,
//      and receives a publication sent to the HTTP broadcast endpoint;
//   4. SIGTERM sends the client `server_restart` and the server exits 0 (not on Windows, where
//      Node can only kill a process outright).
// Usage: node release/smoke.mjs <binary> [--version <v>] [--timeout <ms>]
// Needs a global WebSocket: Node >= 22, or Node 20 with --experimental-websocket; nothing else
// (no npm packages), so it runs on a release runner without an install. One line per step on
// stdout; on failure one line on stderr with the server's output, and exit status 1.
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

function usage(message) {
  console.error(`smoke: ${message}\nusage: node release/smoke.mjs <binary> [--version <v>] [--timeout <ms>]`);
  process.exit(2);
}

const argv = process.argv.slice(2);
let binary;
let version;
let timeoutMs = 30_000;
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  if (a === "--version") version = argv[++i];
  else if (a === "--timeout") timeoutMs = Number(argv[++i]);
  else if (a.startsWith("-")) usage(`unknown option ${a}`);
  else if (binary) usage(`one binary at a time (got ${binary} and ${a})`);
  else binary = resolve(a);
}
if (!binary) usage("no binary given");
if (version !== undefined) version = version.replace(/^v/, "");
if (typeof WebSocket !== "function") {
  usage("no global WebSocket: run with Node >= 22, or node --experimental-websocket");
}

const deadline = Date.now() + timeoutMs;
const remaining = () => Math.max(0, deadline - Date.now());

let server;
let output = "";
const cwd = mkdtempSync(join(tmpdir(), "anycable-ts-smoke-"));

function fail(message) {
  console.error(`smoke FAILED: ${message}`);
  if (output) console.error(`--- server output ---\n${output.trimEnd()}\n---`);
  server?.kill("SIGKILL");
  rmSync(cwd, { recursive: true, force: true });
  process.exit(1);
}

/** Resolves with the value of `check()` once it is truthy, polling every `every` ms. */
async function waitUntil(what, check, every = 50) {
  for (;;) {
    const value = await check();
    if (value) return value;
    if (remaining() === 0) fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, every));
  }
}

function freePort() {
  return new Promise((resolvePort, reject) => {
    const s = createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolvePort(port));
    });
  });
}

// 1. -v
const v = spawnSync(binary, ["-v"], { encoding: "utf8", timeout: remaining(), cwd });
if (v.error) fail(`cannot run ${binary}: ${v.error.message}`);
if (v.status !== 0) fail(`${binary} -v exited with ${v.status}: ${v.stderr}`);
const printed = v.stdout.trim();
// `<anycable-go version it is compatible with>-ts<anycable-ts version>` (src/version.ts)
const shape = /^\d+\.\d+\.\d+-ts(\d+\.\d+\.\d+\S*)$/.exec(printed);
if (!shape) fail(`${binary} -v printed "${printed}", not <anycable-go version>-ts<version>`);
if (version !== undefined && shape[1] !== version) {
  fail(`${binary} -v printed "${printed}": version ${shape[1]}, expected ${version}`);
}
console.log(`smoke: -v ${printed}`);

// 2. /health
const port = await freePort();
const base = `http://127.0.0.1:${port}`;
server = spawn(
  binary,
  [
    "--host=127.0.0.1",
    `--port=${port}`,
    "--public",
    "--norpc",
    "--broadcast_adapter=http",
    "--secret=smoke", // a broadcast key is derived, so broadcasts go to the main port
  ],
  {
    cwd,
    // no ANYCABLE_* (or anything else) from the runner; SystemRoot lets a Windows binary start.
    // Windows spells names as it likes (Path, SystemRoot): compared upper-cased.
    env: Object.fromEntries(
      Object.entries(process.env).filter(([k]) =>
        ["PATH", "HOME", "SYSTEMROOT", "TMPDIR", "TEMP", "TMP"].includes(k.toUpperCase()),
      ),
    ),
    stdio: ["ignore", "pipe", "pipe"],
  },
);
let exit;
const exited = new Promise((r) =>
  server.on("exit", (code, signal) => {
    exit = { code, signal };
    r(exit);
  }),
);
server.on("error", (err) => fail(`cannot start ${binary}: ${err.message}`));
server.stdout.on("data", (d) => {
  output += d;
});
server.stderr.on("data", (d) => {
  output += d;
});
await waitUntil(`${base}/health`, async () => {
  if (exit) fail(`the server exited (${exit.code ?? exit.signal}) before /health answered`);
  const res = await fetch(`${base}/health`).catch(() => undefined);
  return res?.status === 200;
});
console.log(`smoke: GET /health 200 (port ${port})`);

// 3. WebSocket subscribe + broadcast
const messages = [];
const ws = new WebSocket(`ws://127.0.0.1:${port}/cable`, ["actioncable-v1-json"]);
ws.addEventListener("message", (e) => messages.push(JSON.parse(String(e.data))));
ws.addEventListener("error", () => fail("WebSocket error"));
const next = (what, pred) =>
  waitUntil(
    what,
    () => {
      const i = messages.findIndex(pred);
      return i >= 0 ? messages.splice(i, 1)[0] : undefined;
    },
    10,
  );
await next("welcome", (m) => m.type === "welcome");
const identifier = JSON.stringify({ channel: "$pubsub", stream_name: "smoke" });
ws.send(JSON.stringify({ command: "subscribe", identifier }));
await next("confirm_subscription", (m) => m.type === "confirm_subscription" && m.identifier === identifier);
const res = await fetch(`${base}/_broadcast`, {
  method: "POST",
  headers: { "content-type": "application/json" },
  body: JSON.stringify({ stream: "smoke", data: JSON.stringify({ smoke: version ?? printed }) }),
});
if (res.status !== 201) fail(`POST /_broadcast answered ${res.status}`);
const got = await next("the broadcast", (m) => m.identifier === identifier && m.message !== undefined);
if (got.message.smoke !== (version ?? printed)) fail(`broadcast arrived as ${JSON.stringify(got)}`);
console.log("smoke: WebSocket welcome, subscribe, broadcast received");

// 4. SIGTERM
if (process.platform === "win32") {
  ws.close();
  server.kill();
  await exited;
  console.log("smoke: stopped (Windows: no graceful stop to check)");
} else {
  server.kill("SIGTERM");
  const bye = await next("disconnect server_restart", (m) => m.type === "disconnect");
  if (bye.reason !== "server_restart") fail(`disconnect reason ${bye.reason}`);
  const { code, signal } = await Promise.race([exited, waitUntil("exit after SIGTERM", () => exit)]);
  if (code !== 0) fail(`exit after SIGTERM: ${code ?? signal}, expected 0`);
  console.log("smoke: SIGTERM -> server_restart, exit 0");
}
rmSync(cwd, { recursive: true, force: true });
console.log(`smoke ok: ${binary}`);
