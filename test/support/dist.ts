// Helpers for the distribution tests (npm launcher, install.sh, Heroku buildpack, Docker root fs):
// a local HTTP mirror laid out like a GitHub release download path that records its requests,
// the host release binary, and a child-process runner.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, existsSync, readFileSync, statSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { hostBinaryPath, ROOT } from "./server.ts";
import { StopWaiting, waitFor } from "./wait.ts";

/** One path of the mirror: a file from disk, a body, a status, or a body cut short. */
export type Route =
  | { file: string }
  | { body: string | Buffer }
  | { status: number }
  /** announces `announce` bytes, sends `body`, then drops the connection */
  | { truncated: Buffer; announce: number };

export interface Mirror {
  url: string;
  /** request paths in arrival order */
  requests: string[];
  routes: Map<string, Route>;
  close(): Promise<void>;
}

export async function startMirror(routes: Record<string, Route> = {}): Promise<Mirror> {
  const table = new Map(Object.entries(routes));
  const requests: string[] = [];
  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    requests.push(path);
    const route = table.get(path);
    if (!route || "status" in route) {
      res.writeHead(route && "status" in route ? route.status : 404, { "content-type": "text/plain" });
      res.end("Not Found");
    } else if ("file" in route) {
      res.writeHead(200, {
        "content-type": "application/octet-stream",
        "content-length": statSync(route.file).size,
      });
      createReadStream(route.file).pipe(res);
    } else if ("body" in route) {
      const body = Buffer.from(route.body);
      res.writeHead(200, { "content-type": "application/octet-stream", "content-length": body.length });
      res.end(body);
    } else {
      res.writeHead(200, { "content-type": "application/octet-stream", "content-length": route.announce });
      res.write(route.truncated, () => res.socket?.destroy());
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    routes: table,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export function sha256(data: Buffer | string): string {
  return createHash("sha256").update(data).digest("hex");
}

const fileSums = new Map<string, string>();
export function sha256File(path: string): string {
  let sum = fileSums.get(path);
  if (!sum) {
    sum = sha256(readFileSync(path));
    fileSums.set(path, sum);
  }
  return sum;
}

/** `sha256sum` output for the given name -> file content hashes. */
export function sha256sums(entries: Record<string, string>): string {
  return Object.entries(entries)
    .map(([name, sum]) => `${sum}  ${name}\n`)
    .join("");
}

/**
 * The host release binary (dist/anycable-ts-<os>-<arch>): the test wrapper builds it before the
 * e2e step; when missing (a single test file run by hand) only the host target is built.
 */
export function hostBinary(): string {
  const bin = hostBinaryPath();
  if (!existsSync(bin)) {
    const res = spawnSync(join(ROOT, "node_modules", ".bin", "bun"), ["release/build.ts", "--host"], {
      cwd: ROOT,
      stdio: "inherit",
    });
    if (res.status !== 0 || !existsSync(bin)) throw new Error(`could not build ${bin}`);
  }
  return bin;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  cwd?: string;
  env?: Record<string, string | undefined>;
  timeoutMs?: number;
  /** spawn options passed through (e.g. uid/gid to run as another user) */
  uid?: number;
  gid?: number;
}

/** Runs a command to completion (killed after timeoutMs) and collects its output. */
export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const child = spawn(cmd, args, {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    stdio: ["ignore", "pipe", "pipe"],
    uid: opts.uid,
    gid: opts.gid,
  });
  return collect(child, opts.timeoutMs ?? 60_000, `${cmd} ${args.join(" ")}`);
}

function collect(child: ChildProcess, timeoutMs: number, what: string): Promise<RunResult> {
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (d) => {
    stdout += d.toString();
  });
  child.stderr?.on("data", (d) => {
    stderr += d.toString();
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${what} did not finish within ${timeoutMs} ms\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** A long-running child (a server behind a launcher): output so far, wait for text, the end. */
export interface Running {
  proc: ChildProcess;
  output(): string;
  waitForOutput(text: string | RegExp, timeoutMs?: number): Promise<void>;
  done: Promise<RunResult>;
}

export function start(cmd: string, args: string[], opts: RunOptions = {}): Running {
  const proc = spawn(cmd, args, {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const done = collect(proc, opts.timeoutMs ?? 60_000, `${cmd} ${args.join(" ")}`);
  let out = "";
  proc.stdout?.on("data", (d) => {
    out += d.toString();
  });
  proc.stderr?.on("data", (d) => {
    out += d.toString();
  });
  return {
    proc,
    output: () => out,
    async waitForOutput(text, timeoutMs = 15_000) {
      await waitFor(
        () => (typeof text === "string" ? out.includes(text) : text.test(out)),
        `output ${text}`,
        timeoutMs,
      );
    },
    done,
  };
}

/** Polls GET url until it answers 200 (or the process behind it exits). */
export async function waitHealthy(
  url: string,
  running?: { done: Promise<unknown>; output(): string },
  timeoutMs = 30_000,
): Promise<void> {
  let exited = false;
  running?.done.then(
    () => {
      exited = true;
    },
    () => {
      exited = true;
    },
  );
  await waitFor(
    async () => {
      if (exited) throw new StopWaiting(`process exited before ${url} was healthy:\n${running?.output()}`);
      const res = await fetch(url).catch(() => undefined);
      return res?.status === 200;
    },
    `${url} healthy`,
    timeoutMs,
    50,
  );
}

/** A minimal environment for child processes (no inherited ANYCABLE_* etc.). */
export function cleanEnv(extra: Record<string, string> = {}): Record<string, string> {
  return {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: process.env.HOME ?? "/tmp",
    NO_COLOR: "1",
    ...extra,
  };
}
