// anycable-ts inside an application's own Deno.serve.   npx deno run -A examples/deno.ts
import { createCable } from "anycable-ts";

const port = Number(Deno.env.get("PORT") ?? 3000);
const cable = createCable({
  public: true,
  norpc: true,
  broadcast_adapter: "http",
  port,
  http_broadcast_port: port,
});
await cable.start();

const server = Deno.serve(
  { port, onListen: () => console.log(`app listening on http://localhost:${port}`) },
  (req, info) => {
    if (new URL(req.url).pathname === "/hello") return new Response("Hello from the app\n");
    return cable.fetch(req, info);
  },
);

Deno.addSignalListener("SIGTERM", async () => {
  await cable.shutdown();
  await server.shutdown();
  Deno.exit(0);
});
