// The Heroku buildpack (release/heroku-buildpack) run the way Heroku runs it: bin/detect,
// bin/compile BUILD_DIR CACHE_DIR ENV_DIR against a local mirror serving the host binary and its
// SHA256SUMS (the mirror counts requests), then the `web` process bin/release declares, started
// like a dyno does (cwd and HOME the build dir, .profile.d sourced, PORT and Dyno Metadata set).

import { afterAll, beforeAll, describe, it } from "bun:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  cleanEnv,
  hostBinary,
  type Mirror,
  run,
  sha256,
  sha256File,
  sha256sums,
  start,
  startMirror,
  waitHealthy,
} from "../support/dist.ts";
import { freePort } from "../support/ports.ts";
import { e2eRuntimes, ROOT } from "../support/server.ts";

const enabled = e2eRuntimes(["binary"]).length > 0 && process.platform === "linux" && process.arch === "x64";
const BUILDPACK = join(ROOT, "release", "heroku-buildpack");
const ASSET = "anycable-ts-linux-x64";

describe.if(enabled)("[binary] Heroku buildpack", () => {
  let tmp: string;
  let mirror: Mirror;
  let binarySum: string;

  function dirs(name: string, env: Record<string, string>, cache?: string) {
    const base = join(tmp, name);
    const build = join(base, "build");
    const envDir = join(base, "env");
    mkdirSync(build, { recursive: true });
    mkdirSync(envDir);
    for (const [k, v] of Object.entries(env)) writeFileSync(join(envDir, k), v);
    return { build, cache: cache ?? join(base, "cache"), env: envDir };
  }

  const compile = (d: { build: string; cache: string; env: string }) =>
    run("bash", [join(BUILDPACK, "bin", "compile"), d.build, d.cache, d.env], { env: cleanEnv() });

  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), "acts-heroku-"));
    const binary = hostBinary();
    binarySum = sha256File(binary);
    const sums = { body: sha256sums({ "anycable-ts-darwin-arm64": sha256("x"), [ASSET]: binarySum }) };
    mirror = await startMirror({
      "/v0.1.0/SHA256SUMS": sums,
      [`/v0.1.0/${ASSET}`]: { file: binary },
      "/latest/SHA256SUMS": sums,
      [`/latest/${ASSET}`]: { file: binary },
      "/v6.6.6/SHA256SUMS": { body: sha256sums({ [ASSET]: sha256("not it") }) },
      [`/v6.6.6/${ASSET}`]: { body: "#!/bin/sh\necho tampered\n" },
    });
  });

  afterAll(async () => {
    await mirror?.close();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it("bin/* are shellcheck-clean; bin/detect accepts any app", async () => {
    const scripts = ["detect", "compile", "release"].map((s) => join(BUILDPACK, "bin", s));
    const lint = spawnSync("shellcheck", scripts, { encoding: "utf8" });
    assert.equal(lint.status, 0, lint.stdout);
    for (const s of scripts) assert.ok((statSync(s).mode & 0o111) !== 0, `${s} is executable`);
    const build = mkdtempSync(join(tmp, "detect-"));
    const res = await run(join(BUILDPACK, "bin", "detect"), [build], { env: cleanEnv() });
    assert.deepEqual([res.code, res.stdout], [0, "anycable-ts\n"]);
  });

  it("compile installs the checked binary (and bin/anycable-go); the web process serves /health on $PORT; a second compile downloads nothing", async () => {
    const first = dirs("pinned", {
      HEROKU_ANYCABLE_TS_VERSION: "0.1.0",
      HEROKU_ANYCABLE_TS_DOWNLOAD_URL: mirror.url,
      HEROKU_ANYCABLE_TS_AS_ANYCABLE_GO: "true",
    });
    mirror.requests.length = 0;
    const res = await compile(first);
    assert.equal(res.code, 0, res.stderr + res.stdout);
    assert.deepEqual(mirror.requests, ["/v0.1.0/SHA256SUMS", `/v0.1.0/${ASSET}`]);
    assert.match(res.stdout, /-----> Downloading /);
    assert.equal(sha256File(join(first.build, "bin", "anycable-ts")), binarySum);
    assert.equal(readlinkSync(join(first.build, "bin", "anycable-go")), "anycable-ts");
    assert.match(
      res.stdout,
      new RegExp(
        `-----> Installed anycable-ts ${spawnSync(hostBinary(), ["-v"], { encoding: "utf8" }).stdout.trim().replace(/\./g, "\\.")}`,
      ),
    );

    const release = await run(join(BUILDPACK, "bin", "release"), [first.build], { env: cleanEnv() });
    assert.equal(release.code, 0);
    const web = release.stdout.match(/^default_process_types:\n\s+web: (.+)$/m)?.[1];
    assert.equal(web, "bin/anycable-ts");

    // a dyno: cwd and HOME the app dir, .profile.d sourced, then the process command
    const port = await freePort();
    const dyno = start(
      "bash",
      ["-c", `for f in .profile.d/*.sh; do . "$f"; done; command -v anycable-go; exec ${web}`],
      {
        cwd: first.build,
        env: {
          PATH: "/usr/local/bin:/usr/bin:/bin",
          HOME: first.build,
          PORT: String(port),
          // Dyno Metadata: turns on the heroku preset (0.0.0.0, broadcasts on $PORT)
          HEROKU_APP_ID: "00000000-0000-0000-0000-000000000000",
          HEROKU_DYNO_ID: "11111111-1111-1111-1111-111111111111",
          // the app's config vars
          ANYCABLE_NORPC: "true",
          ANYCABLE_PUBLIC: "true",
          ANYCABLE_BROADCAST_ADAPTER: "http",
        },
      },
    );
    try {
      await waitHealthy(`http://127.0.0.1:${port}/health`, dyno);
      assert.match(
        dyno.output(),
        new RegExp(`^${first.build}/bin/anycable-go$`, "m"),
        "bin/ is on the dyno's PATH",
      );
      assert.match(dyno.output(), /load presets .*presets=heroku/);
      assert.match(
        dyno.output(),
        new RegExp(`Handle WebSocket connections at http://0\\.0\\.0\\.0:${port}/cable`),
      );
      assert.match(
        dyno.output(),
        new RegExp(`Accept broadcast requests at http://0\\.0\\.0\\.0:${port}/_broadcast`),
      );
    } finally {
      dyno.proc.kill("SIGTERM");
      await dyno.done;
    }

    // the next build: same cache, nothing downloaded
    const second = dirs(
      "pinned-again",
      { HEROKU_ANYCABLE_TS_VERSION: "0.1.0", HEROKU_ANYCABLE_TS_DOWNLOAD_URL: mirror.url },
      first.cache,
    );
    mirror.requests.length = 0;
    const again = await compile(second);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(mirror.requests, []);
    assert.match(again.stdout, /Using anycable-ts v0\.1\.0 from the cache/);
    assert.equal(sha256File(join(second.build, "bin", "anycable-ts")), binarySum);
    assert.ok(!existsSync(join(second.build, "bin", "anycable-go")), "no anycable-go without the config var");
  });

  it("latest (the default): the cached binary is reused when SHA256SUMS still lists its checksum", async () => {
    const first = dirs("latest", { HEROKU_ANYCABLE_TS_DOWNLOAD_URL: mirror.url });
    mirror.requests.length = 0;
    assert.equal((await compile(first)).code, 0);
    assert.deepEqual(mirror.requests, ["/latest/SHA256SUMS", `/latest/${ASSET}`]);
    const second = dirs("latest-again", { HEROKU_ANYCABLE_TS_DOWNLOAD_URL: mirror.url }, first.cache);
    mirror.requests.length = 0;
    const again = await compile(second);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(mirror.requests, ["/latest/SHA256SUMS"]);
    assert.match(again.stdout, /Using anycable-ts from the cache \(checksum [0-9a-f]{64} matches/);
  });

  it("a checksum mismatch fails the build and installs and caches nothing", async () => {
    const d = dirs("mismatch", {
      HEROKU_ANYCABLE_TS_VERSION: "6.6.6",
      HEROKU_ANYCABLE_TS_DOWNLOAD_URL: mirror.url,
    });
    const res = await compile(d);
    assert.equal(res.code, 1);
    assert.match(
      res.stderr,
      new RegExp(`checksum mismatch for ${ASSET}: SHA256SUMS says ${sha256("not it")}`),
    );
    assert.deepEqual(readdirSync(d.build), []);
    assert.deepEqual(readdirSync(join(d.cache, "anycable-ts")), []);
  });
});
