import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  type CommandMessage,
  CommandResponseSchema,
  type ConnectionRequest,
  ConnectionResponseSchema,
  type DisconnectRequest,
  DisconnectResponseSchema,
  Status,
} from "../../gen/anycable/rpc_pb.ts";
import { Logger } from "../../src/log/logger.ts";
import { Metrics } from "../../src/metrics/registry.ts";
import type { SessionEnv } from "../../src/node/controller.ts";
import type { CallOptions, RpcClient } from "../../src/rpc/client.ts";
import { RpcController } from "../../src/rpc/controller.ts";
import { ApplicationError } from "../../src/rpc/convert.ts";
import { rpcAnnouncement } from "../../src/rpc/factory.ts";
import { waitFor } from "../support/wait.ts";

const ENV = (): SessionEnv => ({ url: "ws://h/cable", headers: { cookie: "c" }, cstate: {}, istate: {} });

type Step = () => Promise<unknown> | unknown;

/** An RpcClient whose answers are scripted per call. */
class ScriptedClient implements RpcClient {
  readonly impl = "grpc";
  readonly seen: Array<{ method: string; req: unknown; opts: CallOptions }> = [];
  script: Step[] = [];
  fallback: Step = () => create(ConnectionResponseSchema, { status: Status.SUCCESS, identifiers: "ids" });
  closed = false;
  private answer(method: string, req: unknown, opts: CallOptions) {
    this.seen.push({ method, req, opts });
    const step = this.script.shift() ?? this.fallback;
    return Promise.resolve().then(step);
  }
  connect(req: ConnectionRequest, opts: CallOptions) {
    return this.answer("connect", req, opts) as never;
  }
  command(req: CommandMessage, opts: CallOptions) {
    return this.answer("command", req, opts) as never;
  }
  disconnect(req: DisconnectRequest, opts: CallOptions) {
    return this.answer("disconnect", req, opts) as never;
  }
  ready() {
    return undefined;
  }
  async close() {
    this.closed = true;
  }
}

function setup(opts: { concurrency?: number; commandTimeoutMs?: number } = {}) {
  const client = new ScriptedClient();
  const metrics = new Metrics();
  const lines: string[] = [];
  const controller = new RpcController({
    client,
    concurrency: opts.concurrency ?? 28,
    requestTimeoutMs: 0,
    commandTimeoutMs: opts.commandTimeoutMs ?? 3000,
    metrics,
    logger: new Logger("info", "text", {}, { write: (l) => lines.push(l) }),
    sleep: async () => {},
  });
  return { client, metrics, lines, controller };
}

const unavailable = () => {
  throw new ConnectError("connect ECONNREFUSED", Code.Unavailable);
};

