// Starts anycable-ts (under Bun or Deno) for the Durable Streams conformance run: --ds on the
// in-memory broker, public streams, no client authentication, HTTP broadcasts with a key on the
// main port. Node APIs only (it runs inside vitest, on Node).
import { type ChildProcess, spawn } from "node:child_process";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const BIN = join(ROOT, "node_modules", ".bin");

export const DS_PATH = "/ds";
export const BROADCAST_KEY = "ds-conformance";
/** --ds_poll_interval: how long a long poll with nothing new waits before its 204. */
export const POLL_INTERVAL_S = 2;

export interface DsServer {
  url: string;
  output(): string;
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export async function startDsServer(runtime: string): Promise<DsServer> {
  const port = await freePort();
  const main = join(ROOT, "src", "main.ts");
  const [cmd, base] =
    runtime === "deno" ? [join(BIN, "deno"), ["run", "-A", main]] : [join(BIN, "bun"), [main]];
  if (runtime !== "bun" && runtime !== "deno") throw new Error(`unknown runtime ${runtime}`);
  const args = [
    ...base,
    `--port=${port}`,
    "--host=127.0.0.1",
    "--ds",
    `--ds_path=${DS_PATH}`,
    "--ds_skip_auth",
    "--public_streams",
    `--ds_poll_interval=${POLL_INTERVAL_S}`,
    "--norpc",
    "--broker=memory",
    "--history_limit=10000",
    "--broadcast_adapter=http",
    `--broadcast_key=${BROADCAST_KEY}`,
  ];
  const proc: ChildProcess = spawn(cmd, args, {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", NO_COLOR: "1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  proc.stdout?.on("data", (d) => {
    out += d.toString();
  });
  proc.stderr?.on("data", (d) => {
    out += d.toString();
  });
  const exited = new Promise<void>((resolve) => proc.on("exit", () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`server exited (${proc.exitCode}):\n${out}`);
    const ok = await fetch(`${url}/health`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    if (Date.now() > deadline) {
      proc.kill("SIGKILL");
      throw new Error(`server not healthy within 30 s:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    output: () => out,
    async stop() {
      if (proc.exitCode === null) proc.kill("SIGTERM");
      const timer = setTimeout(() => proc.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
