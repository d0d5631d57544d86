// Pusher-side helpers for e2e tests: the real pusher-js client pointed at a server, the real
// `pusher` SDK for the HTTP API and signatures, a small auth endpoint (what an application's
// /broadcasting/auth does) and a webhook receiver that checks signatures with the SDK.
import { createServer, type IncomingMessage, type Server } from "node:http";
import Pusher from "pusher";
import PusherJS from "pusher-js";
import { freePort } from "./ports.ts";
import { waitFor } from "./wait.ts";

export const APP = {
  appId: "4711",
  key: "app-key",
  secret: "app-secret",
  /** 32 bytes, base64: the SDK encrypts private-encrypted- events with keys derived from it. */
  encryptionMasterKeyBase64: Buffer.alloc(32, 7).toString("base64"),
};

/** The pusher SDK against a server's Pusher API (`secret` to sign with another one). */
export function pusherSdk(port: number, secret = APP.secret): Pusher {
  return new Pusher({
    appId: APP.appId,
    key: APP.key,
    secret,
    host: "127.0.0.1",
    port: String(port),
    useTLS: false,
    encryptionMasterKeyBase64: APP.encryptionMasterKeyBase64,
  });
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (d: string) => {
      body += d;
    });
    req.on("end", () => resolve(body));
    req.on("error", reject);
  });
}

async function listen(server: Server): Promise<number> {
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return port;
}

/**
 * The application's auth endpoint: POST /auth?user=<id>&name=<name> authorizes a channel
 * (presence members as <id>), POST /user-auth?user=<id> signs a user in. Channel names
 * containing "forbidden" get a signature for another socket (the server must refuse it).
 */
export async function authEndpoint(sdk: Pusher): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    const form = new URLSearchParams(await readBody(req));
    const socketId = form.get("socket_id") ?? "";
    const user = url.searchParams.get("user") ?? "1";
    let answer: object;
    if (url.pathname === "/user-auth") {
      answer = sdk.authenticateUser(socketId, { id: user, name: url.searchParams.get("name") ?? user });
    } else {
      const channel = form.get("channel_name") ?? "";
      const signedFor = channel.includes("forbidden") ? "1.1" : socketId;
      const member = channel.startsWith("presence-")
        ? { user_id: user, user_info: { name: url.searchParams.get("name") ?? user } }
        : undefined;
      answer = sdk.authorizeChannel(signedFor, channel, member);
    }
    // no keep-alive: a pooled socket the server closes meanwhile would fail the client's next auth
    res.writeHead(200, { "content-type": "application/json", connection: "close" });
    res.end(JSON.stringify(answer));
  });
  const port = await listen(server);
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

export interface WebhookCall {
  status: number;
  valid: boolean;
  key: string;
  body: { time_ms: number; events: Array<Record<string, unknown>> };
}

/** Records every webhook POST; `failFor(channel)` answers the next one with events of that channel with 500. */
export async function webhookReceiver(sdk: Pusher) {
  const calls: WebhookCall[] = [];
  let failChannel: string | undefined;
  const server = createServer(async (req, res) => {
    const rawBody = await readBody(req);
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) if (typeof v === "string") headers[k] = v;
    const hook = sdk.webhook({ headers, rawBody });
    const body = JSON.parse(rawBody) as WebhookCall["body"];
    const fail = failChannel !== undefined && body.events.some((e) => e.channel === failChannel);
    if (fail) failChannel = undefined;
    const status = fail ? 500 : 200;
    calls.push({ status, valid: hook.isValid(), key: headers["x-pusher-key"] ?? "", body });
    res.writeHead(status, { connection: "close" });
    res.end();
  });
  const port = await listen(server);
  return {
    url: `http://127.0.0.1:${port}/pusher/webhooks`,
    calls,
    failFor(channel: string) {
      failChannel = channel;
    },
    /** Events delivered (status 200) so far, in order. */
    delivered(): Array<Record<string, unknown>> {
      return calls.filter((c) => c.status === 200).flatMap((c) => c.body.events);
    },
    async waitFor(match: (e: Record<string, unknown>) => boolean, what: string) {
      return waitFor(
        () => this.delivered().find(match),
        `webhook ${what}; got ${JSON.stringify(this.delivered())}`,
      );
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

export interface ClientOptions {
  authUrl?: string;
  user?: string;
  name?: string;
}

/** The real pusher-js (Node build) pointed at a server, the way AnyCable's docs configure it. */
export function pusherClient(port: number, o: ClientOptions = {}): PusherJS {
  const q = `?user=${encodeURIComponent(o.user ?? "1")}&name=${encodeURIComponent(o.name ?? o.user ?? "1")}`;
  return new PusherJS(APP.key, {
    wsHost: "127.0.0.1",
    wsPort: port,
    forceTLS: false,
    disableStats: true,
    enabledTransports: ["ws"],
    cluster: "",
    channelAuthorization: { endpoint: `${o.authUrl ?? "http://127.0.0.1:1"}/auth${q}`, transport: "ajax" },
    userAuthentication: { endpoint: `${o.authUrl ?? "http://127.0.0.1:1"}/user-auth${q}`, transport: "ajax" },
  });
}

export function connected(client: PusherJS): Promise<string> {
  return waitFor(
    () => (client.connection.state === "connected" ? client.connection.socket_id : undefined),
    `pusher-js connected (state ${client.connection.state})`,
  );
}

/** Records every event of a channel (pusher-js bind_global), to wait on in order. */
export function recorder(channel: { bind_global(cb: (event: string, data: unknown) => void): unknown }) {
  const events: Array<{ event: string; data: unknown }> = [];
  channel.bind_global((event, data) => {
    events.push({ event, data });
  });
  return {
    events,
    async next(event: string, what = event) {
      return waitFor(() => events.find((e) => e.event === event), `${what}; got ${JSON.stringify(events)}`);
    },
    names: () => events.map((e) => e.event),
  };
}
