// Bun adapter: Bun.serve with native WebSocket upgrade and topic fan-out.
import { readFileSync } from "node:fs";
import { mountBun } from "./bun_mount.ts";
import type { RunningServer, Runtime, ServeSpec } from "./types.ts";

/**
 * The part of Bun's global we call, typed here so that this adapter type-checks without Bun's
 * types (lib.ts imports it statically, and `deno test` type-checks lib.ts).
 */
interface BunGlobal {
  serve(options: {
    hostname: string;
    port: number;
    tls?: { cert: unknown; key: unknown };
    fetch(req: Request, server: unknown): Response | Promise<Response>;
    websocket?: object;
  }): { port?: number; stop(closeActiveConnections?: boolean): Promise<void> };
  file(path: string): unknown;
}

const bun = (): BunGlobal => (globalThis as unknown as { Bun: BunGlobal }).Bun;

export const bunRuntime: Runtime = {
  name: "bun",
  http2MaxStreamsPerSession: 0,
  mount: mountBun,
  async serve<D>(spec: ServeSpec<D>): Promise<RunningServer> {
    const mounted = mountBun(spec);
    const server = bun().serve({
      hostname: spec.hostname,
      port: spec.port,
      tls: spec.tls ? { cert: bun().file(spec.tls.certFile), key: bun().file(spec.tls.keyFile) } : undefined,
      fetch: (req, srv) => mounted.fetch(req, srv),
      websocket: mounted.websocket,
    });
    return {
      port: server.port ?? spec.port,
      publish: mounted.publish,
      async stop() {
        await server.stop(true);
      },
    };
  },
  readTextFile(path) {
    try {
      return readFileSync(path, "utf8");
    } catch {
      return undefined;
    }
  },
  onSignal(signal, fn) {
    process.on(signal, fn);
  },
  exit(code) {
    process.exit(code);
  },
  pid: () => process.pid,
};
