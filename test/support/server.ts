// Starts the real server as a separate process (Bun, Deno or the compiled binary) on free ports.
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { loadConfig } from "../../src/config/index.ts";
import { freePort } from "./ports.ts";
import { StopWaiting, waitFor } from "./wait.ts";

export const ROOT = join(import.meta.dir, "..", "..");
const BIN = join(ROOT, "node_modules", ".bin");

export type ServerRuntime = "bun" | "deno" | "binary";

/**
 * The runtimes an e2e file runs under: those of `supported` that E2E_RUNTIMES enables (the test
 * wrapper sets it; default bun,deno). Every e2e file calls this with a literal list, which is
 * its declaration: test/run.mjs reads it from the source and fails the run when a declared,
 * enabled runtime produced no results for that file (describes are named `[runtime] ...`).
 */
export function e2eRuntimes<R extends ServerRuntime>(supported: readonly R[]): R[] {
  const enabled = (process.env.E2E_RUNTIMES ?? "bun,deno").split(",").map((r) => r.trim());
  return supported.filter((r) => enabled.includes(r));
}

export function hostBinaryPath(): string {
  const os = process.platform === "win32" ? "windows" : process.platform;
  const arch = process.arch === "arm64" ? "arm64" : "x64";
  return join(ROOT, "dist", `anycable-ts-${os}-${arch}${os === "windows" ? ".exe" : ""}`);
}

export function commandFor(runtime: ServerRuntime): [string, string[]] {
  switch (runtime) {
    case "bun":
      return [join(BIN, "bun"), [join(ROOT, "src", "main.ts")]];
    case "deno":
      return [join(BIN, "deno"), ["run", "-A", join(ROOT, "src", "main.ts")]];
    case "binary": {
      const bin = hostBinaryPath();
      if (!existsSync(bin)) throw new Error(`${bin} is missing: run npm run build first`);
      return [bin, []];
    }
  }
}

export interface ServerProcess {
  runtime: ServerRuntime;
  port: number;
  url: string;
  wsUrl: string;
  proc: ChildProcess;
  output(): string;
  /** Resolves with the exit code once the process has exited. */
  exited: Promise<number | null>;
  waitForOutput(pattern: RegExp | string, timeoutMs?: number): Promise<void>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export interface StartOptions {
  args?: string[];
  env?: Record<string, string>;
  /** Set when the test passes its own --port (e.g. 0 tests); otherwise a free port is chosen. */
  port?: number;
  cwd?: string;
  /** Skip waiting for health (for processes expected to fail or serving TLS). */
  noWait?: boolean;
  /** Health path to poll (--health-path), default /health. */
  healthPath?: string;
}

const running = new Set<ServerProcess>();

/**
 * anycable-go serves unauthenticated HTTP broadcasts on the fixed port 8090: a server configured
 * that way gets a free port instead, so suites running side by side on one machine do not collide.
 */
async function broadcastPortArgs(serverArgs: string[], opts: StartOptions): Promise<string[]> {
  const cwd = opts.cwd ?? ROOT;
  const loaded = loadConfig({
    argv: serverArgs,
    env: opts.env ?? {},
    readFile: (path) => {
      try {
        return readFileSync(resolve(cwd, path), "utf8");
      } catch {
        return undefined;
      }
    },
  });
  if (loaded.kind !== "run") return [];
  const { config } = loaded;
  if (!config.broadcast_adapter.includes("http") || config.http_broadcast_port !== 0) return [];
  if (config.derived.broadcastPort === config.port) return [];
  return [`--http_broadcast_port=${await freePort()}`];
}

export async function startServer(runtime: ServerRuntime, opts: StartOptions = {}): Promise<ServerProcess> {
  const port = opts.port ?? (await freePort());
  const [cmd, base] = commandFor(runtime);
  const serverArgs = [`--port=${port}`, "--host=127.0.0.1", ...(opts.args ?? [])];
  const args = [...base, ...serverArgs, ...(await broadcastPortArgs(serverArgs, opts))];
  const proc = spawn(cmd, args, {
    cwd: opts.cwd ?? ROOT,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", NO_COLOR: "1", ...opts.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  proc.stdout?.on("data", (d) => {
    out += d.toString();
  });
  proc.stderr?.on("data", (d) => {
    out += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => proc.on("exit", (code) => resolve(code)));
  // "close" comes after the last output: the log of a process that died is complete only then
  const closed = new Promise<void>((resolve) => proc.on("close", () => resolve()));
  let hasExited = false;
  let exitCode: number | null = null;
  exited.then((code) => {
    hasExited = true;
    exitCode = code;
  });
  const server: ServerProcess = {
    runtime,
    port,
    url: `http://127.0.0.1:${port}`,
    wsUrl: `ws://127.0.0.1:${port}/cable`,
    proc,
    output: () => out,
    exited,
    async waitForOutput(pattern, timeoutMs = 10_000) {
      await waitFor(
        () => (typeof pattern === "string" ? out.includes(pattern) : pattern.test(out)),
        `server output ${pattern}\n--- output so far ---\n${out}`,
        timeoutMs,
      );
    },
    async stop(signal = "SIGTERM") {
      running.delete(server);
      if (!hasExited) proc.kill(signal);
      const timer = setTimeout(() => proc.kill("SIGKILL"), 10_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
  running.add(server);
  if (!opts.noWait) {
    try {
      await waitFor(
        async () => {
          // a dead server never gets healthy: fail now, not after the health timeout
          if (hasExited) throw new StopWaiting(`${runtime} server exited during start-up (code ${exitCode})`);
          const res = await fetch(`${server.url}${opts.healthPath ?? "/health"}`);
          return res.status === 200;
        },
        `/health of ${runtime} server`,
        30_000,
        50,
      );
    } catch (err) {
      await server.stop("SIGKILL");
      await Promise.race([closed, new Promise((r) => setTimeout(r, 2000))]);
      throw new Error(`${(err as Error).message}\n--- server output (last lines) ---\n${tail(out, 40)}`);
    }
  }
  return server;
}

function tail(text: string, lines: number): string {
  return text.trimEnd().split("\n").slice(-lines).join("\n");
}

export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((s) => s.stop("SIGKILL")));
}
