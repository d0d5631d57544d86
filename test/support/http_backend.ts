// An HTTP RPC application for tests: the real @anycable/serverless-js SDK behind Bun.serve, in the
// bun test process (the SDK only imports under Bun, see RUNTIME-NOTES). Mirrors the gRPC test
// backend's app: ChatChannel (stream chat_<room>, speak -> broadcast, echo -> transmission),
// RejectChannel, `?reject` rejects the connection. Records every request with its headers.
import {
  Application,
  Channel,
  type ChannelHandle,
  type ConnectionHandle,
  handler,
} from "@anycable/serverless-js";

export interface RecordedHttpCall {
  method: "connect" | "command" | "disconnect";
  body: Record<string, unknown>;
  headers: Record<string, string>;
}

type Params = Record<string, string>;

function broadcastHeaders(key: string): Record<string, string> {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (key) headers.authorization = `Bearer ${key}`;
  return headers;
}
type Ids = { user: string };
type Handle = ChannelHandle<Ids, Params>;

export class HttpBackend {
  port = 0;
  readonly calls: RecordedHttpCall[] = [];
  /** Expected bearer token; "" accepts any request. */
  secret = "";
  broadcastUrl = "";
  broadcastKey = "";
  /** Emit `status` as enum names ("SUCCESS"), as some anycable-rb/protobuf versions do. */
  enumNames = false;
  /** Answer every request with this HTTP status instead (0: normal operation). */
  failWith = 0;
  private server: ReturnType<typeof Bun.serve> | undefined;
  private readonly app: Application;

  constructor() {
    const backend = this;
    class ChatChannel extends Channel<Ids, Params> {
      override async subscribed(handle: Handle, params: Params) {
        handle.streamFrom(`chat_${params.room}`);
        handle.state = { room: params.room };
      }
      async speak(handle: Handle, params: Params, data: Params) {
        const from = handle.identifiers?.user;
        const res = await fetch(backend.broadcastUrl, {
          method: "POST",
          headers: broadcastHeaders(backend.broadcastKey),
          body: JSON.stringify({
            stream: `chat_${params.room}`,
            data: JSON.stringify({ text: data.text, from }),
          }),
        });
        if (res.status !== 201) throw new Error(`broadcast failed: ${res.status}`);
      }
      async echo(handle: Handle, _params: Params, data: Params) {
        handle.transmit({ echo: data.text });
      }
    }
    class RejectChannel extends Channel<Ids, Params> {
      override async subscribed(handle: Handle) {
        handle.reject();
      }
    }
    class App extends Application {
      override async connect(handle: ConnectionHandle) {
        const url = new URL(handle.env.url);
        if (url.searchParams.has("reject")) {
          handle.reject();
          return;
        }
        handle.identifiedBy({ user: url.searchParams.get("user") ?? "anon" });
      }
    }
    this.app = new App();
    this.app.registerChannel("ChatChannel", new ChatChannel());
    this.app.registerChannel("RejectChannel", new RejectChannel());
  }

  /** Base URL for --rpc_host. */
  get url(): string {
    return `http://127.0.0.1:${this.port}/_anycable`;
  }

  callsOf(method: RecordedHttpCall["method"]): RecordedHttpCall[] {
    return this.calls.filter((c) => c.method === method);
  }

  async start(): Promise<void> {
    this.server = Bun.serve({
      hostname: "127.0.0.1",
      port: this.port,
      fetch: (req) => this.handle(req),
    });
    this.port = this.server.port ?? 0;
  }

  async stop(): Promise<void> {
    await this.server?.stop(true);
    this.server = undefined;
  }

  private async handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    const method = url.pathname.split("/").pop() as RecordedHttpCall["method"];
    const text = await req.text();
    const headers: Record<string, string> = {};
    req.headers.forEach((v, k) => {
      headers[k] = v;
    });
    this.calls.push({ method, body: JSON.parse(text) as Record<string, unknown>, headers });
    if (this.failWith) return new Response("backend failure", { status: this.failWith });
    if (this.secret && req.headers.get("authorization") !== `Bearer ${this.secret}`) {
      return new Response("unauthorized", { status: 401 });
    }
    let res: Record<string, unknown>;
    try {
      res = (await handler(
        new Request(req.url, { method: "POST", headers: req.headers, body: text }),
        this.app,
      )) as Record<string, unknown>;
    } catch (err) {
      // The SDK throws on channels it does not know (e.g. a Disconnect listing a $pubsub
      // subscription the server answered itself): an ERROR answer, as an application's failure,
      // instead of an exception in the test process.
      res = { status: 0, error_msg: (err as Error).message };
    }
    if (this.enumNames) res.status = ["ERROR", "SUCCESS", "FAILURE"][res.status as number];
    return Response.json(res);
  }
}

export async function startHttpBackend(): Promise<HttpBackend> {
  const backend = new HttpBackend();
  await backend.start();
  return backend;
}
