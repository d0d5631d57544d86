// The Docker image without Docker (base images cannot be pulled here). release/docker/Dockerfile
// is read and its build context staged by release/docker/stage.sh; then the image's root
// filesystem is made twice: assembled by hand from what the base image provides plus exactly
// what the Dockerfile's COPY lines add, and built from the Dockerfile itself by buildah
// (--pull=never, on a stand-in base image with the base's name). Each runs the server as a
// container would: new mount and PID namespaces (the server is PID 1, as under `docker run`),
// / the image root, /proc mounted, the image's USER, its ENTRYPOINT with arguments after it, an
// empty environment. It serves /health and a WebSocket subscribe + broadcast, and SIGTERM
// (`docker stop`) ends it with exit code 0.
//
// The base layer stands in for gcr.io/distroless/cc-debian12:nonroot with the same Debian 12
// pieces taken from this Debian 12 machine: the glibc files the binary links (ldd),
// ca-certificates, /etc/passwd and /etc/group with the nonroot user (65532), nsswitch.conf, /tmp,
// /home/nonroot. The runtime adds /etc/hosts and the basic /dev nodes, as Docker does. Needs
// root (namespaces, chroot, mknod) and buildah (Debian's; .ci/run installs it).

import { afterAll, beforeAll, describe, it } from "bun:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { hostBinary, sha256File, waitHealthy } from "../support/dist.ts";
import { freePort } from "../support/ports.ts";
import { publish } from "../support/publish.ts";
import { e2eRuntimes, ROOT } from "../support/server.ts";
import { waitFor } from "../support/wait.ts";
import { connect } from "../support/ws_client.ts";

const isRoot = process.getuid?.() === 0;
const enabled =
  e2eRuntimes(["binary"]).length > 0 && process.platform === "linux" && process.arch === "x64" && isRoot;
const DOCKERFILE = join(ROOT, "release", "docker", "Dockerfile");
const PLATFORM = "linux/amd64";
const BASE = "gcr.io/distroless/cc-debian12:nonroot";

interface Instruction {
  op: string;
  args: string;
}

/** Dockerfile instructions: comments dropped, continuation lines joined. */
function parseDockerfile(text: string): Instruction[] {
  const logical = text
    .split("\n")
    .filter((l) => !/^\s*#/.test(l))
    .join("\n")
    .replace(/\\\n/g, " ");
  return logical
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean)
    .map((l) => {
      const [, op, args] = l.match(/^(\S+)\s+(.*)$/)!;
      return { op: op.toUpperCase(), args };
    });
}