describe("RPC controller", () => {
  it("authenticates through Connect with the session id and counts the call", async () => {
    const { client, metrics, controller } = setup();
    client.script = [
      () =>
        create(ConnectionResponseSchema, {
          status: Status.SUCCESS,
          identifiers: '{"u":1}',
          transmissions: ['{"type":"welcome"}'],
        }),
    ];
    const res = await controller.authenticate("sid-9", ENV());
    assert.deepEqual(res, {
      status: "success",
      identifiers: '{"u":1}',
      transmissions: ['{"type":"welcome"}'],
      cstate: undefined,
    });
    assert.equal(client.seen[0]!.opts.sid, "sid-9");
    assert.equal(metrics.counterValue("rpc_call_total"), 1);
    assert.equal(metrics.counterValue("rpc_error_total"), 0);
  });

  it("retries an unavailable backend and counts the retries", async () => {
    const { client, metrics, controller } = setup();
    client.script = [unavailable, unavailable];
    const res = await controller.authenticate("s", ENV());
    assert.equal(res.status, "success");
    assert.equal(client.seen.length, 3);
    assert.equal(metrics.counterValue("rpc_retries_total"), 2);
    assert.equal(metrics.counterValue("rpc_call_total"), 1);
  });

  it("fails the call after the command timeout, counts an error and logs once per burst", async () => {
    const { client, metrics, controller, lines } = setup({ commandTimeoutMs: 1 });
    client.fallback = unavailable;
    for (let i = 0; i < 20; i++) await assert.rejects(controller.authenticate(`s${i}`, ENV()));
    assert.equal(metrics.counterValue("rpc_call_total"), 20);
    assert.equal(metrics.counterValue("rpc_error_total"), 20);
    const errors = lines.filter((l) => l.includes("RPC call failed"));
    assert.equal(errors.length, 1, lines.join("\n"));
    assert.match(errors[0]!, /ERR RPC call failed method=Connect sid=s0 code=Unavailable/);
    client.fallback = () => create(ConnectionResponseSchema, { status: Status.SUCCESS });
    await controller.authenticate("ok", ENV());
    assert.match(lines.join("\n"), /INF RPC calls succeed again failed_calls=20/);
  });

  it("counts deadline failures as timeouts and does not retry them", async () => {
    const { client, metrics, controller } = setup();
    client.script = [
      () => {
        throw new ConnectError("deadline", Code.DeadlineExceeded);
      },
    ];
    await assert.rejects(
      controller.perform("s", ENV(), "ids", "id", "{}"),
      (e: ConnectError) => e.code === Code.DeadlineExceeded,
    );
    assert.equal(client.seen.length, 1);
    assert.equal(metrics.counterValue("rpc_timeout_total"), 1);
    assert.equal(metrics.counterValue("rpc_error_total"), 1);
  });

  it("an application ERROR fails Connect without counting a transport error", async () => {
    const { client, metrics, controller } = setup();
    client.script = [() => create(ConnectionResponseSchema, { status: Status.ERROR, errorMsg: "db down" })];
    await assert.rejects(controller.authenticate("s", ENV()), ApplicationError);
    assert.equal(metrics.counterValue("rpc_error_total"), 0);
    // ... but a Disconnect ERROR is counted, as anycable-go does
    client.script = [() => create(DisconnectResponseSchema, { status: Status.ERROR, errorMsg: "x" })];
    await assert.rejects(controller.disconnect("s", ENV(), "ids", []), ApplicationError);
    assert.equal(metrics.counterValue("rpc_error_total"), 1);
  });

  it("sends commands with the wire command names", async () => {
    const { client, controller } = setup();
    client.fallback = () => create(CommandResponseSchema, { status: Status.SUCCESS, streams: ["s"] });
    const env = ENV();
    env.istate.id = { room: "1" };
    const sub = await controller.subscribe("s", env, "ids", "id");
    await controller.unsubscribe("s", env, "ids", "id");
    await controller.perform("s", env, "ids", "id", '{"action":"x"}');
    assert.deepEqual(sub.streams, ["s"]);
    const cmds = client.seen.map((c) => (c.req as CommandMessage).command);
    assert.deepEqual(cmds, ["subscribe", "unsubscribe", "message"]);
    assert.deepEqual((client.seen[0]!.req as CommandMessage).env?.istate, { room: "1" });
    assert.equal((client.seen[2]!.req as CommandMessage).data, '{"action":"x"}');
  });

  it("never has more than --rpc_concurrency calls in flight and reports the pending ones", async () => {
    const { client, metrics, controller } = setup({ concurrency: 3 });
    const gates: Array<() => void> = [];
    let inflight = 0;
    let max = 0;
    client.fallback = async () => {
      inflight++;
      max = Math.max(max, inflight);
      await new Promise<void>((r) => gates.push(r));
      inflight--;
      return create(ConnectionResponseSchema, { status: Status.SUCCESS });
    };
    const calls = Array.from({ length: 10 }, (_, i) => controller.authenticate(`s${i}`, ENV()));
    await waitFor(() => gates.length === 3, "three calls in flight");
    metrics.collect();
    assert.equal(metrics.gaugeValue("rpc_pending_num"), 7);
    while (client.seen.length < 10 || gates.length > 0) {
      gates.shift()?.();
      await new Promise((r) => setTimeout(r, 0));
    }
    await Promise.all(calls);
    assert.equal(max, 3);
    // the queue is FIFO: sessions are served in the order they asked
    assert.deepEqual(
      client.seen.map((c) => c.opts.sid),
      Array.from({ length: 10 }, (_, i) => `s${i}`),
    );
  });

  it("waits for calls in flight on shutdown, then closes the client", async () => {
    const { client, controller, lines } = setup();
    let release: () => void = () => {};
    client.fallback = async () => {
      await new Promise<void>((r) => {
        release = r;
      });
      return create(ConnectionResponseSchema, { status: Status.SUCCESS });
    };
    const call = controller.authenticate("s", ENV());
    await waitFor(() => client.seen.length === 1, "call started");
    const stopping = controller.shutdown();
    assert.equal(client.closed, false);
    release();
    await stopping;
    await call;
    assert.equal(client.closed, true);
    assert.match(lines.join("\n"), /waiting for active RPC calls to finish num=1/);
  });

  it("announces itself like anycable-go", () => {
    const line = rpcAnnouncement(
      {
        rpc: { host: "localhost:50051", impl: "grpc", tls: { enabled: false, rootCa: "", verify: true } },
        proxyHeaders: ["cookie", "x-api-token"],
        proxyCookies: [],
      } as never,
      28,
    );
    assert.equal(
      line,
      "RPC controller initialized: localhost:50051 (concurrency: 28, impl: grpc, enable_tls: false, proto_versions: v1, proxy_headers: cookie,x-api-token, proxy_cookies: <all>)",
    );
  });
});
