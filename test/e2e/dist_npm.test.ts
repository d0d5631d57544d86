// The npx launcher: `npm run pack:npm` tarballs installed offline into a scratch project, the
// installed launcher running the real binary (/health, SIGTERM, exit codes), the
// ANYCABLE_TS_BINARY override, and the errors for a missing platform package and an
// unsupported platform. No registry: npm runs --offline with an empty cache and a dead registry.

import { afterAll, beforeAll, describe, it } from "bun:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NPM_PLATFORMS } from "../../release/npm/pack.ts";
import { cleanEnv, hostBinary, run, sha256File, start, waitHealthy } from "../support/dist.ts";
import { freePort } from "../support/ports.ts";
import { e2eRuntimes, ROOT } from "../support/server.ts";

const enabled = e2eRuntimes(["binary"]).length > 0;
const version = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version;
const hostKey = `${process.platform}-${process.arch}`;

/** The tar entries of a .tgz with their modes (`tar -tvzf`). */
function tarList(file: string): string {
  const res = spawnSync("tar", ["-tvzf", file], { encoding: "utf8", maxBuffer: 1 << 24 });
  assert.equal(res.status, 0, res.stderr);
  return res.stdout;
}

function tarJson(file: string, entry: string): Record<string, unknown> {
  const res = spawnSync("tar", ["-xzOf", file, entry], { encoding: "utf8" });
  assert.equal(res.status, 0, res.stderr);
  return JSON.parse(res.stdout) as Record<string, unknown>;
}

/** npm with no way to reach a registry: offline, an empty private cache, a dead registry URL. */
function npmInstall(dir: string, tarballs: string[]) {
  return run(
    "npm",
    [
      "install",
      "--offline",
      "--no-audit",
      "--no-fund",
      "--no-update-notifier",
      `--cache=${join(dir, ".npm-cache")}`,
      "--registry=http://127.0.0.1:9/",
      ...tarballs,
    ],
    { cwd: dir, env: cleanEnv(), timeoutMs: 120_000 },
  );
}