/** The base layer: distroless cc-debian12:nonroot's pieces, from this Debian 12. */
function baseLayer(dir: string): void {
  const ldd = spawnSync("ldd", [hostBinary()], { encoding: "utf8" }).stdout;
  const libs = [...ldd.matchAll(/(\/\S+) \(0x/g)].map((m) => m[1]);
  assert.ok(
    libs.some((l) => l.includes("libc.so.6")),
    ldd,
  );
  for (const lib of libs) {
    mkdirSync(join(dir, dirname(lib)), { recursive: true });
    copyFileSync(lib, join(dir, lib));
  }
  mkdirSync(join(dir, "etc", "ssl", "certs"), { recursive: true });
  if (existsSync("/etc/ssl/certs/ca-certificates.crt")) {
    copyFileSync(
      "/etc/ssl/certs/ca-certificates.crt",
      join(dir, "etc", "ssl", "certs", "ca-certificates.crt"),
    );
  }
  writeFileSync(
    join(dir, "etc", "passwd"),
    "root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n" +
      "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n",
  );
  writeFileSync(join(dir, "etc", "nsswitch.conf"), "hosts: files dns\n");
  writeFileSync(join(dir, "etc", "group"), "root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n");
  mkdirSync(join(dir, "tmp"));
  chmodSync(join(dir, "tmp"), 0o1777);
  mkdirSync(join(dir, "home", "nonroot"), { recursive: true });
  spawnSync("chown", ["65532:65532", join(dir, "home", "nonroot")]);
}

/** /usr/local/bin/anycable-ts is the release binary (0755), anycable-go a symlink to it. */
function assertBinaries(rootfs: string): void {
  const bin = join(rootfs, "usr", "local", "bin");
  assert.deepEqual(readdirSync(bin).sort(), ["anycable-go", "anycable-ts"]);
  assert.equal(sha256File(join(bin, "anycable-ts")), sha256File(hostBinary()));
  assert.equal(statSync(join(bin, "anycable-ts")).mode & 0o777, 0o755);
  assert.equal(readlinkSync(join(bin, "anycable-go")), "anycable-ts");
}

/** What the container runtime adds at run time: /etc/hosts, the basic /dev nodes, /proc's mount point. */
function runtimeLayer(rootfs: string): void {
  writeFileSync(join(rootfs, "etc", "hosts"), "127.0.0.1\tlocalhost\n");
  mkdirSync(join(rootfs, "proc"), { recursive: true });
  mkdirSync(join(rootfs, "dev"), { recursive: true });
  for (const [name, major, minor] of [
    ["null", 1, 3],
    ["zero", 1, 5],
    ["random", 1, 8],
    ["urandom", 1, 9],
  ] as const) {
    rmSync(join(rootfs, "dev", name), { force: true });
    const made = spawnSync("mknod", [
      "-m",
      "666",
      join(rootfs, "dev", name),
      "c",
      String(major),
      String(minor),
    ]);
    assert.equal(made.status, 0, `mknod /dev/${name}`);
  }
}

/**
 * `docker run --network host <image> --port=<p> --public --norpc --secret=image
 * --broadcast_adapter=http`, then `docker stop`: the entrypoint as PID 1 of new mount and PID
 * namespaces, / the image root, /proc mounted, as `user`, with an empty environment.
 */
async function runImage(rootfs: string, user: string, entrypoint: string[]): Promise<void> {
  const port = await freePort();
  const [uid, gid] = user.split(":");
  const proc = spawn(
    "/usr/bin/unshare",
    [
      "--mount",
      "--pid",
      "--fork",
      "--kill-child=SIGKILL",
      `--root=${rootfs}`,
      "--mount-proc",
      "--wd=/",
      `--setgid=${gid}`,
      `--setuid=${uid}`,
      ...entrypoint,
      `--port=${port}`,
      "--public",
      "--norpc",
      "--secret=image", // broadcasts on the main port
      "--broadcast_adapter=http",
    ],
    { env: {}, stdio: ["ignore", "pipe", "pipe"] },
  );
  let out = "";
  proc.stdout.on("data", (d) => {
    out += d.toString();
  });
  proc.stderr.on("data", (d) => {
    out += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => proc.on("exit", (code) => resolve(code)));
  try {
    await waitHealthy(`http://127.0.0.1:${port}/health`, { done: exited, output: () => out });
    // the server process: child of unshare, in the image root, uid 65532, no environment
    const pid = await waitFor(
      () => readFileSync(`/proc/${proc.pid}/task/${proc.pid}/children`, "utf8").trim().split(/\s+/)[0],
      "server pid",
    );
    assert.equal(readlinkSync(`/proc/${pid}/root`), rootfs);
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    assert.match(status, new RegExp(`^Uid:\\s+${uid}\\s+${uid}\\s+${uid}\\s+${uid}$`, "m"));
    assert.match(status, /^NSpid:\s+\d+\s+1$/m, "PID 1 in its namespace");
    assert.equal(readFileSync(`/proc/${pid}/environ`, "utf8"), "");

    const id = JSON.stringify({ channel: "$pubsub", stream_name: "image" });
    const c = await connect(`ws://127.0.0.1:${port}/cable`);
    await c.next((m) => m.type === "welcome", "welcome");
    c.send({ command: "subscribe", identifier: id });
    await c.next((m) => m.type === "confirm_subscription", "confirm");
    const res = await publish(`http://127.0.0.1:${port}/_broadcast`, {
      stream: "image",
      data: '{"from":"image"}',
    });
    assert.equal(res.status, 201);
    assert.deepEqual((await c.next((m) => m.identifier === id, "broadcast")).message, { from: "image" });

    process.kill(Number(pid), "SIGTERM");
    assert.equal((await c.next((m) => m.type === "disconnect", "server_restart")).reason, "server_restart");
    assert.equal(await exited, 0, out);
  } finally {
    proc.kill("SIGKILL");
  }
}

describe.if(enabled)("[binary] Docker image root filesystem", () => {
  let tmp: string;
  let instructions: Instruction[];
  let context: string;

  beforeAll(() => {
    tmp = mkdtempSync(join(tmpdir(), "acts-docker-"));
    instructions = parseDockerfile(readFileSync(DOCKERFILE, "utf8"));
    // the build context, staged the way the release workflow does
    const dist = join(tmp, "dist");
    mkdirSync(dist);
    linkSync(hostBinary(), join(dist, "anycable-ts-linux-x64"));
    const stage = spawnSync("sh", [join(ROOT, "release", "docker", "stage.sh"), dist], { encoding: "utf8" });
    assert.equal(stage.status, 0, stage.stderr);
    assert.equal(stage.stdout, "staged linux/amd64/anycable-ts\n");
    context = join(dist, "docker");
  });

  afterAll(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it("Dockerfile: distroless cc nonroot, EXPOSE 8080, no ENV, non-root USER, ENTRYPOINT the binary", () => {
    const ops = (op: string) => instructions.filter((i) => i.op === op).map((i) => i.args);
    assert.deepEqual(ops("FROM"), [BASE]);
    assert.deepEqual(ops("ENV"), []);
    assert.deepEqual(ops("ARG"), ["TARGETPLATFORM"]);
    assert.deepEqual(ops("EXPOSE"), ["8080"]);
    assert.deepEqual(ops("USER"), ["65532:65532"]);
    assert.deepEqual(JSON.parse(ops("ENTRYPOINT")[0]), ["/usr/local/bin/anycable-ts"]);
    assert.deepEqual(ops("CMD"), []);
    assert.deepEqual(
      instructions.map((i) => i.op),
      ["FROM", "ARG", "COPY", "USER", "EXPOSE", "ENTRYPOINT"],
      "nothing else is added to the image",
    );
  });

  it("the root fs (base + the COPY lines) runs the server as PID 1, non-root, with an empty environment: /health, subscribe + broadcast, SIGTERM", async () => {
    const rootfs = join(tmp, "rootfs");
    baseLayer(rootfs);
    // the Dockerfile's own layer: its COPY lines, nothing else
    let entrypoint: string[] = [];
    let user = "";
    for (const { op, args } of instructions) {
      if (op === "COPY") {
        const words = args.split(/\s+/);
        const chmod = words.find((w) => w.startsWith("--chmod="))?.slice("--chmod=".length);
        const [src, dest] = words.filter((w) => !w.startsWith("--"));
        const from = join(context, src.replace(/\$\{TARGETPLATFORM\}/g, PLATFORM));
        // a directory's entries go into dest (symlinks stay symlinks); a file goes to dest
        const entries = statSync(from).isDirectory()
          ? readdirSync(from).map((name) => [join(from, name), join(rootfs, dest, name)])
          : [[from, join(rootfs, dest.endsWith("/") ? join(dest, basename(from)) : dest)]];
        for (const [file, to] of entries) {
          mkdirSync(dirname(to), { recursive: true });
          if (lstatSync(file).isSymbolicLink()) symlinkSync(readlinkSync(file), to);
          else {
            copyFileSync(file, to);
            if (chmod) chmodSync(to, Number.parseInt(chmod, 8));
          }
        }
      } else if (op === "ENTRYPOINT") entrypoint = JSON.parse(args);
      else if (op === "USER") user = args;
    }
    assertBinaries(rootfs);
    runtimeLayer(rootfs);
    await runImage(rootfs, user, entrypoint);
  });

  // buildah (Debian's; .ci/run installs it) builds the Dockerfile itself, offline, on a stand-in
  // base image made from the same base layer and tagged with the base's name
  it("buildah builds the Dockerfile (linux/amd64, --pull=never); the image's config and root fs run the same way", async () => {
    const storage = join(tmp, "buildah");
    const buildah = (...args: string[]) => {
      const res = spawnSync(
        "buildah",
        [
          "--root",
          join(storage, "root"),
          "--runroot",
          join(storage, "run"),
          "--storage-driver",
          "vfs",
          ...args,
        ],
        { encoding: "utf8", maxBuffer: 1 << 26 },
      );
      assert.equal(res.error, undefined, "buildah is installed (apt-get install buildah)");
      assert.equal(res.status, 0, `buildah ${args.join(" ")}: ${res.stderr}`);
      return res.stdout.trim();
    };
    const base = join(tmp, "base");
    baseLayer(base);
    const from = buildah("from", "scratch");
    buildah("copy", from, `${base}/`, "/");
    buildah("commit", "-q", "--rm", from, BASE);
    buildah(
      "bud",
      "--pull=never",
      "--platform",
      PLATFORM,
      "-q",
      "-f",
      DOCKERFILE,
      "-t",
      "anycable-ts:test",
      context,
    );

    const config = (
      JSON.parse(buildah("inspect", "--type", "image", "anycable-ts:test")) as {
        OCIv1: {
          config: {
            User?: string;
            ExposedPorts?: object;
            Env?: string[];
            Entrypoint?: string[];
            Cmd?: string[];
          };
        };
      }
    ).OCIv1.config;
    assert.equal(config.User, "65532:65532");
    assert.deepEqual(Object.keys(config.ExposedPorts ?? {}), ["8080/tcp"]);
    assert.deepEqual(config.Entrypoint, ["/usr/local/bin/anycable-ts"]);
    assert.equal(config.Cmd, undefined);
    // buildah gives every image a default PATH; nothing else
    assert.deepEqual(
      (config.Env ?? []).filter((e) => !e.startsWith("PATH=")),
      [],
    );

    const container = buildah("from", "--pull=never", "anycable-ts:test");
    const rootfs = buildah("mount", container);
    try {
      assertBinaries(rootfs);
      runtimeLayer(rootfs);
      await runImage(rootfs, config.User!, config.Entrypoint!);
      // a command override written for anycable-go's image (/proc mounted: a bun --compile binary
      // reads itself through /proc/self/exe and prints nothing without it)
      const asGo = spawnSync(
        "/usr/bin/unshare",
        [
          "--mount",
          "--pid",
          "--fork",
          `--root=${rootfs}`,
          "--mount-proc",
          "--setgid=65532",
          "--setuid=65532",
          "/usr/local/bin/anycable-go",
          "-v",
        ],
        { env: {}, encoding: "utf8" },
      );
      assert.equal(asGo.stdout, spawnSync(hostBinary(), ["-v"], { encoding: "utf8" }).stdout, asGo.stderr);
    } finally {
      buildah("umount", container);
      buildah("rm", container);
    }
  });
});
