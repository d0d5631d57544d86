// What the release workflow (.github/workflows/release.yml) runs, run here on this machine's
// binary: release/smoke.mjs (under Node, as the workflow runs it) against the host binary; the
// version stamp (release/version.ts) reaching `-v` of a binary built from a stamped copy of the
// tree and the npm packages; build.ts --cached rebuilding only when the bundle changed; and the
// Deno build commands, which only the workflow can run (deno compile downloads its runtime).

import { afterAll, beforeAll, describe, it } from "bun:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  chmodSync,
  cpSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DENO_TARGETS, denoOutputName, outputName, TARGETS } from "../../release/build.ts";
import { VERSION } from "../../src/version.ts";
import { hostBinary, run } from "../support/dist.ts";
import { e2eRuntimes, ROOT } from "../support/server.ts";

const enabled = e2eRuntimes(["binary"]).length > 0 && process.platform === "linux" && process.arch === "x64";
const BUN = join(ROOT, "node_modules", ".bin", "bun");

/** `node release/smoke.mjs ...` with the flag Node 20 needs for its global WebSocket. */
function smoke(args: string[]) {
  const major = Number(
    spawnSync("node", ["-p", "process.versions.node"], { encoding: "utf8" }).stdout.split(".")[0],
  );
  const flags = major < 22 ? ["--experimental-websocket"] : [];
  return run("node", [...flags, join(ROOT, "release", "smoke.mjs"), ...args], { timeoutMs: 60_000 });
}

