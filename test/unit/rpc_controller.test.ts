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
import { authCtx, chanCtx, closedCtx } from "../support/contexts.ts";
import { waitFor } from "../support/wait.ts";

const ENV = (): SessionEnv => ({ url: "ws://h/cable", headers: { cookie: "c" }, cstate: {}, istate: {} });

type Step = (opts: CallOptions) => Promise<unknown> | unknown;

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
    return Promise.resolve().then(() => step(opts));
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
    const res = await controller.authenticate(authCtx("sid-9", ENV()));
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
    const res = await controller.authenticate(authCtx("s", ENV()));
    assert.equal(res?.status, "success");
    assert.equal(client.seen.length, 3);
    assert.equal(metrics.counterValue("rpc_retries_total"), 2);
    assert.equal(metrics.counterValue("rpc_call_total"), 1);
  });

  it("fails the call after the command timeout, counts an error and logs once per burst", async () => {
    const { client, metrics, controller, lines } = setup({ commandTimeoutMs: 1 });
    client.fallback = unavailable;
    for (let i = 0; i < 20; i++) await assert.rejects(controller.authenticate(authCtx(`s${i}`, ENV())));
    assert.equal(metrics.counterValue("rpc_call_total"), 20);
    assert.equal(metrics.counterValue("rpc_error_total"), 20);
    const errors = lines.filter((l) => l.includes("RPC call failed"));
    assert.equal(errors.length, 1, lines.join("\n"));
    assert.match(errors[0]!, /ERR RPC call failed method=Connect sid=s0 code=Unavailable/);
    client.fallback = () => create(ConnectionResponseSchema, { status: Status.SUCCESS });
    await controller.authenticate(authCtx("ok", ENV()));
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
      controller.perform(chanCtx("s", ENV(), "ids", "id"), "{}"),
      (e: ConnectError) => e.code === Code.DeadlineExceeded,
    );
    assert.equal(client.seen.length, 1);
    assert.equal(metrics.counterValue("rpc_timeout_total"), 1);
    assert.equal(metrics.counterValue("rpc_error_total"), 1);
  });

  it("an application ERROR fails Connect without counting a transport error", async () => {
    const { client, metrics, controller } = setup();
    client.script = [() => create(ConnectionResponseSchema, { status: Status.ERROR, errorMsg: "db down" })];
    await assert.rejects(controller.authenticate(authCtx("s", ENV())), ApplicationError);
    assert.equal(metrics.counterValue("rpc_error_total"), 0);
    // ... but a Disconnect ERROR is counted, as anycable-go does
    client.script = [() => create(DisconnectResponseSchema, { status: Status.ERROR, errorMsg: "x" })];
    await assert.rejects(controller.disconnect(closedCtx("s", ENV(), "ids"), []), ApplicationError);
    assert.equal(metrics.counterValue("rpc_error_total"), 1);
  });

  it("sends commands with the wire command names", async () => {
    const { client, controller } = setup();
    client.fallback = () => create(CommandResponseSchema, { status: Status.SUCCESS, streams: ["s"] });
    const env = ENV();
    env.istate.id = { room: "1" };
    const sub = await controller.subscribe(chanCtx("s", env, "ids", "id"));
    await controller.unsubscribe(chanCtx("s", env, "ids", "id"));
    await controller.perform(chanCtx("s", env, "ids", "id"), '{"action":"x"}');
    assert.deepEqual(sub?.streams, ["s"]);
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
    const calls = Array.from({ length: 10 }, (_, i) => controller.authenticate(authCtx(`s${i}`, ENV())));
    await waitFor(() => gates.length === 3, "three calls in flight");
    metrics.collect();
    assert.equal(metrics.gaugeValue("rpc_pending_num"), 7);
    // each finished call frees a slot for the next one, which then reaches the client
    for (let done = 0; done < 10; done++) {
      await waitFor(() => gates.length > 0, `call ${done + 1} in flight`);
      gates.shift()!();
    }
    await Promise.all(calls);
    assert.equal(max, 3);
    // the queue is FIFO: sessions are served in the order they asked
    assert.deepEqual(
      client.seen.map((c) => c.opts.sid),
      Array.from({ length: 10 }, (_, i) => `s${i}`),
    );
  });

  it("never makes a call whose session closed while it waited for a slot", async () => {
    const { client, metrics, controller, lines } = setup({ concurrency: 1 });
    let release: () => void = () => {};
    client.script = [
      async () => {
        await new Promise<void>((r) => {
          release = r;
        });
        return create(ConnectionResponseSchema, { status: Status.SUCCESS, identifiers: "holder" });
      },
    ];
    const holder = controller.authenticate(authCtx("holder", ENV()));
    await waitFor(() => client.seen.length === 1, "the holder's call in flight");
    const sessions = [new AbortController(), new AbortController(), new AbortController()];
    const queued = [
      controller.authenticate(authCtx("q0", ENV(), sessions[0]!.signal)),
      controller.perform(chanCtx("q1", ENV(), "ids", "id", sessions[1]!.signal), "{}"),
      controller.subscribe(chanCtx("q2", ENV(), "ids", "id", sessions[2]!.signal)),
    ];
    metrics.collect();
    assert.equal(metrics.gaugeValue("rpc_pending_num"), 3);
    sessions[0]!.abort();
    sessions[1]!.abort();
    // dropped as soon as the session closes, without waiting for a slot
    assert.equal(await queued[0], null);
    assert.equal(await queued[1], null);
    metrics.collect();
    assert.equal(metrics.gaugeValue("rpc_pending_num"), 1);
    assert.equal(metrics.counterValue("rpc_canceled_total"), 2);
    release();
    assert.equal((await holder)?.identifiers, "holder");
    // the live session still gets its call
    assert.equal((await queued[2])?.status, "success");
    assert.deepEqual(
      client.seen.map((c) => c.opts.sid),
      ["holder", "q2"],
    );
    assert.equal(metrics.counterValue("rpc_canceled_total"), 2);
    // cancelled calls are neither calls nor failures
    assert.equal(metrics.counterValue("rpc_call_total"), 2);
    assert.equal(metrics.counterValue("rpc_error_total"), 0);
    assert.doesNotMatch(lines.join("\n"), /RPC call failed/);
    // already closed before asking: not made either
    const closed = new AbortController();
    closed.abort();
    assert.equal(await controller.authenticate(authCtx("late", ENV(), closed.signal)), null);
    assert.equal(client.seen.length, 2);
    assert.equal(metrics.counterValue("rpc_canceled_total"), 3);
  });

  it("cancels a call in flight when its session closes, counted as canceled, not failed", async () => {
    const { client, metrics, controller, lines } = setup();
    // the transport rejects once the signal it was given aborts, as connect-node does
    const hang = (opts: CallOptions) =>
      new Promise((_, reject) => {
        opts.signal?.addEventListener("abort", () =>
          reject(new ConnectError("the operation was aborted", Code.Canceled)),
        );
      });
    client.script = [hang, hang];
    const connectSession = new AbortController();
    const connecting = controller.authenticate(authCtx("c", ENV(), connectSession.signal));
    const performSession = new AbortController();
    const performing = controller.perform(chanCtx("p", ENV(), "ids", "id", performSession.signal), "{}");
    await waitFor(() => client.seen.length === 2, "both calls in flight");
    assert.equal(client.seen[0]!.opts.signal, connectSession.signal);
    assert.equal(client.seen[1]!.opts.signal, performSession.signal);
    connectSession.abort();
    performSession.abort();
    assert.equal(await connecting, null);
    assert.equal(await performing, null);
    assert.equal(metrics.counterValue("rpc_canceled_total"), 2);
    assert.equal(metrics.counterValue("rpc_error_total"), 0);
    assert.equal(metrics.counterValue("rpc_retries_total"), 0, "Canceled is retryable, but not this one");
    // anycable-go counts Connect before it runs and commands after they return
    assert.equal(metrics.counterValue("rpc_call_total"), 1);
    assert.equal(controller.limiter.busy, 0, "the slots are given back");
    assert.doesNotMatch(lines.join("\n"), /RPC call failed/);
  });

  it("stops retrying once the session closes", async () => {
    const { client, metrics, controller } = setup();
    const session = new AbortController();
    client.script = [
      () => {
        session.abort(); // the client leaves while the backend is unavailable
        unavailable();
      },
    ];
    assert.equal(await controller.authenticate(authCtx("s", ENV(), session.signal)), null);
    assert.equal(client.seen.length, 1);
    assert.equal(metrics.counterValue("rpc_retries_total"), 0);
    assert.equal(metrics.counterValue("rpc_canceled_total"), 1);
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
    const call = controller.authenticate(authCtx("s", ENV()));
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
        host: "localhost:50051",
        impl: "grpc",
        tls: { enabled: false, rootCa: "", verify: true },
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
