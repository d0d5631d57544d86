// The Bun half that needs no Bun types: request handling and the WebSocket handler object
// Bun.serve takes, written against the few members we use. bun.ts serves with it; lib.ts mounts
// it in an application's Bun.serve (and type-checks under Deno, where Bun's types do not load).
import { Buffer } from "node:buffer";
import type { ClientSocket } from "../node/socket.ts";
import type { Frame } from "../protocols/encoder.ts";
import { type HandlerSpec, type MountedHandler, RUNTIME_BACKLOG_LIMIT, type Upgrade } from "./types.ts";

/** The members of Bun's ServerWebSocket we use. */
interface BunSocket {
  readonly data: unknown;
  send(frame: Frame): number;
  getBufferedAmount(): number;
  close(code: number, reason: string): void;
  ping(): unknown;
  subscribe(topic: string): void;
  unsubscribe(topic: string): void;
  /** Bun 1.4+. */
  pause?(): void;
  resume?(): void;
}

/** The members of Bun's Server we use. */
interface BunServer {
  upgrade(req: Request, options: { data: object; headers: Record<string, string> }): boolean;
  requestIP(req: Request): { address: string } | null;
  publish(topic: string, frame: Frame): number;
  /** Per-request idle timeout in seconds (0: none). */
  timeout?(req: Request, seconds: number): void;
}

/** An answer that streams for as long as the client stays (SSE). */
function isEventStream(res: Response): boolean {
  return res.body !== null && (res.headers.get("content-type") ?? "").startsWith("text/event-stream");
}

/** Bun's WebSocketHandler, as far as we fill it. */
export interface BunWebSocketHandler {
  maxPayloadLength: number;
  /** Bun negotiates both no_context_takeover parameters and compresses every send. */
  perMessageDeflate: boolean;
  backpressureLimit: number;
  closeOnBackpressureLimit: boolean;
  idleTimeout: number;
  sendPings: boolean;
  publishToSelf: boolean;
  open(ws: BunSocket): void;
  message(ws: BunSocket, msg: string | Uint8Array): void;
  close(ws: BunSocket, code: number, reason: string): void;
  drain(ws: BunSocket): void;
  pong(ws: BunSocket): void;
}

/** One small object per connection; prototype methods instead of per-socket closures. */
class BunClientSocket implements ClientSocket {
  constructor(private readonly ws: BunSocket) {}
  send(frame: Frame): number {
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
  pauseReading(): void {
    this.ws.pause?.();
  }
  resumeReading(): void {
    this.ws.resume?.();
  }
}

export function mountBun<D>(spec: HandlerSpec<D>): MountedHandler {
  const handlers = spec.websocket;
  // Topics live in the server the sockets were upgraded by; every upgrade passes fetch first.
  let server: BunServer | undefined;
  const respond = (req: Request, srv: BunServer | undefined, res: Response | Upgrade<D>): Response => {
    if (res instanceof Response) {
      // Bun.serve's idleTimeout (10 s by default) would cut an event stream between pings.
      if (isEventStream(res)) srv?.timeout?.(req, 0);
      return res;
    }
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
  const websocket: BunWebSocketHandler = {
    maxPayloadLength: spec.maxMessageSize > 0 ? spec.maxMessageSize : 16 * 1024 * 1024,
    perMessageDeflate: spec.compression === true,
    // past it Bun drops frames (send returns 0) and the node lets the client go as too slow
    backpressureLimit: RUNTIME_BACKLOG_LIMIT,
    closeOnBackpressureLimit: false,
    idleTimeout: 0,
    sendPings: false,
    publishToSelf: true,
    open(ws) {
      handlers?.open(new BunClientSocket(ws as BunSocket), ws.data as D);
    },
    message(ws, msg) {
      if (typeof msg === "string") handlers?.message(ws.data as D, msg, Buffer.byteLength(msg));
      else handlers?.message(ws.data as D, msg, msg.byteLength);
    },
    close(ws, code, reason) {
      handlers?.close(ws.data as D, code, reason);
    },
    drain(ws) {
      handlers?.drain(ws.data as D);
    },
    pong(ws) {
      handlers?.pong?.(ws.data as D);
    },
  };
  return {
    fetch(req, srv) {
      const s =
        typeof (srv as BunServer | undefined)?.upgrade === "function" ? (srv as BunServer) : undefined;
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
