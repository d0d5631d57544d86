// The Docker image without Docker (base images cannot be pulled here). release/docker/Dockerfile
// is read and its build context staged by release/docker/stage.sh; then the image's root
// filesystem is made twice: assembled by hand from what the base image provides plus exactly
// what the Dockerfile's COPY lines add, and built from the Dockerfile itself by buildah
// (--pull=never, on a stand-in base image with the base's name). Each runs the server as a
// container would: new mount and PID namespaces (the server is PID 1, as under `docker run`),
// / the image root, /proc mounted, the image's USER, its ENTRYPOINT with arguments after it, an
// empty environment. It serves /health and a WebSocket subscribe + broadcast, and SIGTERM
// (`docker stop`) ends it with exit code 0. The built image also runs with embedded NATS
// (--embed_nats, with the image's PATH as `docker run` passes it): the image's nats-server
// starts inside it and publications reach the client through it.
//
// The base layer stands in for gcr.io/distroless/cc-debian12:nonroot with the same Debian 12
// pieces taken from this Debian 12 machine: the glibc files the binary links (ldd),
// ca-certificates, /etc/passwd and /etc/group with the nonroot user (65532), nsswitch.conf, /tmp,
// /home/nonroot. The stage `docker.io/library/nats:2.12` stands in with Debian's nats-server at
// /nats-server, where the official image has its own. The runtime adds /etc/hosts and the basic
// /dev nodes, as Docker does. Needs root (namespaces, chroot, mknod), buildah (Debian's) and
// nats-server (.ci/run installs both).

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
import { connect as natsConnect } from "@nats-io/transport-node";
import { hostBinary, sha256File, waitHealthy } from "../support/dist.ts";
import { freePort } from "../support/ports.ts";
import { publish } from "../support/publish.ts";
import { e2eRuntimes, ROOT } from "../support/server.ts";
import { hasService } from "../support/services.ts";
import { waitFor } from "../support/wait.ts";
import { connect } from "../support/ws_client.ts";

const isRoot = process.getuid?.() === 0;
const enabled =
  e2eRuntimes(["binary"]).length > 0 &&
  process.platform === "linux" &&
  process.arch === "x64" &&
  isRoot &&
  hasService("nats-server");
const DOCKERFILE = join(ROOT, "release", "docker", "Dockerfile");
const PLATFORM = "linux/amd64";
const BASE = "gcr.io/distroless/cc-debian12:nonroot";
const NATS_IMAGE = "docker.io/library/nats:2.12";
/** Debian's nats-server (dynamically linked against glibc, which the base layer has). */
const NATS_SERVER = spawnSync("sh", ["-c", "command -v nats-server"], { encoding: "utf8" }).stdout.trim();

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

/** The stand-in for the official NATS image: its nats-server at /nats-server. */
function natsStage(dir: string): void {
  mkdirSync(dir, { recursive: true });
  copyFileSync(NATS_SERVER, join(dir, "nats-server"));
  chmodSync(join(dir, "nats-server"), 0o755);
}

/**
 * /usr/local/bin/anycable-ts is the release binary (0755), anycable-go a symlink to it, and
 * nats-server the NATS image's.
 */