describe.if(enabled)("[binary] release workflow helpers", () => {
  let tmp: string;

  beforeAll(() => {
    tmp = mkdtempSync(join(tmpdir(), "acts-release-"));
  });
  afterAll(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it("smoke.mjs passes on the host binary: -v, /health, WebSocket subscribe + broadcast, SIGTERM exit 0", async () => {
    const res = await smoke([hostBinary(), "--version", `v${VERSION}`]);
    assert.equal(res.code, 0, res.stderr + res.stdout);
    assert.deepEqual(
      res.stdout
        .trim()
        .split("\n")
        .map((l) => l.replace(/\(port \d+\)/, "(port N)")),
      [
        `smoke: -v 1.6.16-ts${VERSION}`,
        "smoke: GET /health 200 (port N)",
        "smoke: WebSocket welcome, subscribe, broadcast received",
        "smoke: SIGTERM -> server_restart, exit 0",
        `smoke ok: ${hostBinary()}`,
      ],
    );
  });

  it("smoke.mjs fails on another version, and on a binary that is no server (with its output)", async () => {
    let res = await smoke([hostBinary(), "--version", "9.9.9"]);
    assert.equal(res.code, 1);
    assert.match(
      res.stderr,
      new RegExp(
        `^smoke FAILED: .* -v printed "1\\.6\\.16-ts${VERSION}": version ${VERSION}, expected 9\\.9\\.9`,
      ),
    );

    const fake = join(tmp, "not-a-server");
    writeFileSync(
      fake,
      `#!/bin/sh\n[ "$1" = -v ] && { echo 1.6.16-ts${VERSION}; exit 0; }\necho "cannot serve" >&2\nexit 3\n`,
    );
    chmodSync(fake, 0o755);
    res = await smoke([fake]);
    assert.equal(res.code, 1);
    assert.match(
      res.stderr,
      /^smoke FAILED: the server exited \(3\) before \/health answered\n--- server output ---\ncannot serve\n---\n$/,
    );
  });

  it("a stamped version reaches -v and the npm packages; build.ts --cached builds again only after the bundle changed", async () => {
    // a copy of the tree (sources, release scripts, manifests) with the real node_modules
    const tree = join(tmp, "tree");
    mkdirSync(tree);
    for (const p of [
      "src",
      "gen",
      "release",
      "package.json",
      "package-lock.json",
      "tsconfig.json",
      "bunfig.toml",
    ]) {
      cpSync(join(ROOT, p), join(tree, p), { recursive: true });
    }
    symlinkSync(join(ROOT, "node_modules"), join(tree, "node_modules"));
    const host = join(tree, "dist", outputName("linux", "x64"));
    const build = () => run(BUN, [join(tree, "release", "build.ts"), "--host", "--cached"], { cwd: tree });

    let res = await build();
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.stdout.trim().split("\n").length, 1);
    assert.match(res.stdout, /^built anycable-ts-linux-x64 /);
    const built = statSync(host).mtimeMs;
    res = await build();
    assert.equal(res.stdout, `up to date anycable-ts-linux-x64 (same bundle, bun ${Bun.version})\n`);
    assert.equal(statSync(host).mtimeMs, built, "not written again");

    res = await run(BUN, [join(tree, "release", "version.ts"), "v2.3.4-rc.1"], { cwd: tree });
    assert.deepEqual([res.code, res.stdout, res.stderr], [0, "2.3.4-rc.1\n", ""]);
    res = await build();
    assert.match(res.stdout, /^built anycable-ts-linux-x64 /, "the stamped version changed the bundle");
    res = await smoke([host, "--version", "v2.3.4-rc.1"]);
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /^smoke: -v 1\.6\.16-ts2\.3\.4-rc\.1\n/);

    // pack.ts takes the packages' version from the stamped package.json
    const fakeDist = join(tmp, "fake-dist");
    mkdirSync(fakeDist);
    writeFileSync(join(fakeDist, "anycable-ts-linux-arm64"), "binary\n");
    res = await run(
      BUN,
      [join(tree, "release", "npm", "pack.ts"), "--all", "--dist", fakeDist, "--out", join(tmp, "npm")],
      { cwd: tree },
    );
    assert.equal(res.code, 0, res.stderr);
    assert.deepEqual(
      res.stdout
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as { name: string; version: string })
        .map((p) => `${p.name}@${p.version}`),
      ["anycable-ts@2.3.4-rc.1", "@anycable-ts/linux-arm64@2.3.4-rc.1"],
    );

    res = await run(BUN, [join(tree, "release", "version.ts"), "1.2"], { cwd: tree });
    assert.deepEqual(
      [res.code, res.stderr],
      [1, "release/version.ts: not a release version (SemVer, e.g. 1.2.3 or v1.2.3): 1.2\n"],
    );
  });

  it("release/lint.ts (npm run check): passes on this tree; flags a schema error, a missing script, a shellcheck finding in a run: step and in a script", async () => {
    let res = await run(BUN, [join(ROOT, "release", "lint.ts")], { cwd: ROOT });
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /^action-validator ok: \.github\/workflows\/ci\.yml$/m);
    assert.match(res.stdout, /^action-validator ok: \.github\/workflows\/release\.yml$/m);
    assert.match(
      res.stdout,
      /^shellcheck ok: .*\binstall\.sh\b.*\brelease\/heroku-buildpack\/bin\/compile\b/m,
    );
    assert.match(res.stdout, /^shellcheck ok: \d+ workflow run: scripts$/m);

    const repo = join(tmp, "lint-repo");
    mkdirSync(join(repo, ".github", "workflows"), { recursive: true });
    mkdirSync(join(repo, "tools"));
    const job = (steps: string) =>
      `name: x\non: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n${steps}`;
    writeFileSync(join(repo, ".github", "workflows", "good.yml"), job("      - run: echo ok\n"));
    writeFileSync(join(repo, "tools", "ok.sh"), '#!/bin/sh\necho "$1"\n');
    writeFileSync(join(repo, "tools", "run"), '#!/usr/bin/env bash\necho "$1"\n');
    spawnSync("git", ["init", "-q", repo]);
    const lint = () => run(BUN, [join(ROOT, "release", "lint.ts"), "--root", repo], { cwd: repo });
    res = await lint();
    assert.equal(res.code, 0, res.stderr);
    assert.equal(
      res.stdout.split("\n")[1],
      "shellcheck ok: tools/ok.sh tools/run",
      "scripts found by name and by shebang",
    );

    writeFileSync(
      join(repo, ".github", "workflows", "schema.yml"),
      job("      - run: echo ok\n        bogus: 1\n"),
    );
    writeFileSync(
      join(repo, ".github", "workflows", "steps.yml"),
      job("      - run: node release/gone.mjs\n      - name: unquoted\n        run: cp $FILE /tmp\n"),
    );
    writeFileSync(join(repo, "tools", "run"), "#!/usr/bin/env bash\necho $1\n");
    res = await lint();
    assert.equal(res.code, 1);
    const summary = res.stderr.trim().split("\n").at(-1)!;
    assert.equal(
      summary,
      "release/lint.ts failed: .github/workflows/schema.yml; .github/workflows/steps.yml runs release/gone.mjs, which does not exist; " +
        "shellcheck (2 scripts); shellcheck: .github/workflows/steps.yml jobs.a.steps[1] (unquoted)",
    );
    assert.match(res.stderr, /tools\/run:2:6: note: Double quote to prevent globbing/);
  });

  it("the Deno builds: one deno compile per target, assets named apart from the Bun builds", async () => {
    const res = await run(BUN, [join(ROOT, "release", "build.ts"), "--deno", "--print"], { cwd: ROOT });
    assert.equal(res.code, 0, res.stderr);
    const lines = res.stdout.trim().split("\n");
    assert.equal(lines.length, DENO_TARGETS.length);
    const names = DENO_TARGETS.map((t) => denoOutputName(t.os, t.arch));
    assert.deepEqual(names, [
      "anycable-ts-deno-linux-x64",
      "anycable-ts-deno-linux-arm64",
      "anycable-ts-deno-darwin-x64",
      "anycable-ts-deno-darwin-arm64",
      "anycable-ts-deno-windows-x64.exe",
    ]);
    const bunNames = new Set(TARGETS.map((t) => outputName(t.os, t.arch)));
    for (const [i, t] of DENO_TARGETS.entries()) {
      assert.equal(
        lines[i],
        `deno compile -A --no-check --target ${t.denoTarget} --include src/runtime/deno.ts --output dist/${names[i]} src/main.ts`,
      );
      assert.ok(!bunNames.has(names[i]));
    }
  });
});
