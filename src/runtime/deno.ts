// Deno adapter. serve() (the CLI's listeners) runs on node:http with our own WebSocket framing
// (deno_http.ts); mount() is for an application's own Deno.serve, with Deno.upgradeWebSocket. The
// selected sub-protocol is set on the response by hand, because Deno's own `protocol` option only
// splits offers on ", ".
import { type ClientSocket, SOCKET_CLOSING } from "../node/socket.ts";
import type { Frame } from "../protocols/encoder.ts";
import { serveNodeHttp } from "./deno_http.ts";
import { type HandlerSpec, type MountedHandler, RUNTIME_BACKLOG_LIMIT, type Runtime } from "./types.ts";

const encoder = new TextEncoder();

function wrap(socket: WebSocket): ClientSocket {
  return {
    send(frame) {
      if (socket.readyState !== WebSocket.OPEN) return SOCKET_CLOSING;
      // Deno buffers without bound and never refuses: refuse past the runtimes' common limit.
      if (socket.bufferedAmount > RUNTIME_BACKLOG_LIMIT) return 0;
      socket.send(frame);
      // Written only after this turn: "queued", so the node's ticker watches the backlog over time.
      return socket.bufferedAmount > 0 ? -1 : frame.length;
    },
    bufferedAmount: () => socket.bufferedAmount,
    close(code, reason) {
      if (socket.readyState === WebSocket.CLOSED || socket.readyState === WebSocket.CLOSING) return;
      socket.close(code, reason);
    },
  };
}

function mount<D>(spec: HandlerSpec<D>): MountedHandler {
  const handlers = spec.websocket;
  const limit = spec.maxMessageSize;
  const idleTimeout = spec.nativePingIntervalMs ? Math.ceil(spec.nativePingIntervalMs / 1000) : 0;
  return {
    async fetch(req, info) {
      const addr = (info as Deno.ServeHandlerInfo | undefined)?.remoteAddr as Deno.NetAddr | undefined;
      const res = await spec.handle(req, addr?.hostname ?? "");
      if (res instanceof Response) return res;
      const { socket, response } = Deno.upgradeWebSocket(req, { idleTimeout });
      socket.binaryType = "arraybuffer";
      if (res.protocol) response.headers.set("sec-websocket-protocol", res.protocol);
      for (const [k, v] of Object.entries(res.headers)) response.headers.set(k, v);
      const data = res.data;
      const client = wrap(socket);
      socket.onopen = () => handlers?.open(client, data);
      socket.onmessage = (ev) => {
        let frame: Frame;
        let size: number;
        if (typeof ev.data === "string") {
          frame = ev.data;
          size = frame.length > limit / 3 ? encoder.encode(frame).length : frame.length;
        } else {
          frame = new Uint8Array(ev.data as ArrayBuffer);
          size = frame.byteLength;
        }
        if (limit > 0 && size > limit) {
          client.close(1009, "message too big");
          return;
        }
        handlers?.message(data, frame, size);
      };
      socket.onclose = (ev) => handlers?.close(data, ev.code, ev.reason);
      socket.onerror = () => {};
      return response;
    },
  };
}

export const denoRuntime: Runtime = {
  name: "deno",
  // Deno's node:http2 crashes the process (free(): invalid pointer, a segfault or an nghttp2
  // assertion) when a GOAWAY reaches an idle session that finished ~100 streams or more
  // (denoland/deno#36788); 32 keeps every session far below that at ~1/32 handshake per call.
  http2MaxStreamsPerSession: 32,
  mount,
  // node:http, for the deadlines and sockets Deno.serve does not give (see deno_http.ts)
  serve: serveNodeHttp,
  readTextFile(path) {
    try {
      return Deno.readTextFileSync(path);
    } catch {
      return undefined;
    }
  },
  onSignal(signal, fn) {
    Deno.addSignalListener(signal, fn);
  },
  exit(code) {
    Deno.exit(code);
  },
  pid: () => Deno.pid,
};
