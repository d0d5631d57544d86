// The same benchmark application over HTTP RPC with @anycable/serverless-js (runs under Bun, see
// RUNTIME-NOTES). Prints its port.   bun bench/backends/http_backend.ts
import {
  Application,
  Channel,
  type ChannelHandle,
  type ConnectionHandle,
  handler,
} from "@anycable/serverless-js";

type Ids = { user: string };
type Params = Record<string, string>;

class BenchChannel extends Channel<Ids, Params> {
  async echo(handle: ChannelHandle<Ids, Params>, _params: Params, data: { n: number; t: number }) {
    handle.transmit({ n: data.n, t: data.t });
  }
}

class BenchApp extends Application<Ids> {
  override async connect(handle: ConnectionHandle<Ids>) {
    handle.identifiedBy({ user: "bench" });
  }
}

const app = new BenchApp();
app.registerChannel("BenchChannel", new BenchChannel());

const server = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  async fetch(req) {
    return Response.json(await handler(req, app));
  },
});
console.log(JSON.stringify({ port: server.port }));
