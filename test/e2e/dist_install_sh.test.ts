// install.sh (run by dash, Debian's POSIX sh) against a local mirror laid out like the GitHub
// release download path: a good install (the real binary, --as-anycable-go), the env base URL
// with `latest`, and the failures that must leave nothing behind: checksum mismatch, 404s, a body
// cut short, an unknown arch, musl on arm64, a prefix without write access. Platforms other than
// this one are faked with `uname` / `ldd` stand-ins first on PATH; the mirror's request log shows
// which asset the script asked for.

import { afterAll, beforeAll, describe, it } from "bun:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  accessSync,
  chmodSync,
  chownSync,
  constants,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  hostBinary,
  type Mirror,
  run,
  sha256,
  sha256File,
  sha256sums,
  startMirror,
} from "../support/dist.ts";
import { e2eRuntimes, ROOT } from "../support/server.ts";

const enabled = e2eRuntimes(["binary"]).length > 0 && process.platform === "linux" && process.arch === "x64";
const INSTALL_SH = join(ROOT, "install.sh");
const ASSET = "anycable-ts-linux-x64";
const NOBODY = 65534;
const isRoot = process.getuid?.() === 0;

function writable(dir: string): boolean {
  try {
    accessSync(dir, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

const fake = (v: string) => `#!/bin/sh\necho ${v}\n`;

describe.if(enabled)("[binary] install.sh", () => {
  let tmp: string;
  let mirror: Mirror;
  let realVersion: string;

  /** A directory for a stand-in `uname` / `ldd`, put first on PATH. */
  function fakeTools(tools: { machine?: string; ldd?: string }): string {
    const dir = mkdtempSync(join(tmp, "tools-"));
    if (tools.machine) {
      writeFileSync(
        join(dir, "uname"),
        `#!/bin/sh\ncase "$1" in -m) echo ${tools.machine} ;; -s) echo Linux ;; *) exec /usr/bin/uname "$@" ;; esac\n`,
      );
      chmodSync(join(dir, "uname"), 0o755);
    }
    if (tools.ldd) {
      writeFileSync(join(dir, "ldd"), `#!/bin/sh\necho '${tools.ldd}' >&2\nexit 1\n`);
      chmodSync(join(dir, "ldd"), 0o755);
    }
    return dir;
  }

  function install(
    args: string[],
    opts: { tools?: string; env?: Record<string, string>; uid?: number } = {},
  ) {
    const path = `${opts.tools ? `${opts.tools}:` : ""}/usr/local/bin:/usr/bin:/bin`;
    return run("sh", [INSTALL_SH, ...args], {
      env: { PATH: path, HOME: join(tmp, "home"), ...opts.env },
      uid: opts.uid,
      gid: opts.uid,
    });
  }

  function prefix(name: string): string {
    const dir = join(tmp, name);
    mkdirSync(dir, { recursive: true });
    return dir;
  }

  /** one clear line on stderr, a non-zero exit */
  function assertFailed(res: { code: number | null; stderr: string }, pattern: RegExp): void {
    assert.equal(res.code, 1, res.stderr);
    const lines = res.stderr.trimEnd().split("\n");
    assert.equal(lines.length, 1, res.stderr);
    assert.match(lines[0], /^install\.sh: /);
    assert.match(lines[0], pattern);
  }

  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), "acts-install-"));
    chmodSync(tmp, 0o755);
    mkdirSync(join(tmp, "home"));
    const binary = hostBinary();
    realVersion = spawnSync(binary, ["-v"], { encoding: "utf8" }).stdout.trim();
    const good = fake("9.9.9-latest");
    const truncated = Buffer.from(fake("1.0.0-cut").repeat(1000));
    mirror = await startMirror({
      "/v0.1.0/SHA256SUMS": {
        body: sha256sums({
          "anycable-ts-darwin-arm64": sha256("other"),
          [ASSET]: sha256File(binary),
          "anycable-ts-windows-x64.exe": sha256("other"),
        }),
      },
      [`/v0.1.0/${ASSET}`]: { file: binary },
      "/latest/SHA256SUMS": { body: `${sha256(good).toUpperCase()} *${ASSET}\n` },
      [`/latest/${ASSET}`]: { body: good },
      "/v1.0.0-bad/SHA256SUMS": { body: sha256sums({ [ASSET]: sha256("something else") }) },
      [`/v1.0.0-bad/${ASSET}`]: { body: fake("1.0.0-bad") },
      "/v1.0.0-gone/SHA256SUMS": { body: sha256sums({ [ASSET]: sha256(good) }) },
      "/v1.0.0-cut/SHA256SUMS": { body: sha256sums({ [ASSET]: sha256(truncated) }) },
      [`/v1.0.0-cut/${ASSET}`]: { truncated: truncated.subarray(0, 4000), announce: truncated.length },
      "/v1.0.0-other/SHA256SUMS": {
        body: sha256sums({
          "anycable-ts-linux-arm64": sha256(fake("arm64")),
          "anycable-ts-linux-x64-musl": sha256(fake("musl")),
        }),
      },
      "/v1.0.0-other/anycable-ts-linux-arm64": { body: fake("arm64") },
      "/v1.0.0-other/anycable-ts-linux-x64-musl": { body: fake("musl") },
    });
  });

  afterAll(async () => {
    await mirror?.close();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it("is POSIX sh and shellcheck-clean", () => {
    const res = spawnSync("shellcheck", ["--shell=sh", INSTALL_SH], { encoding: "utf8" });
    assert.equal(res.error, undefined, "shellcheck is installed (apt-get install shellcheck)");
    assert.equal(res.status, 0, res.stdout);
    assert.equal(spawnSync("dash", ["-n", INSTALL_SH]).status, 0);
  });

  it("installs the verified release binary to --prefix, and as anycable-go with --as-anycable-go", async () => {
    const dir = prefix("good");
    mirror.requests.length = 0;
    const res = await install([
      "--base-url",
      mirror.url,
      "--version",
      "0.1.0",
      "--prefix",
      dir,
      "--as-anycable-go",
    ]);
    assert.equal(res.code, 0, res.stderr);
    assert.deepEqual(mirror.requests, ["/v0.1.0/SHA256SUMS", `/v0.1.0/${ASSET}`]);
    const installed = join(dir, "anycable-ts");
    assert.equal(sha256File(installed), sha256File(hostBinary()));
    assert.equal(statSync(installed).mode & 0o777, 0o755);
    assert.equal(readlinkSync(join(dir, "anycable-go")), "anycable-ts");
    assert.equal(
      spawnSync(join(dir, "anycable-go"), ["-v"], { encoding: "utf8" }).stdout.trim(),
      realVersion,
    );
    assert.match(
      res.stdout,
      new RegExp(`installed anycable-ts ${realVersion.replace(/\./g, "\\.")} to ${installed}`),
    );
    assert.deepEqual(readdirSync(dir).sort(), ["anycable-go", "anycable-ts"]);
  });

  it("ANYCABLE_TS_DOWNLOAD_URL and the default version `latest`; an upper-case `*name` SHA256SUMS line", async () => {
    const dir = prefix("latest");
    mirror.requests.length = 0;
    const res = await install(["--prefix", dir], { env: { ANYCABLE_TS_DOWNLOAD_URL: `${mirror.url}/` } });
    assert.equal(res.code, 0, res.stderr);
    assert.deepEqual(mirror.requests, ["/latest/SHA256SUMS", `/latest/${ASSET}`]);
    assert.equal(readFileSync(join(dir, "anycable-ts"), "utf8"), fake("9.9.9-latest"));
    assert.deepEqual(readdirSync(dir), ["anycable-ts"]);
  });

  it("refuses a checksum mismatch and leaves an installed binary untouched", async () => {
    const dir = prefix("mismatch");
    writeFileSync(join(dir, "anycable-ts"), "previous");
    const res = await install([
      "--base-url",
      mirror.url,
      "--version",
      "v1.0.0-bad",
      "--prefix",
      dir,
      "--as-anycable-go",
    ]);
    assertFailed(
      res,
      new RegExp(
        `checksum mismatch for ${ASSET}: SHA256SUMS says ${sha256("something else")}, the download is ${sha256(fake("1.0.0-bad"))}; nothing installed`,
      ),
    );
    assert.deepEqual(readdirSync(dir), ["anycable-ts"]);
    assert.equal(readFileSync(join(dir, "anycable-ts"), "utf8"), "previous");
  });

  it("404s: an unknown version, an asset missing from the release, an asset missing from SHA256SUMS", async () => {
    const dir = prefix("404");
    let res = await install(["--base-url", mirror.url, "--version", "7.7.7", "--prefix", dir]);
    assertFailed(res, new RegExp(`not found: ${mirror.url}/v7\\.7\\.7/SHA256SUMS \\(no release v7\\.7\\.7`));
    res = await install(["--base-url", mirror.url, "--version", "1.0.0-gone", "--prefix", dir]);
    assertFailed(res, new RegExp(`not found: ${mirror.url}/v1\\.0\\.0-gone/${ASSET} `));
    res = await install(["--base-url", mirror.url, "--version", "1.0.0-other", "--prefix", dir]);
    assertFailed(res, new RegExp(`SHA256SUMS lists no ${ASSET}; nothing installed`));
    assert.deepEqual(readdirSync(dir), []);
  });

  it("a download cut short", async () => {
    const dir = prefix("cut");
    const res = await install(["--base-url", mirror.url, "--version", "1.0.0-cut", "--prefix", dir]);
    assertFailed(res, new RegExp(`download of ${mirror.url}/v1\\.0\\.0-cut/${ASSET} was cut short`));
    assert.deepEqual(readdirSync(dir), []);
  });

  it("picks the arm64 and the musl assets; refuses an unknown arch and musl on arm64 before downloading", async () => {
    const dir = prefix("platforms");
    const base = ["--base-url", mirror.url, "--version", "1.0.0-other", "--prefix", dir];
    mirror.requests.length = 0;
    let res = await install(base, { tools: fakeTools({ machine: "aarch64" }) });
    assert.equal(res.code, 0, res.stderr);
    assert.equal(readFileSync(join(dir, "anycable-ts"), "utf8"), fake("arm64"));
    res = await install(base, { tools: fakeTools({ ldd: "musl libc (x86_64)\nVersion 1.2.4" }) });
    assert.equal(res.code, 0, res.stderr);
    assert.equal(readFileSync(join(dir, "anycable-ts"), "utf8"), fake("musl"));
    assert.deepEqual(mirror.requests, [
      "/v1.0.0-other/SHA256SUMS",
      "/v1.0.0-other/anycable-ts-linux-arm64",
      "/v1.0.0-other/SHA256SUMS",
      "/v1.0.0-other/anycable-ts-linux-x64-musl",
    ]);

    mirror.requests.length = 0;
    res = await install(base, { tools: fakeTools({ machine: "riscv64" }) });
    assertFailed(res, /unsupported architecture: riscv64 \(supported: x86_64\/amd64, aarch64\/arm64\)/);
    res = await install(base, { tools: fakeTools({ machine: "arm64", ldd: "musl libc (aarch64)" }) });
    assertFailed(res, /no musl build for linux-arm64/);
    assert.deepEqual(mirror.requests, []);
    assert.deepEqual(readdirSync(dir), ["anycable-ts"]);
  });

  // root writes anywhere: the no-write-access cases run as nobody then
  const asUser = isRoot ? NOBODY : undefined;

  it("a prefix without write access: one line, before any download, nothing written", async () => {
    const dir = prefix("readonly");
    if (!isRoot) chmodSync(dir, 0o555);
    mirror.requests.length = 0;
    const res = await install(["--base-url", mirror.url, "--version", "0.1.0", "--prefix", dir], {
      uid: asUser,
    });
    assertFailed(res, new RegExp(`no write access to ${dir}; pick another --prefix`));
    const nested = await install(["--base-url", mirror.url, "--prefix", join(dir, "sub", "bin")], {
      uid: asUser,
    });
    assertFailed(nested, new RegExp(`cannot create ${dir}/sub/bin`));
    assert.deepEqual(mirror.requests, []);
    assert.deepEqual(readdirSync(dir), []);
  });

  it.if(isRoot || !writable("/usr/local/bin"))(
    "without --prefix and no write access to /usr/local/bin: installs to ~/.local/bin",
    async () => {
      const home = prefix("nobody-home");
      if (isRoot) chownSync(home, NOBODY, NOBODY);
      const res = await install(["--base-url", mirror.url], { uid: asUser, env: { HOME: home } });
      assert.equal(res.code, 0, res.stderr);
      const installed = join(home, ".local", "bin", "anycable-ts");
      assert.equal(readFileSync(installed, "utf8"), fake("9.9.9-latest"));
      if (isRoot) assert.equal(lstatSync(installed).uid, NOBODY);
      assert.match(res.stdout, new RegExp(`note: ${home}/\\.local/bin is not on your PATH`));
    },
  );
});
