// anycable-ts mounted in a Hono app, under Bun or Deno:
//   npx bun examples/hono.ts      npx deno run -A examples/hono.ts

import { createCable } from "anycable-ts";
import { Hono } from "hono";

const port = Number(globalThis.process?.env.PORT ?? 3000);
const cable = createCable({
  public: true,
  norpc: true,
  broadcast_adapter: "http",
  port,
  http_broadcast_port: port,
  path: "/ws",
});
await cable.start();

const app = new Hono();
app.get("/hello", (c) => c.text("Hello from the app\n"));
// c.env is Bun's server under Bun and Deno's ServeHandlerInfo under Deno: the cable needs it.
app.all("/ws", (c) => cable.fetch(c.req.raw, c.env));
app.all("/_broadcast", (c) => cable.fetch(c.req.raw, c.env));

if ("Bun" in globalThis) {
  Bun.serve({ port, fetch: app.fetch, websocket: cable.websocket as Bun.WebSocketHandler<object> });
} else {
  Deno.serve({ port }, app.fetch);
}
console.log(`app listening on http://localhost:${port}`);