function assertBinaries(rootfs: string): void {
  const bin = join(rootfs, "usr", "local", "bin");
  assert.deepEqual(readdirSync(bin).sort(), ["anycable-go", "anycable-ts", "nats-server"]);
  assert.equal(sha256File(join(bin, "anycable-ts")), sha256File(hostBinary()));
  assert.equal(statSync(join(bin, "anycable-ts")).mode & 0o777, 0o755);
  assert.equal(readlinkSync(join(bin, "anycable-go")), "anycable-ts");
  assert.equal(sha256File(join(bin, "nats-server")), sha256File(NATS_SERVER));
  assert.ok((statSync(join(bin, "nats-server")).mode & 0o111) !== 0, "nats-server is executable");
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

interface Container {
  port: number;
  /** the server process (PID 1 of the container), as seen from outside */
  pid: string;
  output(): string;
}

const pubsubId = (stream: string) => JSON.stringify({ channel: "$pubsub", stream_name: stream });

/** A client subscribed to a public stream of the container's server. */
async function subscriber(c: Container, stream: string) {
  const id = pubsubId(stream);
  const ws = await connect(`ws://127.0.0.1:${c.port}/cable`);
  await ws.next((m) => m.type === "welcome", "welcome");
  ws.send({ command: "subscribe", identifier: id });
  await ws.next((m) => m.type === "confirm_subscription", "confirm");
  return ws;
}

/** /health is up, a WebSocket client subscribes, an HTTP broadcast reaches it. */
async function subscribeAndBroadcast(c: Container): Promise<Awaited<ReturnType<typeof subscriber>>> {
  const ws = await subscriber(c, "image");
  const res = await publish(`http://127.0.0.1:${c.port}/_broadcast`, {
    stream: "image",
    data: '{"from":"image"}',
  });
  assert.equal(res.status, 201);
  assert.deepEqual((await ws.next((m) => m.identifier === pubsubId("image"), "broadcast")).message, {
    from: "image",
  });
  return ws;
}

/**
 * `docker run --network host <image> --port=<p> --public --norpc --secret=image
 * --broadcast_adapter=http [args]`, then `docker stop`: the entrypoint as PID 1 of new mount and
 * PID namespaces, / the image root, /proc mounted, as `user`, with the environment `env` (empty
 * unless given). `exercise` drives it once /health answers and returns the client that must see
 * `server_restart` on SIGTERM.
 */
async function runImage(
  rootfs: string,
  user: string,
  entrypoint: string[],
  opts: {
    env?: Record<string, string>;
    args?: string[];
    exercise?: (c: Container) => Promise<Awaited<ReturnType<typeof subscriber>>>;
  } = {},
): Promise<void> {
  const port = await freePort();
  const [uid, gid] = user.split(":");
  const env = opts.env ?? {};
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
      ...(opts.args ?? []),
    ],
    { env, stdio: ["ignore", "pipe", "pipe"] },
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
    // the server process: child of unshare, in the image root, uid 65532, only the given environment
    const pid = await waitFor(
      () => readFileSync(`/proc/${proc.pid}/task/${proc.pid}/children`, "utf8").trim().split(/\s+/)[0],
      "server pid",
    );
    assert.equal(readlinkSync(`/proc/${pid}/root`), rootfs);
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    assert.match(status, new RegExp(`^Uid:\\s+${uid}\\s+${uid}\\s+${uid}\\s+${uid}$`, "m"));
    assert.match(status, /^NSpid:\s+\d+\s+1$/m, "PID 1 in its namespace");
    assert.equal(
      readFileSync(`/proc/${pid}/environ`, "utf8"),
      Object.entries(env)
        .map(([k, v]) => `${k}=${v}\0`)
        .join(""),
    );

    const c = await (opts.exercise ?? subscribeAndBroadcast)({ port, pid, output: () => out });
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

  it("Dockerfile: distroless cc nonroot, nats-server from the NATS image, EXPOSE 8080, no ENV, non-root USER, ENTRYPOINT the binary", () => {
    const ops = (op: string) => instructions.filter((i) => i.op === op).map((i) => i.args);
    assert.deepEqual(ops("FROM"), [`${NATS_IMAGE} AS nats`, BASE]);
    assert.deepEqual(ops("COPY"), [
      // biome-ignore lint/suspicious/noTemplateCurlyInString: the Dockerfile's own ${TARGETPLATFORM}
      "--chmod=0755 ${TARGETPLATFORM}/ /usr/local/bin/",
      "--from=nats /nats-server /usr/local/bin/nats-server",
    ]);
    assert.deepEqual(ops("ENV"), []);
    assert.deepEqual(ops("ARG"), ["TARGETPLATFORM"]);
    assert.deepEqual(ops("EXPOSE"), ["8080"]);
    assert.deepEqual(ops("USER"), ["65532:65532"]);
    assert.deepEqual(JSON.parse(ops("ENTRYPOINT")[0]), ["/usr/local/bin/anycable-ts"]);
    assert.deepEqual(ops("CMD"), []);
    assert.deepEqual(
      instructions.map((i) => i.op),
      ["FROM", "FROM", "ARG", "COPY", "COPY", "USER", "EXPOSE", "ENTRYPOINT"],
      "nothing else is added to the image",
    );
  });

  it("the root fs (base + the COPY lines) runs the server as PID 1, non-root, with an empty environment: /health, subscribe + broadcast, SIGTERM", async () => {
    const rootfs = join(tmp, "rootfs");
    // the stages: the NATS image's stand-in, then the base; the last FROM is the image
    const stages = new Map<string, string>();
    for (const { op, args } of instructions.filter((i) => i.op === "FROM")) {
      const [image, , name] = args.split(/\s+/);
      if (image === NATS_IMAGE) natsStage(join(tmp, "stage-nats"));
      if (name) stages.set(name, join(tmp, "stage-nats"));
      else assert.equal(image, BASE);
      assert.equal(op, "FROM");
    }
    baseLayer(rootfs);
    // the Dockerfile's own layer: its COPY lines, nothing else
    let entrypoint: string[] = [];
    let user = "";
    for (const { op, args } of instructions) {
      if (op === "COPY") {
        const words = args.split(/\s+/);
        const chmod = words.find((w) => w.startsWith("--chmod="))?.slice("--chmod=".length);
        const stage = words.find((w) => w.startsWith("--from="))?.slice("--from=".length);
        const [src, dest] = words.filter((w) => !w.startsWith("--"));
        const from = stage
          ? join(stages.get(stage) ?? assert.fail(`no stage ${stage}`), src)
          : join(context, src.replace(/\$\{TARGETPLATFORM\}/g, PLATFORM));
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
  it("buildah builds the Dockerfile (linux/amd64, --pull=never); the image's config and root fs run the same way, also with embedded NATS", async () => {
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
    const natsDir = join(tmp, "nats-image");
    natsStage(natsDir);
    const natsFrom = buildah("from", "scratch");
    buildah("copy", natsFrom, `${natsDir}/`, "/");
    buildah("commit", "-q", "--rm", natsFrom, NATS_IMAGE);
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

      // embedded NATS: the image's nats-server, found on the PATH `docker run` passes (the
      // image's Env), runs inside the container; a publication PUBlished to it and one made over
      // HTTP (fanned out through NATS pub/sub) reach the client
      const natsPort = await freePort();
      await runImage(rootfs, config.User!, config.Entrypoint!, {
        env: Object.fromEntries(
          (config.Env ?? []).map((e) => e.split(/=(.*)/s).slice(0, 2) as [string, string]),
        ),
        args: [
          "--embed_nats",
          `--enats_addr=nats://127.0.0.1:${natsPort}`,
          "--pubsub=nats",
          "--broadcast_adapter=http,nats",
        ],
        async exercise(c) {
          const started = /Embedded NATS server started: nats:\/\/127\.0\.0\.1:(\d+) .*pid: (\d+)\)/.exec(
            c.output(),
          );
          assert.ok(started, c.output());
          assert.equal(Number(started[1]), natsPort);
          // the child runs from the image: its root is the image's, its executable the image's nats-server
          const child = readFileSync(`/proc/${c.pid}/task/${c.pid}/children`, "utf8").trim().split(/\s+/);
          assert.equal(child.length, 1, "one child: nats-server");
          assert.equal(readlinkSync(`/proc/${child[0]}/root`), rootfs);
          assert.equal(
            readlinkSync(`/proc/${child[0]}/exe`),
            join(rootfs, "usr", "local", "bin", "nats-server"),
          );

          const ws = await subscribeAndBroadcast(c);
          const nats = await natsConnect({ servers: `nats://127.0.0.1:${natsPort}` });
          try {
            nats.publish("__anycable__", JSON.stringify({ stream: "image", data: '{"via":"nats"}' }));
            await nats.flush();
          } finally {
            await nats.close();
          }
          assert.deepEqual(
            (await ws.next((m) => m.identifier === pubsubId("image"), "NATS broadcast")).message,
            {
              via: "nats",
            },
          );
          return ws;
        },
      });

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
