// A gRPC AnyCable application for tests, built with @grpc/grpc-js + @grpc/proto-loader (a different
// gRPC stack than the server's own node:http2 client, so a shared misunderstanding of the contract cannot
// hide). It behaves like a small Rails app and records every call; tests override handlers.
//
// Default behaviour:
//   Connect     accepts when the URL has no `reject` param; identifiers {"user": <?user=…>};
//               transmits the welcome; sets cstate {user}. Rejects with the exact Action Cable
//               message {"type":"disconnect","reason":"unauthorized","reconnect":false}.
//   subscribe   ChatChannel {room} -> confirm, stream `chat_<room>`, istate {room};
//               RejectChannel -> reject_subscription.
//   message     "speak" -> broadcast {text, from} to the stream via the server's HTTP broadcast;
//               "echo" -> transmission to the caller only; "state" -> transmits the env it got and
//               sets cstate/istate from the payload; "stop" -> stopped_streams.
//   unsubscribe success; Disconnect success.

import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as loader from "@grpc/proto-loader";

export const Status = { ERROR: 0, SUCCESS: 1, FAILURE: 2 } as const;

export interface WireEnv {
  url: string;
  headers: Record<string, string>;
  cstate: Record<string, string>;
  istate: Record<string, string>;
}
export interface ConnectReq {
  env: WireEnv;
}
export interface CommandReq {
  command: string;
  identifier: string;
  connection_identifiers: string;
  data: string;
  env: WireEnv;
}
export interface DisconnectReq {
  identifiers: string;
  subscriptions: string[];
  env: WireEnv;
}
export interface ConnectRes {
  status: number;
  identifiers?: string;
  transmissions?: string[];
  error_msg?: string;
  env?: { cstate?: Record<string, string>; istate?: Record<string, string> };
}
export interface CommandRes {
  status: number;
  disconnect?: boolean;
  stop_streams?: boolean;
  streams?: string[];
  stopped_streams?: string[];
  transmissions?: string[];
  error_msg?: string;
  env?: { cstate?: Record<string, string>; istate?: Record<string, string> };
}

export interface RecordedCall {
  method: "Connect" | "Command" | "Disconnect";
  request: ConnectReq | CommandReq | DisconnectReq;
  metadata: Record<string, string>;
  /** Date.now() when the call arrived. */
  at: number;
  /** The client cancelled the call before it was answered (e.g. its session closed). */
  cancelled: boolean;
}

type Handler<Req, Res> = (req: Req, metadata: Record<string, string>) => Res | Promise<Res>;

export const UNAUTHORIZED = JSON.stringify({ type: "disconnect", reason: "unauthorized", reconnect: false });

const PROTO = fileURLToPath(new URL("../../proto/anycable/rpc.proto", import.meta.url));
const definition = loader.loadSync(PROTO, {
  keepCase: true,
  enums: Number,
  longs: Number,
  defaults: true,
  arrays: true,
  objects: true,
});
// biome-ignore lint/suspicious/noExplicitAny: grpc-js package definitions are untyped by design
const service = (grpc.loadPackageDefinition(definition) as any).anycable.RPC
  .service as grpc.ServiceDefinition;

export class GrpcBackend {
  port = 0;
  readonly calls: RecordedCall[] = [];
  inflight = 0;
  maxInflight = 0;
  /** Extra latency of every call (observe concurrency). */
  delayMs = 0;
  /** Calls served at once; one more is answered RESOURCE_EXHAUSTED, as a full Ruby pool does. */
  capacity = Number.POSITIVE_INFINITY;
  /** Calls answered RESOURCE_EXHAUSTED so far. */
  exhausted = 0;
  /** Where "speak" broadcasts go (the server's /_broadcast URL). */
  broadcastUrl = "";
  /** Bearer key for broadcasts ("" when the server requires none). */
  broadcastKey = "";
  onConnect: Handler<ConnectReq, ConnectRes> = (req) => defaultConnect(req);
  onCommand: Handler<CommandReq, CommandRes> = (req) => this.defaultCommand(req);
  onDisconnect: Handler<DisconnectReq, { status: number; error_msg?: string }> = () => ({
    status: Status.SUCCESS,
  });
  private server: grpc.Server | undefined;

  constructor(
    /** Interface to listen on. */
    readonly host = "127.0.0.1",
    /** Serve TLS with this certificate instead of plaintext. */
    readonly tls?: { cert: string; key: string },
  ) {}

  get address(): string {
    return `${this.host}:${this.port}`;
  }

