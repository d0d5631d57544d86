// Bench-only host for a target server: on SIGUSR2 it runs a full garbage collection, so the
// coordinator reads memory after a collection instead of whenever the collector last ran (JSC left
// 10k dead sessions on the heap for 10–20 s, which made RSS readings measure GC timing). The server
// module comes from BENCH_SERVER_MODULE so its argv stays exactly what it would be when run alone.
//   bun bench/lib/gc_host.ts --port=...            (Bun: Bun.gc)
//   deno run -A --v8-flags=--expose-gc bench/lib/gc_host.ts --port=...   (Deno: V8's gc())
declare const Deno: { addSignalListener(signal: "SIGUSR2", handler: () => void): void };

const serverModule = process.env.BENCH_SERVER_MODULE;
if (!serverModule) throw new Error("BENCH_SERVER_MODULE is not set");

if ("Bun" in globalThis) {
  process.on("SIGUSR2", () => Bun.gc(true));
} else {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error("run Deno with --v8-flags=--expose-gc");
  Deno.addSignalListener("SIGUSR2", () => gc());
}

await import(serverModule);

export {};
