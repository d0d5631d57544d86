// The Homebrew formula release/homebrew/generate.ts writes from a release's SHA256SUMS: its
// per-platform url + sha256, `ruby -c`, and its `install` and `test do` blocks run by Ruby
// against this machine's binary through test/support/homebrew_harness.rb (the Formula DSL
// pieces the formula uses, with minitest's assertions as Homebrew's), since brew is not here.
// Needs ruby (Debian's; .ci/run installs it): skipped with one loud line without it, a failure
// under CI=true.

import { afterAll, beforeAll, describe, it } from "bun:test";
import assert from "node:assert/strict";
import { copyFileSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FORMULA_PLATFORMS, RELEASES } from "../../release/homebrew/generate.ts";
import { hostBinary, run, sha256, sha256File, sha256sums } from "../support/dist.ts";
import { e2eRuntimes, ROOT } from "../support/server.ts";
import { hasService } from "../support/services.ts";

const enabled =
  e2eRuntimes(["binary"]).length > 0 &&
  process.platform === "linux" &&
  process.arch === "x64" &&
  hasService("ruby");
const BUN = join(ROOT, "node_modules", ".bin", "bun");
const GENERATE = join(ROOT, "release", "homebrew", "generate.ts");
const HARNESS = join(ROOT, "test", "support", "homebrew_harness.rb");

/** A release's SHA256SUMS: made-up checksums for every asset, `real` ones where given. */
function fakeSums(real: Record<string, string> = {}): Record<string, string> {
  const all = [
    "anycable-ts-linux-x64",
    "anycable-ts-linux-arm64",
    "anycable-ts-linux-x64-musl",
    "anycable-ts-darwin-x64",
    "anycable-ts-darwin-arm64",
    "anycable-ts-windows-x64.exe",
    "anycable-ts-deno-linux-x64",
  ];
  return Object.fromEntries(all.map((name) => [name, real[name] ?? sha256(`fake ${name}`)]));
}

describe.if(enabled)("[binary] Homebrew formula", () => {
  let tmp: string;

  beforeAll(() => {
    tmp = mkdtempSync(join(tmpdir(), "acts-brew-"));
  });
  afterAll(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  async function generate(sums: string, args: string[]) {
    const file = join(tmp, `SHA256SUMS-${readdirSync(tmp).length}`);
    writeFileSync(file, sums);
    return run(BUN, [GENERATE, "--sums", file, ...args], { cwd: ROOT });
  }

  it("from SHA256SUMS: one url + sha256 per macOS / Linux arch of the tag's release; ruby -c passes", async () => {
    const sums = fakeSums();
    // upper-case hex and the `*name` (binary mode) form are sha256sum output too
    const text = sha256sums(sums).replace(
      `${sums["anycable-ts-darwin-x64"]}  anycable-ts-darwin-x64`,
      `${sums["anycable-ts-darwin-x64"].toUpperCase()} *anycable-ts-darwin-x64`,
    );
    const res = await generate(text, ["--version", "v1.2.3", "--out", join(tmp, "anycable-ts.rb")]);
    assert.deepEqual([res.code, res.stderr, res.stdout], [0, "", ""]);
    const rb = (await run("cat", [join(tmp, "anycable-ts.rb")])).stdout;
    assert.match(rb, /^class AnycableTs < Formula$/m);
    assert.match(rb, /^ {2}version "1\.2\.3"$/m);
    const blocks = [...rb.matchAll(/on_(macos|linux) do\n([\s\S]*?)\n {2}end\n/g)].map((m) => [m[1], m[2]]);
    assert.deepEqual(
      blocks.map(([os]) => os),
      ["macos", "linux"],
    );
    for (const p of FORMULA_PLATFORMS) {
      const body = blocks.find(([os]) => os === p.os)![1];
      assert.ok(
        body.includes(
          `    on_${p.cpu} do\n      url "${RELEASES}/download/v1.2.3/${p.asset}"\n      sha256 "${sums[p.asset]}"\n    end`,
        ),
        `${p.os}/${p.cpu} -> ${p.asset}\n${body}`,
      );
    }
    assert.doesNotMatch(rb, /musl|windows|deno/, "only the macOS and Linux (glibc) Bun builds");
    const syntax = await run("ruby", ["-c", join(tmp, "anycable-ts.rb")]);
    assert.deepEqual([syntax.code, syntax.stdout], [0, "Syntax OK\n"], syntax.stderr);
  });

  it("refuses SHA256SUMS without an asset it needs, a garbled line, a version that is none", async () => {
    const { "anycable-ts-darwin-arm64": _, ...partial } = fakeSums();
    let res = await generate(sha256sums(partial), ["--version", "1.2.3"]);
    assert.deepEqual(
      [res.code, res.stdout, res.stderr],
      [1, "", "release/homebrew/generate.ts: SHA256SUMS lists no anycable-ts-darwin-arm64\n"],
    );
    res = await generate(`${sha256sums(fakeSums())}deadbeef  anycable-ts-linux-x64\n`, [
      "--version",
      "1.2.3",
    ]);
    assert.equal(res.code, 1);
    assert.match(res.stderr, /SHA256SUMS line 8 is not "<sha256> {2}<file>": deadbeef/);
    res = await generate(sha256sums(fakeSums()), ["--version", "latest"]);
    assert.equal(res.code, 1);
    assert.match(res.stderr, /not a release version/);
  });

  it("install puts the download at bin/anycable-ts; `test do` passes against the real binary (-v, /health, TERM exit 0)", async () => {
    const binary = hostBinary();
    const version = (await run(binary, ["-v"])).stdout.trim().replace(/^.*-ts/, "");
    const res = await generate(sha256sums(fakeSums({ "anycable-ts-linux-x64": sha256File(binary) })), [
      "--version",
      version,
      "--base-url",
      "http://mirror.invalid/v9",
    ]);
    assert.equal(res.code, 0, res.stderr);
    const formula = join(tmp, "local.rb");
    writeFileSync(formula, res.stdout);
    const download = join(tmp, "download");
    copyFileSync(binary, download);
    const prefix = join(tmp, "prefix");
    const cwd = mkdtempSync(join(tmp, "brew-test-"));
    const harness = await run("ruby", [HARNESS, formula, "linux", "intel", download, prefix], {
      cwd,
      timeoutMs: 60_000,
    });
    assert.equal(harness.code, 0, harness.stdout + harness.stderr);
    assert.deepEqual(
      harness.stdout.split("\n").filter((l) => !/ (INF|WRN|DBG) /.test(l)),
      [
        "url http://mirror.invalid/v9/anycable-ts-linux-x64",
        "sha256 ok",
        "installed anycable-ts",
        "test ok (5 assertions)",
        "",
      ],
    );
    assert.equal(sha256File(join(prefix, "bin", "anycable-ts")), sha256File(binary));
    assert.match(harness.stdout, / INF Shutting down\.\.\./, "the test block stopped the server with TERM");
  });

  it("the harness refuses a download that does not match the formula's sha256", async () => {
    const res = await generate(sha256sums(fakeSums()), ["--version", "1.2.3"]);
    const formula = join(tmp, "fake.rb");
    writeFileSync(formula, res.stdout);
    const harness = await run("ruby", [HARNESS, formula, "linux", "intel", hostBinary(), join(tmp, "p2")]);
    assert.equal(harness.code, 1);
    assert.match(
      harness.stderr,
      new RegExp(
        `^sha256 mismatch: the formula says ${sha256("fake anycable-ts-linux-x64")}, the download is `,
      ),
    );
  });
});