  /** Starts (or restarts, on the same port) the server. */
  async start(): Promise<void> {
    const server = new grpc.Server();
    server.addService(service, {
      Connect: this.unary("Connect", (r, m) => this.onConnect(r as ConnectReq, m)),
      Command: this.unary("Command", (r, m) => this.onCommand(r as CommandReq, m)),
      Disconnect: this.unary("Disconnect", (r, m) => this.onDisconnect(r as DisconnectReq, m)),
    });
    this.port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(`${this.host}:${this.port}`, this.credentials(), (err, port) =>
        err ? reject(err) : resolve(port),
      ),
    );
    this.server = server;
  }

  private credentials(): grpc.ServerCredentials {
    if (!this.tls) return grpc.ServerCredentials.createInsecure();
    return grpc.ServerCredentials.createSsl(null, [
      { cert_chain: Buffer.from(this.tls.cert), private_key: Buffer.from(this.tls.key) },
    ]);
  }

  /** Kills the server and every open connection (like a crashed RPC process). */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    server?.forceShutdown();
  }

  callsOf(method: RecordedCall["method"], command?: string): RecordedCall[] {
    return this.calls.filter(
      (c) => c.method === method && (command === undefined || (c.request as CommandReq).command === command),
    );
  }

  reset(): void {
    this.calls.length = 0;
    this.maxInflight = 0;
    this.delayMs = 0;
    this.capacity = Number.POSITIVE_INFINITY;
    this.exhausted = 0;
    this.onConnect = (req) => defaultConnect(req);
    this.onCommand = (req) => this.defaultCommand(req);
    this.onDisconnect = () => ({ status: Status.SUCCESS });
  }

  private unary(
    method: RecordedCall["method"],
    fn: Handler<unknown, unknown>,
  ): grpc.handleUnaryCall<unknown, unknown> {
    return async (call, callback) => {
      const metadata: Record<string, string> = {};
      for (const [k, v] of Object.entries(call.metadata.getMap())) metadata[k] = String(v);
      const record: RecordedCall = {
        method,
        request: call.request as RecordedCall["request"],
        metadata,
        at: Date.now(),
        cancelled: false,
      };
      this.calls.push(record);
      call.on("cancelled", () => {
        record.cancelled = true;
      });
      if (this.inflight >= this.capacity) {
        this.exhausted++;
        callback({ code: grpc.status.RESOURCE_EXHAUSTED, details: "no free workers" });
        return;
      }
      this.inflight++;
      this.maxInflight = Math.max(this.maxInflight, this.inflight);
      try {
        if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
        callback(null, await fn(call.request, metadata));
      } catch (err) {
        callback({ code: grpc.status.INTERNAL, details: (err as Error).message });
      } finally {
        this.inflight--;
      }
    };
  }

  private async defaultCommand(req: CommandReq): Promise<CommandRes> {
    const id = req.identifier;
    const params = JSON.parse(id) as Record<string, string>;
    if (req.command === "subscribe") {
      if (params.channel === "RejectChannel") {
        return {
          status: Status.FAILURE,
          transmissions: [JSON.stringify({ identifier: id, type: "reject_subscription" })],
        };
      }
      return {
        status: Status.SUCCESS,
        streams: [`chat_${params.room}`],
        transmissions: [JSON.stringify({ identifier: id, type: "confirm_subscription" })],
        env: { istate: { room: params.room ?? "" } },
      };
    }
    if (req.command === "unsubscribe") return { status: Status.SUCCESS };
    const data = JSON.parse(req.data) as Record<string, unknown>;
    const transmit = (message: unknown) => JSON.stringify({ identifier: id, message });
    switch (data.action) {
      case "speak": {
        const from = (JSON.parse(req.connection_identifiers) as { user: string }).user;
        const res = await fetch(this.broadcastUrl, {
          method: "POST",
          headers: broadcastHeaders(this.broadcastKey),
          body: JSON.stringify({
            stream: `chat_${params.room}`,
            data: JSON.stringify({ text: data.text, from }),
          }),
        });
        if (res.status !== 201) throw new Error(`broadcast failed: ${res.status}`);
        return { status: Status.SUCCESS };
      }
      case "echo":
        return { status: Status.SUCCESS, transmissions: [transmit({ echo: data.text })] };
      case "state":
        return {
          status: Status.SUCCESS,
          transmissions: [transmit({ cstate: req.env.cstate, istate: req.env.istate })],
          env: {
            cstate: (data.cstate as Record<string, string>) ?? {},
            istate: (data.istate as Record<string, string>) ?? {},
          },
        };
      case "stop":
        return { status: Status.SUCCESS, stopped_streams: [`chat_${params.room}`] };
      default:
        return { status: Status.ERROR, error_msg: `unknown action ${String(data.action)}` };
    }
  }
}

export function broadcastHeaders(key: string): Record<string, string> {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (key) headers.authorization = `Bearer ${key}`;
  return headers;
}

function defaultConnect(req: ConnectReq): ConnectRes {
  const url = new URL(req.env.url);
  if (url.searchParams.has("reject"))
    return { status: Status.FAILURE, transmissions: [UNAUTHORIZED], error_msg: "Auth failed" };
  const user = url.searchParams.get("user") ?? "anon";
  return {
    status: Status.SUCCESS,
    identifiers: JSON.stringify({ user }),
    transmissions: [JSON.stringify({ type: "welcome" })],
    env: { cstate: { user } },
  };
}

export async function startGrpcBackend(
  host?: string,
  tls?: { cert: string; key: string },
): Promise<GrpcBackend> {
  const backend = new GrpcBackend(host, tls);
  await backend.start();
  return backend;
}
