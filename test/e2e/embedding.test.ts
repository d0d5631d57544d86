// The README's embedding examples (examples/*.ts) run as applications that depend on anycable-ts
// the way a workspace or git dependency does (node_modules/anycable-ts -> this repository), under
// Bun and Deno: a real @anycable/core client subscribes through the cable, an HTTP broadcast to
// the application's port reaches it, and the application's own route keeps answering.
import { afterAll, describe, it } from "bun:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Cable } from "@anycable/core";
import WS from "ws";
import { freePort } from "../support/ports.ts";
import { e2eRuntimes, ROOT } from "../support/server.ts";
import { waitFor } from "../support/wait.ts";

const BIN = join(ROOT, "node_modules", ".bin");
const runtimes = e2eRuntimes(["bun", "deno"]);
const apps: Array<{ proc: ChildProcess; dir: string }> = [];

/** An application directory with the example and anycable-ts (and hono) as dependencies. */
function appDir(example: string): string {
  const dir = mkdtempSync(join(tmpdir(), "anycable-embed-"));
  copyFileSync(join(ROOT, "examples", example), join(dir, "app.ts"));
  mkdirSync(join(dir, "node_modules"));
  symlinkSync(ROOT, join(dir, "node_modules", "anycable-ts"));
  symlinkSync(join(ROOT, "node_modules", "hono"), join(dir, "node_modules", "hono"));
  writeFileSync(join(dir, "package.json"), '{"type":"module","dependencies":{"anycable-ts":"*","hono":"*"}}');
  writeFileSync(join(dir, "deno.json"), '{"nodeModulesDir":"manual","lock":false}');
  return dir;
}

async function startApp(runtime: "bun" | "deno", example: string) {
  const dir = appDir(example);
  const port = await freePort();
  const [cmd, args] =
    runtime === "bun" ? [join(BIN, "bun"), ["app.ts"]] : [join(BIN, "deno"), ["run", "-A", "app.ts"]];
  const proc = spawn(cmd, args, {
    cwd: dir,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", PORT: String(port), NO_COLOR: "1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  proc.stdout?.on("data", (d) => {
    out += d;
  });
  proc.stderr?.on("data", (d) => {
    out += d;
  });
  apps.push({ proc, dir });
  const url = `http://127.0.0.1:${port}`;
  await waitFor(
    async () => {
      if (proc.exitCode !== null) throw new Error(`app exited:\n${out}`);
      return (await fetch(`${url}/hello`)).status === 200;
    },
    `${example} under ${runtime} to answer /hello`,
    30_000,
    50,
  ).catch((err) => {
    throw new Error(`${(err as Error).message}\n--- app output ---\n${out}`);
  });
  return { url, output: () => out };
}

afterAll(() => {
  for (const { proc, dir } of apps) {
    proc.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
});

async function roundTrip(url: string, wsPath: string) {
  const { createCable } = await import("@anycable/core");
  const cable = createCable(`${url.replace("http", "ws")}${wsPath}`, {
    websocketImplementation: WS,
    protocol: "actioncable-v1-ext-json",
    logLevel: "error",
    maxReconnectAttempts: 0,
  }) as Cable;
  const channel = cable.streamFrom("lobby");
  const got: unknown[] = [];
  channel.on("message", (m: unknown) => {
    got.push(m);
  });
  await channel.ensureSubscribed();
  const res = await fetch(`${url}/_broadcast`, {
    method: "POST",
    body: JSON.stringify({ stream: "lobby", data: JSON.stringify({ text: "embedded" }) }),
  });
  assert.equal(res.status, 201);
  await waitFor(() => got.length === 1, "the broadcast through the embedded cable");
  assert.deepEqual(got, [{ text: "embedded" }]);
  cable.disconnect();
}

const cases: Array<{ example: string; runtimes: Array<"bun" | "deno">; wsPath: string }> = [
  { example: "bun.ts", runtimes: ["bun"], wsPath: "/cable" },
  { example: "deno.ts", runtimes: ["deno"], wsPath: "/cable" },
  { example: "hono.ts", runtimes: ["bun", "deno"], wsPath: "/ws" },
];

for (const c of cases) {
  for (const runtime of c.runtimes.filter((r) => runtimes.includes(r))) {
    describe(`[${runtime}] embedding example ${c.example}`, () => {
      it("serves the cable beside the application's own routes", async () => {
        const app = await startApp(runtime, c.example);
        assert.equal(await (await fetch(`${app.url}/hello`)).text(), "Hello from the app\n");
        await roundTrip(app.url, c.wsPath);
        assert.match(app.output(), /Starting embedded AnyCable/);
        assert.equal((await fetch(`${app.url}/hello`)).status, 200, "the app still answers");
        if (c.example !== "hono.ts") assert.equal((await fetch(`${app.url}/nope`)).status, 404);
      });
    });
  }
}
