// The runtime's own limit: a minimal Bun.serve WebSocket server speaking the same wire messages
// (welcome, confirm_subscription, broadcast) with native topic fan-out, and the same
// POST /_broadcast body format. No sessions, no metrics, no checks: what anycable-ts is compared to.
// With --pings every socket gets `{"type":"ping","message":<unix s>}` every 3 s (anycable-go's
// default interval), one send per socket as a session-based server sends them (a native topic
// would be cheaper, but pings are per session: they are spread over the interval).
//   bun bench/baselines/raw-bun.ts --port 8080 [--pings]
import { parseArgs } from "node:util";
import type { ServerWebSocket } from "bun";

const { values } = parseArgs({
  options: { port: { type: "string", default: "8080" }, pings: { type: "boolean", default: false } },
  strict: false,
});
let counter = 0;
const sockets = new Set<ServerWebSocket<{ sid: string }>>();

const server = Bun.serve<{ sid: string }, never>({
  hostname: "127.0.0.1",
  port: Number(values.port),
  async fetch(req, srv) {
    const url = new URL(req.url);
    if (url.pathname === "/cable") {
      const sid = `raw${counter++}`;
      if (srv.upgrade(req, { data: { sid }, headers: { "Sec-WebSocket-Protocol": "actioncable-v1-json" } })) {
        return undefined;
      }
      return new Response("upgrade failed", { status: 400 });
    }
    if (url.pathname === "/_broadcast" && req.method === "POST") {
      type Publication = { stream: string; data: string };
      const body = JSON.parse(await req.text()) as Publication | Publication[];
      for (const pub of Array.isArray(body) ? body : [body]) {
        const identifier = JSON.stringify({ channel: "$pubsub", stream_name: pub.stream });
        srv.publish(pub.stream, `{"identifier":${JSON.stringify(identifier)},"message":${pub.data}}`);
      }
      return new Response(null, { status: 201 });
    }
    if (url.pathname === "/health") return new Response("ok");
    return new Response("not found", { status: 404 });
  },
  websocket: {
    open(ws) {
      sockets.add(ws);
      ws.send(`{"type":"welcome","sid":"${ws.data.sid}"}`);
    },
    message(ws, msg) {
      const cmd = JSON.parse(String(msg)) as { command: string; identifier: string };
      if (cmd.command === "subscribe") {
        const { stream_name: stream } = JSON.parse(cmd.identifier) as { stream_name: string };
        ws.subscribe(stream);
        ws.send(`{"type":"confirm_subscription","identifier":${JSON.stringify(cmd.identifier)}}`);
      }
    },
    close(ws) {
      sockets.delete(ws);
    },
  },
});
if (values.pings) {
  setInterval(() => {
    const frame = `{"type":"ping","message":${Math.floor(Date.now() / 1000)}}`;
    for (const ws of sockets) ws.send(frame);
  }, 3000);
}
console.log(`raw bun baseline listening on ${server.port}`);
