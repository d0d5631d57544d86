#!/usr/bin/env node
// The anycable-ts launcher: bin/anycable-ts of the `anycable-ts` npm package (release/npm/pack.ts
// puts it there). It finds this platform's binary in the @anycable-ts/<platform> optional
// dependency npm installed beside it (the esbuild / biome pattern: nothing is downloaded at
// install or first run) and runs it, passing signals on and exiting with the server's exit code
// (or dying of the same signal). ANYCABLE_TS_BINARY=<path> runs that binary instead.
"use strict";

const { spawn } = require("node:child_process");
const { existsSync } = require("node:fs");
const { constants } = require("node:os");
const path = require("node:path");

/** Platform key (`<process.platform>-<process.arch>[-musl]`) -> package carrying its binary. */
const PACKAGES = {
  "linux-x64": "@anycable-ts/linux-x64",
  "linux-arm64": "@anycable-ts/linux-arm64",
  "linux-x64-musl": "@anycable-ts/linux-x64-musl",
  "darwin-x64": "@anycable-ts/darwin-x64",
  "darwin-arm64": "@anycable-ts/darwin-arm64",
  "win32-x64": "@anycable-ts/win32-x64",
};

// Signals passed on to the server. The server runs in its own session (POSIX), so a Ctrl-C in
// the terminal reaches only this launcher and the server gets it once, from here.
// (SIGUSR1 is Node's own: it starts the inspector.)
const FORWARDED = ["SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR2"];

function fail(message) {
  process.stderr.write(`anycable-ts: ${message}\n`);
  process.exit(1);
}

/** Whether this Linux runs musl: a Node built against glibc reports the glibc it runs on. */
function isMusl() {
  if (process.platform !== "linux") return false;
  try {
    if ("excludeNetwork" in process.report) process.report.excludeNetwork = true;
    const report = process.report.getReport();
    const header = typeof report === "string" ? JSON.parse(report).header : report.header;
    if (header) return !header.glibcVersionRuntime;
  } catch {
    // no usable report: fall back to looking for musl's dynamic loader
  }
  return existsSync(`/lib/ld-musl-${process.arch === "arm64" ? "aarch64" : "x86_64"}.so.1`);
}

function platformKey() {
  return `${process.platform}-${process.arch}${isMusl() ? "-musl" : ""}`;
}

function binaryPath() {
  const override = process.env.ANYCABLE_TS_BINARY;
  if (override) {
    const file = path.resolve(override);
    if (!existsSync(file)) fail(`ANYCABLE_TS_BINARY=${override}: no such file`);
    return file;
  }
  const key = platformKey();
  const pkg = PACKAGES[key];
  if (!pkg) {
    fail(
      `unsupported platform ${key}; supported: ${Object.keys(PACKAGES).join(", ")} ` +
        "(set ANYCABLE_TS_BINARY to an anycable-ts binary built for it)",
    );
  }
  let dir;
  try {
    dir = path.dirname(require.resolve(`${pkg}/package.json`, { paths: [__dirname] }));
  } catch {
    fail(
      `${pkg}, the package with the ${key} binary, is not installed (optional dependencies ` +
        "were skipped?): reinstall with `npm install --include=optional` " +
        "(not --omit=optional / --no-optional), or set ANYCABLE_TS_BINARY",
    );
  }
  const file = path.join(dir, "bin", process.platform === "win32" ? "anycable-ts.exe" : "anycable-ts");
  if (!existsSync(file)) fail(`${pkg} is installed but has no ${path.relative(dir, file)}: reinstall it`);
  return file;
}

function main() {
  const file = binaryPath();
  // Handlers go in before the spawn: a SIGTERM that arrives once the server is up (it may print
  // "ready" before this process runs its next line) must reach the server, not kill us and
  // orphan it. A signal is delivered on a later turn, when `child` is set.
  let child;
  const handlers = new Map();
  for (const signal of FORWARDED) {
    const handler = () => {
      try {
        child?.kill(signal);
      } catch {
        // the server has exited already
      }
    };
    handlers.set(signal, handler);
    try {
      process.on(signal, handler);
    } catch {
      // not a signal on this platform
    }
  }
  child = spawn(file, process.argv.slice(2), {
    stdio: "inherit",
    detached: process.platform !== "win32",
  });
  child.on("error", (err) => fail(`cannot run ${file}: ${err.message}`));
  child.on("exit", (code, signal) => {
    for (const [sig, handler] of handlers) process.off(sig, handler);
    if (signal) {
      // die of the same signal, so whoever started us sees what happened to the server
      if (signal !== "SIGUSR1") process.kill(process.pid, signal);
      process.exit(128 + (constants.signals[signal] ?? 0));
    }
    process.exit(code ?? 1);
  });
}

if (require.main === module) main();

module.exports = { PACKAGES, platformKey, isMusl };
