// Starting a benchmark target on a free port: the raw Bun and Deno baselines and anycable-ts under
// Bun or Deno, inside bench/lib/gc_host.ts so the coordinator can force a collection before reading
// memory; and anycable-go, the binary named by ANYCABLE_GO_BIN (built by hand from its source, never
// by a script here), with the same flags.
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

/** Targets that collect garbage on SIGUSR2 (gc_host); Go's default for SIGUSR2 is to exit. */
export function collectsOnSignal(target: string): boolean {
  return target !== "anycable-go";
}

/** Targets runnable here: anycable-go only with ANYCABLE_GO_BIN (one line says so otherwise). */
export function availableTargets(targets: string[]): string[] {
  if (!targets.includes("anycable-go") || process.env.ANYCABLE_GO_BIN) return targets;
  console.log("anycable-go target skipped: set ANYCABLE_GO_BIN to an anycable-go binary to bench beside it");
  return targets.filter((t) => t !== "anycable-go");
}

/**
 * The -ext targets: anycable-ts with the memory broker, its clients on the extended protocol with
 * reliable streams (history on subscribe, a session snapshot each in the broker).
 */
export function clientTransport(target: string): "ws" | "ext" {
  return target.endsWith("-ext") ? "ext" : "ws";
}

/** Every fan-out target runs inside bench/lib/gc_host.ts, which collects garbage on SIGUSR2. */
export function serverCommand(
  target: string,
  port: number,
  extraArgs: string[] = [],
  opts: { pings?: boolean } = {},
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
    case "raw-deno": {
      const raw = [`--port=${port}`, ...(opts.pings ? ["--pings"] : [])];
      const module = join(ROOT, "bench", "baselines", `${target}.ts`);
      return target === "raw-bun"
        ? [join(BIN, "bun"), [GC_HOST, ...raw], module]
        : [join(BIN, "deno"), ["run", "-A", "--v8-flags=--expose-gc", GC_HOST, ...raw], module];
    }
    case "anycable-go": {
      const bin = process.env.ANYCABLE_GO_BIN;
      if (!bin) throw new Error("the anycable-go target needs ANYCABLE_GO_BIN");
      return [bin, tsArgs, ""];
    }
    case "ts-bun":
      return [join(BIN, "bun"), [GC_HOST, ...tsArgs], main];
    case "ts-deno":
      return [join(BIN, "deno"), ["run", "-A", "--v8-flags=--expose-gc", GC_HOST, ...tsArgs], main];
    case "ts-bun-ext":
      return [join(BIN, "bun"), [GC_HOST, ...tsArgs, "--broker=memory"], main];
    case "ts-deno-ext":
      return [
        join(BIN, "deno"),
        ["run", "-A", "--v8-flags=--expose-gc", GC_HOST, ...tsArgs, "--broker=memory"],
        main,
      ];
    default:
      throw new Error(`unknown target ${target}`);
  }
}

export async function startTarget(
  target: string,
  extraArgs: string[] = [],
  opts: { pings?: boolean } = {},
): Promise<{ proc: ChildProcess; port: number }> {
  const port = await freePort();
  // For looking into a run: BENCH_SERVER_ARGS adds server flags (e.g. --log_level=debug),
  // BENCH_SERVER_LOG keeps the server's log in a file.
  const envArgs = process.env.BENCH_SERVER_ARGS?.split(" ").filter(Boolean) ?? [];
  const [cmd, args, module] = serverCommand(target, port, [...extraArgs, ...envArgs], opts);
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
