// The Deno runtime's own limit: a minimal Deno.serve WebSocket server speaking the same wire
// messages as raw-bun.ts (welcome, confirm_subscription, broadcast, and with --pings the
// `{"type":"ping"}` message every 3 s), the same POST /_broadcast body. Deno has no native topics,
// so fan-out is a loop over each stream's sockets sending one string built once per publication.
//   deno run -A bench/baselines/raw-deno.ts --port 8080 [--pings]
import { parseArgs } from "node:util";

declare const Deno: {
  serve(
    opts: { hostname: string; port: number; onListen?: () => void },
    handler: (req: Request) => Response | Promise<Response>,
  ): unknown;
  upgradeWebSocket(req: Request): { socket: WebSocket; response: Response };
};

const { values } = parseArgs({
  options: { port: { type: "string", default: "8080" }, pings: { type: "boolean", default: false } },
  strict: false,
});
let counter = 0;
const streams = new Map<string, Set<WebSocket>>();
const all = new Set<WebSocket>();

function send(ws: WebSocket, frame: string): void {
  if (ws.readyState === WebSocket.OPEN) ws.send(frame);
}

function open(req: Request): Response {
  const { socket, response } = Deno.upgradeWebSocket(req);
  response.headers.set("sec-websocket-protocol", "actioncable-v1-json");
  const sid = `raw${counter++}`;
  const mine: Set<WebSocket>[] = [];
  socket.onopen = () => {
    all.add(socket);
    send(socket, `{"type":"welcome","sid":"${sid}"}`);
  };
  socket.onmessage = (e) => {
    const cmd = JSON.parse(String(e.data)) as { command: string; identifier: string };
    if (cmd.command !== "subscribe") return;
    const { stream_name: stream } = JSON.parse(cmd.identifier) as { stream_name: string };
    let set = streams.get(stream);
    if (!set) {
      set = new Set();
      streams.set(stream, set);
    }
    set.add(socket);
    mine.push(set);
    send(socket, `{"type":"confirm_subscription","identifier":${JSON.stringify(cmd.identifier)}}`);
  };
  socket.onclose = () => {
    all.delete(socket);
    for (const set of mine) set.delete(socket);
  };
  return response;
}

async function broadcast(req: Request): Promise<Response> {
  type Publication = { stream: string; data: string };
  const body = JSON.parse(await req.text()) as Publication | Publication[];
  for (const pub of Array.isArray(body) ? body : [body]) {
    const identifier = JSON.stringify({ channel: "$pubsub", stream_name: pub.stream });
    const frame = `{"identifier":${JSON.stringify(identifier)},"message":${pub.data}}`;
    for (const ws of streams.get(pub.stream) ?? []) send(ws, frame);
  }
  return new Response(null, { status: 201 });
}

if (values.pings) {
  setInterval(() => {
    const frame = `{"type":"ping","message":${Math.floor(Date.now() / 1000)}}`;
    for (const ws of all) send(ws, frame);
  }, 3000);
}

Deno.serve(
  {
    hostname: "127.0.0.1",
    port: Number(values.port),
    onListen: () => console.log(`raw deno baseline on ${values.port}`),
  },
  (req) => {
    const url = new URL(req.url);
    if (url.pathname === "/cable") return open(req);
    if (url.pathname === "/_broadcast" && req.method === "POST") return broadcast(req);
    if (url.pathname === "/health") return new Response("ok");
    return new Response("not found", { status: 404 });
  },
);
