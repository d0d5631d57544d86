// Bun adapter: Bun.serve with native WebSocket upgrade and topic fan-out.
import { readFileSync } from "node:fs";
import type { WebSocketHandler } from "bun";
import { mountBun } from "./bun_mount.ts";
import type { RunningServer, Runtime, ServeSpec } from "./types.ts";

export const bunRuntime: Runtime = {
  name: "bun",
  http2SessionPerCall: false,
  mount: mountBun,
  async serve<D>(spec: ServeSpec<D>): Promise<RunningServer> {
    const mounted = mountBun(spec);
    const server = Bun.serve<object, never>({
      hostname: spec.hostname,
      port: spec.port,
      tls: spec.tls ? { cert: Bun.file(spec.tls.certFile), key: Bun.file(spec.tls.keyFile) } : undefined,
      fetch: (req, srv) => mounted.fetch(req, srv),
      websocket: mounted.websocket as WebSocketHandler<object>,
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
