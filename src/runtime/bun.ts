// Bun adapter: Bun.serve with native WebSocket upgrade and topic fan-out.
import { readFileSync } from "node:fs";
import type { Server, ServerWebSocket, WebSocketHandler } from "bun";
import type { ClientSocket } from "../node/socket.ts";
import type { HandlerSpec, MountedHandler, RunningServer, Runtime, ServeSpec, Upgrade } from "./types.ts";

/** Bun drops frames silently past its backpressure limit; ours (ws_max_pending_size) must hit first. */
const BACKPRESSURE_LIMIT = 64 * 1024 * 1024;

/** One small object per connection; prototype methods instead of per-socket closures. */
class BunClientSocket implements ClientSocket {
  constructor(private readonly ws: ServerWebSocket<unknown>) {}
  send(frame: string): number {
    return this.ws.send(frame);
  }
  bufferedAmount(): number {
    return this.ws.getBufferedAmount();
  }
  close(code: number, reason: string): void {
    this.ws.close(code, reason);
  }
  ping(): void {
    this.ws.ping();
  }
  joinTopic(topic: string): void {
    this.ws.subscribe(topic);
  }
  leaveTopic(topic: string): void {
    this.ws.unsubscribe(topic);
  }
}

function mount<D>(spec: HandlerSpec<D>): MountedHandler {
  const handlers = spec.websocket;
  // Topics live in the server the sockets were upgraded by; every upgrade passes fetch first.
  let server: Server<object> | undefined;
  const respond = (req: Request, srv: Server<object> | undefined, res: Response | Upgrade<D>): Response => {
    if (res instanceof Response) return res;
    if (!srv)
      return new Response("anycable-ts: pass Bun's server as fetch's second argument\n", { status: 500 });
    const headers: Record<string, string> = { ...res.headers };
    // Without an explicit header Bun echoes the first offered protocol (possibly a token);
    // an empty value makes it select none.
    headers["Sec-WebSocket-Protocol"] = res.protocol;
    // The caller's own per-socket object is Bun's ws.data, with no wrapper around it. After a
    // successful upgrade Bun ignores the returned response, so embedders always get a Response.
    if (srv.upgrade(req, { data: res.data as object, headers })) return new Response(null);
    return new Response("WebSocket upgrade failed", { status: 400 });
  };
  const websocket: WebSocketHandler<object> = {
    maxPayloadLength: spec.maxMessageSize > 0 ? spec.maxMessageSize : 16 * 1024 * 1024,
    backpressureLimit: BACKPRESSURE_LIMIT,
    closeOnBackpressureLimit: false,
    idleTimeout: 0,
    sendPings: false,
    publishToSelf: true,
    open(ws) {
      handlers?.open(new BunClientSocket(ws as ServerWebSocket<unknown>), ws.data as D);
    },
    message(ws, msg) {
      if (typeof msg === "string") {
        handlers?.message(ws.data as D, msg, Buffer.byteLength(msg));
      } else {
        handlers?.message(ws.data as D, new TextDecoder().decode(msg), msg.byteLength);
      }
    },
    close(ws, code, reason) {
      handlers?.close(ws.data as D, code, reason);
    },
    drain(ws) {
      handlers?.drain(ws.data as D);
    },
  };
  return {
    fetch(req, srv) {
      const s =
        typeof (srv as Server<object> | undefined)?.upgrade === "function"
          ? (srv as Server<object>)
          : undefined;
      if (s) server = s;
      const res = spec.handle(req, s?.requestIP(req)?.address ?? "");
      // WebSocket routes answer synchronously: upgrade without a promise and a microtask turn.
      return res instanceof Promise ? res.then((r) => respond(req, s, r)) : respond(req, s, res);
    },
    websocket,
    publish(topic, frame) {
      server?.publish(topic, frame);
    },
  };
}

export const bunRuntime: Runtime = {
  name: "bun",
  http2SessionPerCall: false,
  mount,
  async serve<D>(spec: ServeSpec<D>): Promise<RunningServer> {
    const mounted = mount(spec);
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