describe.if(enabled)("[binary] npm launcher package", () => {
  let tmp: string;
  let launcherTgz: string;
  let platformTgz: string;
  let project: string;
  let launcher: string;
  const timings: Record<string, number> = {};

  beforeAll(async () => {
    hostBinary();
    tmp = mkdtempSync(join(tmpdir(), "acts-npm-"));
    let t = performance.now();
    const packed = await run("npm", ["run", "--silent", "pack:npm"], { cwd: ROOT, timeoutMs: 120_000 });
    timings.pack = Math.round(performance.now() - t);
    assert.equal(packed.code, 0, packed.stderr + packed.stdout);
    const lines = packed.stdout
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as { name: string; file: string });
    launcherTgz = lines.find((l) => l.name === "anycable-ts")!.file;
    platformTgz = lines.find((l) => l.name === `@anycable-ts/${hostKey}`)!.file;
    project = join(tmp, "project");
    mkdirSync(project);
    writeFileSync(join(project, "package.json"), '{ "name": "scratch", "private": true }\n');
    t = performance.now();
    const installed = await npmInstall(project, [launcherTgz, platformTgz]);
    timings.install = Math.round(performance.now() - t);
    assert.equal(installed.code, 0, installed.stderr + installed.stdout);
    launcher = join(project, "node_modules", ".bin", "anycable-ts");
    console.log(`npm pack:npm ${timings.pack} ms, offline npm install ${timings.install} ms`);
  });

  afterAll(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it("npm run pack:npm writes the launcher and this machine's platform package to dist/npm/", () => {
    assert.equal(launcherTgz, join(ROOT, "dist", "npm", `anycable-ts-${version}.tgz`));
    assert.equal(platformTgz, join(ROOT, "dist", "npm", `anycable-ts-${hostKey}-${version}.tgz`));
    const launcherEntries = tarList(launcherTgz);
    assert.match(launcherEntries, /^-rwxr-xr-x .* package\/bin\/anycable-ts$/m);
    const manifest = tarJson(launcherTgz, "package/package.json");
    assert.deepEqual(manifest.bin, { "anycable-ts": "bin/anycable-ts" });
    assert.deepEqual(
      manifest.optionalDependencies,
      Object.fromEntries(
        ["linux-x64", "linux-arm64", "linux-x64-musl", "darwin-x64", "darwin-arm64", "win32-x64"].map((k) => [
          `@anycable-ts/${k}`,
          version,
        ]),
      ),
    );
    assert.match(tarList(platformTgz), /^-rwxr-xr-x .* package\/bin\/anycable-ts$/m);
    // the manifest as npm unpacked it (reading it from the 100 MB tarball again costs a second)
    const platform = JSON.parse(
      readFileSync(join(project, "node_modules", "@anycable-ts", hostKey, "package.json"), "utf8"),
    ) as Record<string, unknown>;
    assert.deepEqual(
      [platform.os, platform.cpu, platform.libc],
      [[process.platform], [process.arch], process.platform === "linux" ? ["glibc"] : undefined],
    );
  });

  it("pack --all: one package per platform with its os / cpu / libc fields and binary", async () => {
    const fakeDist = join(tmp, "fake-dist");
    const out = join(tmp, "fake-out");
    mkdirSync(fakeDist);
    for (const p of NPM_PLATFORMS) writeFileSync(join(fakeDist, p.asset), `binary for ${p.key}\n`);
    const res = await run(
      join(ROOT, "node_modules", ".bin", "bun"),
      ["release/npm/pack.ts", "--all", "--dist", fakeDist, "--out", out],
      { cwd: ROOT },
    );
    assert.equal(res.code, 0, res.stderr);
    const packed = res.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { name: string; file: string });
    assert.equal(packed.length, 7);
    const expected: Record<string, [string[], string[], string[] | undefined, string]> = {
      "linux-x64": [["linux"], ["x64"], ["glibc"], "bin/anycable-ts"],
      "linux-arm64": [["linux"], ["arm64"], ["glibc"], "bin/anycable-ts"],
      "linux-x64-musl": [["linux"], ["x64"], ["musl"], "bin/anycable-ts"],
      "darwin-x64": [["darwin"], ["x64"], undefined, "bin/anycable-ts"],
      "darwin-arm64": [["darwin"], ["arm64"], undefined, "bin/anycable-ts"],
      "win32-x64": [["win32"], ["x64"], undefined, "bin/anycable-ts.exe"],
    };
    for (const [key, [os, cpu, libc, bin]] of Object.entries(expected)) {
      const entry = packed.find((p) => p.name === `@anycable-ts/${key}`);
      assert.ok(entry, `@anycable-ts/${key} packed`);
      const m = tarJson(entry.file, "package/package.json");
      assert.deepEqual([m.os, m.cpu, m.libc, m.version], [os, cpu, libc, version], key);
      assert.deepEqual(m.files, [bin]);
      const content = spawnSync("tar", ["-xzOf", entry.file, `package/${bin}`], { encoding: "utf8" });
      assert.equal(content.stdout, `binary for ${key}\n`);
    }
  });

  it("offline install: the launcher and only this platform's package, the binary unchanged", () => {
    assert.equal(
      readFileSync(launcher, "utf8"),
      readFileSync(join(ROOT, "release", "npm", "launcher.cjs"), "utf8"),
    );
    const installed = join(project, "node_modules", "@anycable-ts", hostKey, "bin", "anycable-ts");
    assert.equal(sha256File(installed), sha256File(hostBinary()));
    const others = NPM_PLATFORMS.map((p) => p.key).filter((k) => k !== hostKey);
    for (const k of others) assert.ok(!existsSync(join(project, "node_modules", "@anycable-ts", k)), k);
  });

  it("node_modules/.bin/anycable-ts serves /health; SIGTERM reaches the server; its exit code comes back", async () => {
    const port = await freePort();
    // (unauthenticated broadcasts would take anycable-go's fixed 8090: a free port instead)
    const server = start(
      launcher,
      [
        `--port=${port}`,
        "--host=127.0.0.1",
        "--public",
        "--norpc",
        "--broadcast_adapter=http",
        `--http_broadcast_port=${await freePort()}`,
      ],
      { cwd: project, env: cleanEnv() },
    );
    try {
      await waitHealthy(`http://127.0.0.1:${port}/health`, server);
      server.proc.kill("SIGTERM");
      const res = await server.done;
      assert.equal(res.code, 0, server.output());
      assert.match(server.output(), /Shutting down\.\.\./);
      await assert.rejects(fetch(`http://127.0.0.1:${port}/health`), "the server is gone with the launcher");
    } finally {
      server.proc.kill("SIGKILL");
    }
  });

  it("npx anycable-ts runs the installed binary (offline)", async () => {
    const res = await run(
      "npx",
      ["--offline", "--no-update-notifier", `--cache=${join(project, ".npm-cache")}`, "anycable-ts", "-v"],
      { cwd: project, env: cleanEnv({ npm_config_registry: "http://127.0.0.1:9/" }) },
    );
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.stdout.trim(), spawnSync(hostBinary(), ["-v"], { encoding: "utf8" }).stdout.trim());
  });

  it("a failing server's exit code and message pass through unchanged", async () => {
    const direct = spawnSync(hostBinary(), ["--no_such_flag"], { encoding: "utf8" });
    const res = await run(launcher, ["--no_such_flag"], { cwd: project, env: cleanEnv() });
    assert.notEqual(direct.status, 0);
    assert.equal(res.code, direct.status);
    assert.equal(res.stderr, direct.stderr);
  });

  it("ANYCABLE_TS_BINARY: runs that binary with the arguments; exit code, SIGTERM and a signal death pass through", async () => {
    const script = join(tmp, "fake-server");
    writeFileSync(
      script,
      [
        "#!/bin/sh",
        'if [ "$1" = exit ]; then echo "args: $*"; exit "$2"; fi',
        'if [ "$1" = kill ]; then kill -KILL $$; fi',
        'trap \'echo "got TERM"; kill "$sleeper"; exit 42\' TERM',
        'echo "ready $$"',
        "sleep 30 & sleeper=$!",
        'wait "$sleeper"',
        "",
      ].join("\n"),
    );
    chmodSync(script, 0o755);
    const env = cleanEnv({ ANYCABLE_TS_BINARY: script });

    const exited = await run(launcher, ["exit", "7", "--port=1"], { cwd: project, env });
    assert.equal(exited.code, 7);
    assert.equal(exited.stdout, "args: exit 7 --port=1\n");

    const killed = await run(launcher, ["kill"], { cwd: project, env });
    assert.deepEqual([killed.code, killed.signal], [null, "SIGKILL"]);

    const waiting = start(launcher, [], { cwd: project, env });
    await waiting.waitForOutput(/ready \d+/);
    waiting.proc.kill("SIGTERM");
    const res = await waiting.done;
    assert.equal(res.code, 42);
    assert.match(res.stdout, /got TERM/);

    const missing = await run(launcher, [], {
      cwd: project,
      env: cleanEnv({ ANYCABLE_TS_BINARY: join(tmp, "nope") }),
    });
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr, `anycable-ts: ANYCABLE_TS_BINARY=${join(tmp, "nope")}: no such file\n`);
  });

  it("without the platform package (optional dependencies skipped): says how to fix it, exit 1", async () => {
    const bare = join(tmp, "bare");
    mkdirSync(bare);
    writeFileSync(join(bare, "package.json"), '{ "name": "bare", "private": true }\n');
    const installed = await npmInstall(bare, [launcherTgz]);
    assert.equal(installed.code, 0, installed.stderr);
    const res = await run(join(bare, "node_modules", ".bin", "anycable-ts"), ["--port=1"], {
      cwd: bare,
      env: cleanEnv(),
    });
    assert.equal(res.code, 1);
    assert.equal(res.stderr.trimEnd().split("\n").length, 1, res.stderr);
    assert.match(
      res.stderr,
      new RegExp(
        `^anycable-ts: @anycable-ts/${hostKey}, the package with the ${hostKey} binary, is not installed`,
      ),
    );
    assert.match(res.stderr, /npm install --include=optional/);
  });

  it("an unsupported platform: one line naming it and the supported list, exit 1", async () => {
    const preload = join(tmp, "freebsd.cjs");
    writeFileSync(preload, 'Object.defineProperty(process, "platform", { value: "freebsd" });\n');
    const res = await run("node", ["-r", preload, launcher, "--port=1"], {
      cwd: project,
      env: cleanEnv(),
    });
    assert.equal(res.code, 1);
    assert.equal(
      res.stderr,
      `anycable-ts: unsupported platform freebsd-${process.arch}; supported: linux-x64, linux-arm64, linux-x64-musl, ` +
        "darwin-x64, darwin-arm64, win32-x64 (set ANYCABLE_TS_BINARY to an anycable-ts binary built for it)\n",
    );
  });

  it.if(process.platform === "linux")("on musl it looks for the -musl package", async () => {
    const preload = join(tmp, "musl.cjs");
    // what a Node built against musl reports: no glibcVersionRuntime in the report header
    writeFileSync(preload, "process.report.getReport = () => ({ header: {} });\n");
    const res = await run("node", ["-r", preload, launcher, "--port=1"], { cwd: project, env: cleanEnv() });
    assert.equal(res.code, 1);
    assert.match(
      res.stderr,
      new RegExp(
        `^anycable-ts: @anycable-ts/${hostKey}-musl, the package with the ${hostKey}-musl binary, is not installed`,
      ),
    );
  });
});
