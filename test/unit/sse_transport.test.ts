// The SSE transport in-process: requests answered by SseTransport over a real Node, their event
// streams read as a runtime would read them. Statuses, events, the end of a stream on every path
// (disconnect, client gone, slow client, shutdown), pings, and no pong deadline for SSE.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Hub } from "../../src/hub/hub.ts";
import { Metrics } from "../../src/metrics/registry.ts";
import type { ChannelContext, CommandResult, ConnectResult, Controller } from "../../src/node/controller.ts";
import { Node, type NodeOptions } from "../../src/node/node.ts";
import { corsHeaders } from "../../src/transports/cors.ts";
import { requestGate } from "../../src/transports/request.ts";
import { SseTransport } from "../../src/transports/sse/handler.ts";
import { VERSION_STRING } from "../../src/version.ts";
import { nodeBroker, silentLogger } from "../support/fake_node.ts";
import { waitFor } from "../support/wait.ts";

const CHAT = '{"channel":"Chat"}';

/** Identifies by ?user=, refuses ?reject, fails ?error; Chat streams "chat", Reject rejects, Boom fails. */
class TestController implements Controller {
  readonly disconnects: string[] = [];
  authenticates = 0;
  /** Authentication waits for this when set (a slow backend). */
  gate: Promise<void> | undefined;

  async authenticate({ env }: { env: { url: string } }): Promise<ConnectResult> {
    this.authenticates++;
    await this.gate;
    const url = new URL(env.url);
    if (url.searchParams.has("error")) throw new Error("backend down");
    if (url.searchParams.has("reject")) {
      return {
        status: "failure",
        identifiers: "",
        transmissions: ['{"type":"disconnect","reason":"unauthorized","reconnect":false}'],
      };
    }
    const user = url.searchParams.get("user") ?? "anon";
    return {
      status: "success",
      identifiers: JSON.stringify({ user }),
      transmissions: ['{"type":"welcome"}'],
    };
  }

  async subscribe({ identifier }: ChannelContext): Promise<CommandResult> {
    const channel = (JSON.parse(identifier) as { channel: string }).channel;
    if (channel === "Boom") throw new Error("boom");
    if (channel === "Reject") {
      return {
        status: "failure",
        transmissions: [JSON.stringify({ type: "reject_subscription", identifier })],
      };
    }
    return {
      status: "success",
      streams: [channel.toLowerCase()],
      transmissions: [JSON.stringify({ type: "confirm_subscription", identifier })],
    };
  }

  async unsubscribe(): Promise<CommandResult> {
    return { status: "success", transmissions: [] };
  }

  async perform(): Promise<CommandResult> {
    return { status: "success", transmissions: [] };
  }

  async disconnect({ identifiers }: { identifiers: string }): Promise<void> {
    this.disconnects.push(identifiers);
  }
}

function setup(
  over: Partial<NodeOptions> = {},
  gateOver: { maxConn?: number; allowedOrigins?: string } = {},
) {
  const controller = new TestController();
  const metrics = new Metrics();
  const hub = new Hub();
  const node: Node = new Node({
    controller,
    hub,
    broker: nodeBroker(() => node),
    metrics,
    logger: silentLogger,
    pongTimeoutMs: 0,
    pingIntervalMs: 3000,
    pingPrecision: "s",
    nativePings: false,
    maxPendingBytes: 1000,
    writeTimeoutMs: 2000,
    disconnectMode: "always",
    maxSubscriptions: 0,
    random: () => 0.5,
    ...over,
  });
  const allowedOrigins = gateOver.allowedOrigins ?? "";
  const gate = requestGate(
    { allowedOrigins, maxConn: gateOver.maxConn ?? 0, proxyHeaders: [], proxyCookies: [], jwtParam: "" },
    node,
  );
  const sse = new SseTransport(
    node,
    gate,
    corsHeaders(allowedOrigins),
    { closeTimeoutMs: 2000 },
    metrics,
    silentLogger,
  );
  const request = (path: string, init?: RequestInit) => {
    const req = new Request(`http://localhost${path}`, init);
    return sse.handle(req, new URL(req.url), "127.0.0.1");
  };
  const gauge = () => {
    metrics.collect();
    return metrics.gaugeValue("sse_clients_num");
  };
  return { node, hub, controller, metrics, sse, request, gauge };
}

/** Reads a response's event stream, event by event (the blank line ends one). */
class Events {
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  private readonly decoder = new TextDecoder();
  private buffer = "";
  ended = false;

