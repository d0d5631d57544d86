// anycable-ts inside an application's own Bun.serve: the app keeps its routes, the cable answers
// /cable (WebSocket), /health and /_broadcast.   npx bun examples/bun.ts
import { createCable } from "anycable-ts";

const port = Number(process.env.PORT ?? 3000);
const cable = createCable({
  public: true,
  norpc: true,
  broadcast_adapter: "http",
  port, // routes on this port are the ones cable.fetch answers
  http_broadcast_port: port, // HTTP broadcasts on the app's port too (default: 8090 without a key)
});
await cable.start();

const server = Bun.serve({
  port,
  fetch(req, srv) {
    if (new URL(req.url).pathname === "/hello") return new Response("Hello from the app\n");
    return cable.fetch(req, srv);
  },
  websocket: cable.websocket as Bun.WebSocketHandler<object>,
});
console.log(`app listening on http://localhost:${server.port}`);

process.on("SIGTERM", async () => {
  await cable.shutdown();
  await server.stop();
  process.exit(0);
});
