// Starting a benchmark target (raw Bun baseline, anycable-ts under Bun or Deno) on a free port,
// inside bench/lib/gc_host.ts so the coordinator can force a collection before reading memory.
import { type ChildProcess, spawn } from "node:child_process";
import { openSync } from "node:fs";
import { join } from "node:path";

const ROOT = join(import.meta.dir, "..", "..");
const BIN = join(ROOT, "node_modules", ".bin");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function freePort(): Promise<number> {
  const { createServer } = await import("node:net");
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

const GC_HOST = join(ROOT, "bench", "lib", "gc_host.ts");

/** Every fan-out target runs inside bench/lib/gc_host.ts, which collects garbage on SIGUSR2. */
export function serverCommand(
  target: string,
  port: number,
  extraArgs: string[] = [],
): [string, string[], string] {
  const tsArgs = [
    `--port=${port}`,
    "--host=127.0.0.1",
    "--public",
    "--norpc",
    "--secret=bench",
    // anycable-go's default adds the redis adapter, which retries a missing Redis and then exits
    "--broadcast_adapter=http",
    "--log_level=error",
    ...extraArgs,
  ];
  const main = join(ROOT, "src", "main.ts");
  switch (target) {
    case "raw-bun":
      return [join(BIN, "bun"), [GC_HOST, `--port=${port}`], join(ROOT, "bench", "baselines", "raw-bun.ts")];
    case "ts-bun":
      return [join(BIN, "bun"), [GC_HOST, ...tsArgs], main];
    case "ts-deno":
      return [join(BIN, "deno"), ["run", "-A", "--v8-flags=--expose-gc", GC_HOST, ...tsArgs], main];
    default:
      throw new Error(`unknown target ${target}`);
  }
}

export async function startTarget(
  target: string,
  extraArgs: string[] = [],
): Promise<{ proc: ChildProcess; port: number }> {
  const port = await freePort();
  // For looking into a run: BENCH_SERVER_ARGS adds server flags (e.g. --log_level=debug),
  // BENCH_SERVER_LOG keeps the server's log in a file.
  const envArgs = process.env.BENCH_SERVER_ARGS?.split(" ").filter(Boolean) ?? [];
  const [cmd, args, module] = serverCommand(target, port, [...extraArgs, ...envArgs]);
  const log = process.env.BENCH_SERVER_LOG;
  const proc = spawn(cmd, args, {
    stdio: ["ignore", log ? openSync(log, "a") : "ignore", "inherit"],
    env: { ...process.env, BENCH_SERVER_MODULE: module },
  });
  for (let i = 0; i < 200; i++) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}/health`)).ok) return { proc, port };
    } catch {
      // not listening yet
    }
    await sleep(50);
  }
  proc.kill("SIGKILL");
  throw new Error(`${target} did not start`);
}