  constructor(res: Response) {
    assert.ok(res.body, "a streamed body");
    this.reader = res.body.getReader();
  }

  /** The next event's text, or undefined once the stream ended. */
  async next(): Promise<string | undefined> {
    for (;;) {
      const end = this.buffer.indexOf("\n\n");
      if (end >= 0) {
        const event = this.buffer.slice(0, end);
        this.buffer = this.buffer.slice(end + 2);
        return event;
      }
      const { done, value } = await this.reader.read();
      if (done) {
        this.ended = true;
        return undefined;
      }
      this.buffer += this.decoder.decode(value, { stream: true });
    }
  }

  cancel(): Promise<void> {
    return this.reader.cancel();
  }
}

describe("SseTransport", () => {
  it("answers a GET with an event stream: welcome, confirmation, then the channel's messages", async () => {
    const { node, request, gauge } = setup();
    const res = await request("/events?channel=Chat&user=ann");
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "text/event-stream; charset=utf-8");
    assert.equal(res.headers.get("cache-control"), "private, no-cache, no-store, must-revalidate, max-age=0");
    assert.equal(res.headers.get("x-accel-buffering"), "no");
    assert.equal(res.headers.get("x-anycable-version"), VERSION_STRING);
    assert.equal(res.headers.get("access-control-allow-origin"), "*");
    const events = new Events(res);
    assert.equal(await events.next(), 'event: welcome\ndata: {"type":"welcome"}');
    assert.equal(
      await events.next(),
      `event: confirm_subscription\ndata: {"type":"confirm_subscription","identifier":${JSON.stringify(CHAT)}}`,
    );
    assert.equal(gauge(), 1);
    assert.equal(node.size, 1);
    node.broadcast({ stream: "chat", dataJson: '{"text":"hi"}' });
    node.broadcast({ stream: "chat", dataJson: '"line 1\\nline 2"' });
    assert.equal(await events.next(), 'data: {"text":"hi"}');
    assert.equal(await events.next(), "data: line 1\ndata: line 2");
  });

  it("gets broadcasts one by one where the runtime fans WebSockets out natively (Bun's topics)", async () => {
    const { node, hub, request } = setup();
    const published: string[] = [];
    hub.setNativeFanout({ publish: (topic) => published.push(topic) });
    const events = new Events(await request("/events?channel=Chat"));
    await events.next();
    await events.next();
    node.broadcast({ stream: "chat", dataJson: "1" });
    assert.equal(await events.next(), "data: 1");
    assert.deepEqual(published, []);
  });

  it("ends the stream after a remote disconnect without reconnect, with retry: so EventSource stays away", async () => {
    const { node, controller, request, gauge } = setup();
    const events = new Events(await request("/events?channel=Chat&user=bob"));
    await events.next();
    await events.next();
    node.remoteDisconnect(JSON.stringify({ user: "bob" }), false);
    assert.equal(
      await events.next(),
      'event: disconnect\ndata: {"type":"disconnect","reason":"remote","reconnect":false}\nretry: 31536000000',
    );
    assert.equal(await events.next(), undefined);
    assert.equal(gauge(), 0);
    assert.equal(node.size, 0);
    await waitFor(() => controller.disconnects.length === 1, "the Disconnect call");
  });

  it("gives POST clients the whole Action Cable messages, for every subscription of the body", async () => {
    const { node, request } = setup();
    const body = [CHAT, '{"channel":"News"}']
      .map((identifier) => JSON.stringify({ command: "subscribe", identifier }))
      .join("\n");
    const events = new Events(await request("/events?user=c", { method: "POST", body }));
    assert.equal(await events.next(), 'event: welcome\ndata: {"type":"welcome"}');
    assert.match((await events.next()) ?? "", /^event: confirm_subscription\n/);
    assert.match((await events.next()) ?? "", /^event: confirm_subscription\n.*News/);
    node.broadcast({ stream: "news", dataJson: "1" });
    assert.equal(await events.next(), 'data: {"identifier":"{\\"channel\\":\\"News\\"}","message":1}');
  });

  it("POST without commands: a stream with the welcome only", async () => {
    const { request } = setup();
    const res = await request("/events", { method: "POST" });
    assert.equal(res.status, 200);
    const events = new Events(res);
    assert.equal(await events.next(), 'event: welcome\ndata: {"type":"welcome"}');
  });

  it("raw mode: data messages only, no welcome, confirmation or pings", async () => {
    const { node, request } = setup();
    const events = new Events(await request("/events?channel=Chat&raw=1"));
    node.tick(Date.now() + 10_000); // a ping is due
    node.broadcast({ stream: "chat", dataJson: '"x"' });
    assert.equal(await events.next(), "data: x");
  });

  it("sends pings from the node's ticker, and holds SSE sessions to no pong deadline", async () => {
    const { node, request } = setup({ pongTimeoutMs: 1000, nativePings: true });
    const events = new Events(await request("/events?channel=Chat"));
    await events.next();
    await events.next();
    const t = Date.now();
    node.tick(t + 5000);
    assert.match((await events.next()) ?? "", /^event: ping\ndata: \{"type":"ping","message":\d+\}$/);
    node.tick(t + 60_000);
    assert.equal(node.size, 1, "not disconnected for missing pongs");
  });

  it("401 when authentication is refused (nothing of the stream is sent), 400 when it fails", async () => {
    const { node, request } = setup();
    const refused = await request("/events?channel=Chat&reject");
    assert.equal(refused.status, 401);
    assert.equal(await refused.text(), "");
    const failed = await request("/events?channel=Chat&error");
    assert.equal(failed.status, 400);
    assert.equal(node.size, 0);
  });

  it("400 when a subscription is rejected or fails; the session goes (with its Disconnect call)", async () => {
    const { node, controller, request } = setup();
    for (const channel of ["Reject", "Boom"]) {
      const res = await request(`/events?channel=${channel}&user=${channel}`);
      assert.equal(res.status, 400, channel);
      assert.equal(await res.text(), "");
    }
    assert.equal(node.size, 0);
    await waitFor(() => controller.disconnects.length === 2, "the Disconnect calls");
    // a POST stops at the first subscription that is not confirmed
    const body = ['{"channel":"Chat"}', '{"channel":"Reject"}']
      .map((identifier) => JSON.stringify({ command: "subscribe", identifier }))
      .join("\n");
    assert.equal((await request("/events", { method: "POST", body })).status, 400);
    // a duplicate subscription fails too
    const dup = JSON.stringify({ command: "subscribe", identifier: CHAT });
    assert.equal((await request("/events", { method: "POST", body: `${dup}\n${dup}` })).status, 400);
  });

  it("400 without a channel, for a bad Last-Event-ID offset or history_since, before authenticating", async () => {
    const { controller, request } = setup();
    assert.equal((await request("/events")).status, 400);
    assert.equal((await request("/events?raw=1")).status, 400);
    assert.equal(
      (await request("/events?channel=Chat", { headers: { "Last-Event-ID": "x/e/s" } })).status,
      400,
    );
    assert.equal((await request("/events?channel=Chat&history_since=soon")).status, 400);
    assert.equal(controller.authenticates, 0);
    // an id without three parts is only ignored
    assert.equal((await request("/events?channel=Chat", { headers: { "Last-Event-ID": "12" } })).status, 200);
  });

  it("400 for a malformed POST line or a body over 64 KB (Connection: close), before authenticating", async () => {
    const { controller, request } = setup();
    const ok = JSON.stringify({ command: "subscribe", identifier: CHAT });
    assert.equal((await request("/events", { method: "POST", body: `${ok}\nnot json` })).status, 400);
    const big = `${ok}\n${" ".repeat(65_536)}`;
    const tooLarge = await request("/events", { method: "POST", body: big });
    assert.equal(tooLarge.status, 400);
    assert.equal(tooLarge.headers.get("connection"), "close");
    assert.equal(controller.authenticates, 0);
    // exactly 64 KB is fine
    const line = (pad: number) =>
      JSON.stringify({ command: "subscribe", identifier: CHAT, pad: "x".repeat(pad) });
    const exact = line(65_536 - line(0).length);
    assert.equal(new TextEncoder().encode(exact).length, 65_536);
    assert.equal((await request("/events", { method: "POST", body: exact })).status, 200);
  });

  it("OPTIONS answers the CORS preflight; other methods get 405", async () => {
    const { request } = setup({}, { allowedOrigins: "app.example" });
    const pre = await request("/events", { method: "OPTIONS", headers: { Origin: "https://app.example" } });
    assert.equal(pre.status, 200);
    assert.equal(pre.headers.get("access-control-allow-origin"), "https://app.example");
    assert.equal(pre.headers.get("access-control-allow-methods"), "POST, OPTIONS");
    assert.equal(pre.headers.get("access-control-allow-credentials"), "true");
    for (const method of ["PUT", "DELETE", "HEAD"])
      assert.equal((await request("/events", { method })).status, 405);
  });

  it("with --allowed_origins: serves requests without Origin, refuses a foreign Origin with 403", async () => {
    const { request } = setup({}, { allowedOrigins: "app.example" });
    assert.equal((await request("/events?channel=Chat")).status, 200);
    const own = await request("/events?channel=Chat", { headers: { Origin: "https://app.example" } });
    assert.equal(own.status, 200);
    assert.equal(own.headers.get("access-control-allow-origin"), "https://app.example");
    const foreign = await request("/events?channel=Chat", { headers: { Origin: "https://evil.example" } });
    assert.equal(foreign.status, 403);
    assert.equal(foreign.headers.get("access-control-allow-origin"), null);
  });

  it("refuses connections over --max-conn with 503 (SSE and WebSocket sessions count alike)", async () => {
    const { request } = setup({}, { maxConn: 1 });
    assert.equal((await request("/events?channel=Chat")).status, 200);
    const over = await request("/events?channel=Chat");
    assert.equal(over.status, 503);
    assert.equal(over.headers.get("access-control-allow-origin"), "*");
  });

  it("closes the session when the client goes away (the runtime cancels the stream)", async () => {
    const { node, controller, request, gauge } = setup();
    const events = new Events(await request("/events?channel=Chat&user=gone"));
    await events.next();
    assert.equal(gauge(), 1);
    await events.cancel();
    assert.equal(node.size, 0);
    assert.equal(gauge(), 0);
    await waitFor(() => controller.disconnects.length === 1, "the Disconnect call");
    assert.deepEqual(controller.disconnects, ['{"user":"gone"}']);
  });

  it("closes the session when the client goes away before it is answered (request aborted)", async () => {
    const { node, controller, sse } = setup();
    let release = () => {};
    controller.gate = new Promise((r) => (release = r));
    const abort = new AbortController();
    const req = new Request("http://localhost/events?channel=Chat", { signal: abort.signal });
    const answered = sse.handle(req, new URL(req.url), "127.0.0.1");
    await waitFor(() => controller.authenticates === 1, "the authenticate call");
    assert.equal(node.size, 1);
    abort.abort();
    assert.equal(node.size, 0);
    release();
    assert.equal((await answered).status, 400);
    assert.equal(sse.clientsCount, 0);
  });

  it("lets a client that does not read go as too slow, then cuts its stream after the write timeout", async () => {
    const { node, metrics, request, sse } = setup();
    const res = await request("/events?channel=Chat");
    const reader = res.body!.getReader(); // never read
    const t = Date.now();
    for (let i = 0; i < 5; i++) node.broadcast({ stream: "chat", dataJson: JSON.stringify("x".repeat(400)) });
    node.tick(t + 250);
    node.tick(t + 500);
    assert.equal(metrics.counterValue("disconnected_slow_clients_total"), 1);
    assert.equal(node.size, 0);
    assert.equal(sse.clientsCount, 0);
    sse.tick(t + 1000);
    // still within --ws_write_timeout: the client may read the rest (disconnect event included)
    sse.tick(Date.now() + 2500);
    await assert.rejects(async () => {
      for (;;) if ((await reader.read()).done) return;
    }, /too slow/);
  });

  it("on shutdown every stream gets server_restart and ends; drain waits for the runtime to take it", async () => {
    const { node, request } = setup();
    const a = new Events(await request("/events?channel=Chat"));
    const b = new Events(await request("/events", { method: "POST" }));
    const closed = node.shutdown();
    for (const events of [a, b]) {
      let last: string | undefined;
      for (let e = await events.next(); e !== undefined; e = await events.next()) last = e;
      assert.equal(
        last,
        'event: disconnect\ndata: {"type":"disconnect","reason":"server_restart","reconnect":true}',
      );
    }
    await closed;
    const refused = await request("/events?channel=Chat");
    assert.equal(refused.status, 503);
  });

  it("drain returns once closed streams are taken, and at the deadline otherwise", async () => {
    const { node, request, sse } = setup();
    const events = new Events(await request("/events?channel=Chat"));
    await node.shutdown();
    const started = Date.now();
    const draining = sse.drain(AbortSignal.timeout(5000));
    for (let e = await events.next(); e !== undefined; e = await events.next());
    await draining;
    assert.ok(Date.now() - started < 4000, "drained before the deadline");
    // a stream nobody reads: drain gives up at the deadline
    const second = setup();
    await second.request("/events?channel=Chat");
    await second.node.shutdown();
    await second.sse.drain(AbortSignal.timeout(50));
  });
});
