// anycable-ts CLI: `bun src/main.ts [flags]` or `deno run -A src/main.ts [flags]`.
import { runCli } from "./cli.ts";
import type { Runtime } from "./runtime/types.ts";

async function detectRuntime(): Promise<Runtime> {
  if ("Bun" in globalThis) return (await import("./runtime/bun.ts")).bunRuntime;
  // A computed specifier keeps Bun-typed tooling (tsc, bun build) from pulling in Deno's types.
  const denoAdapter = "./runtime/deno.ts";
  if ("Deno" in globalThis) return ((await import(denoAdapter)) as { denoRuntime: Runtime }).denoRuntime;
  throw new Error("anycable-ts runs under Bun or Deno");
}

const runtime = await detectRuntime();
await runCli(process.argv.slice(2), process.env, runtime);
