// The unary gRPC transport against a hand-written node:http2 server
// (test/support/h2_script_server.mjs, its own Node process) that answers each call the way the
// call's `x-scenario` metadata asks: statuses, headers, trailers, frames, silence, GOAWAY. Every
// wire rule is checked on its own; the grpc-js interplay is covered by rpc_grpc.test.ts.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { constants } from "node:http2";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { create, fromBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { ConnectionRequestSchema, RPC, Status } from "../../gen/anycable/rpc_pb.ts";
import {
  decodeGrpcMessage,
  encodeTimeout,
  GrpcChannel,
  type GrpcChannelOptions,
} from "../../src/rpc/grpc_transport.ts";
import { isRetryable } from "../../src/rpc/retry.ts";
import { waitFor } from "../support/wait.ts";

const REQUEST = create(ConnectionRequestSchema, { env: { url: "ws://x/cable", headers: { cookie: "a=1" } } });
const MAIN = fileURLToPath(new URL("../support/h2_script_server.mjs", import.meta.url));

interface ServerEvent {
  event: "session" | "request" | "close" | "ping" | "gone";
  session: number;
  stream?: number;
  scenario?: string;
  headers?: Record<string, string>;
  body?: string;
  rstCode?: number;
}

/** The scripted server process and what it reported. */
class ScriptServer {
  port = 0;
  readonly events: ServerEvent[] = [];
  private child!: ChildProcess;
  private buf = "";

  async start(): Promise<this> {
    this.child = spawn("node", [MAIN], { stdio: ["pipe", "pipe", "inherit"] });
    this.child.stdout?.on("data", (d) => {
      this.buf += d.toString();
      for (let nl = this.buf.indexOf("\n"); nl >= 0; nl = this.buf.indexOf("\n")) {
        const line = JSON.parse(this.buf.slice(0, nl));
        this.buf = this.buf.slice(nl + 1);
        if (line.port) this.port = line.port;
        else this.events.push(line);
      }
    });
    await waitFor(() => this.port, "scripted HTTP/2 server", 20_000);
    return this;
  }

  of(kind: ServerEvent["event"]): ServerEvent[] {
    return this.events.filter((e) => e.event === kind);
  }

  /** Waits for the request that carried `sid` (every call has its own). */
  request(sid: string): Promise<ServerEvent> {
    return waitFor(() => this.of("request").find((e) => e.headers?.sid === sid), `request ${sid}`);
  }

  send(cmd: string): void {
    this.child.stdin?.write(`${cmd}\n`);
  }

  kill(): void {
    this.child.kill("SIGKILL");
  }

  stop(): void {
    this.child.stdin?.end();
    this.child.kill();
  }
}

let sids = 0;

function channel(port: number, extra: Partial<GrpcChannelOptions> = {}): GrpcChannel {
  return new GrpcChannel({ address: `127.0.0.1:${port}`, ...extra });
}

/** A Connect call asking the server for `scenario`; its unique sid is in `.sid`. */
function call(ch: GrpcChannel, scenario: string, timeoutMs?: number) {
  const sid = `sid-${++sids}`;
  const promise = ch.unary(
    RPC.method.connect,
    REQUEST,
    { sid, protov: "v1", "x-scenario": scenario },
    { timeoutMs },
  );
  return Object.assign(promise, { sid });
}

/** The rejection of `p`, which must come within `ms` (a missing deadline must not hang the run). */
async function failure(p: Promise<unknown>, ms = 10_000): Promise<ConnectError> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  try {
    await Promise.race([p, hang]);
  } catch (err) {
    assert.ok(err instanceof ConnectError, `not a ConnectError: ${err}`);
    return err;
  } finally {
    clearTimeout(timer);
  }
  assert.fail("the call succeeded");
}

describe("gRPC transport: the wire", () => {
  let srv: ScriptServer;
  before(async () => {
    srv = await new ScriptServer().start();
  });
  after(() => srv.stop());

  it("POSTs one length-prefixed message with gRPC headers, metadata and grpc-timeout", async () => {
    const ch = channel(srv.port);
    const first = call(ch, "ok", 1500);
    const res = await first;
    assert.equal(res.status, Status.SUCCESS);
    assert.deepEqual(res.transmissions, ["hi"]);
    const { headers, body } = await srv.request(first.sid);
    assert.equal(headers![":method"], "POST");
    assert.equal(headers![":path"], "/anycable.RPC/Connect");
    assert.equal(headers!["content-type"], "application/grpc+proto");
    assert.equal(headers!.te, "trailers");
    assert.equal(headers!["grpc-timeout"], "1500m");
    assert.equal(headers!.protov, "v1");
    assert.match(String(headers!["user-agent"]), /^grpc-anycable-ts\//);
    const bytes = Buffer.from(body!, "base64");
    assert.equal(bytes[0], 0);
    assert.equal(bytes.readUInt32BE(1), bytes.length - 5);
    const sent = fromBinary(ConnectionRequestSchema, bytes.subarray(5));
    assert.equal(sent.env?.url, "ws://x/cable");
    assert.deepEqual(sent.env?.headers, { cookie: "a=1" });
    // no deadline, no grpc-timeout; the same connection
    const second = call(ch, "ok");
    await second;
    const again = await srv.request(second.sid);
    assert.equal(again.headers!["grpc-timeout"], undefined);
    assert.equal(again.session, (await srv.request(first.sid)).session);
    assert.equal(ch.openConnections(), 1);
    ch.close();
  });

  it("reads a message split across DATA frames", async () => {
    const ch = channel(srv.port);
    const res = await call(ch, "split");
    assert.equal(res.transmissions[0]!.length, 200_000);
    ch.close();
  });

  it("maps HTTP statuses of non-gRPC responses like grpc-go", async () => {
    const cases: Array<[number, Code]> = [
      [400, Code.Internal],
      [401, Code.Unauthenticated],
      [403, Code.PermissionDenied],
      [404, Code.Unimplemented],
      [429, Code.Unavailable],
      [500, Code.Unknown],
      [502, Code.Unavailable],
      [503, Code.Unavailable],
      [504, Code.Unavailable],
    ];
    const ch = channel(srv.port);
    for (const [status, code] of cases) {
      // the response also says grpc-status 0: the HTTP status decides
      const err = await failure(call(ch, `http:${status}`));
      assert.equal(err.code, code, `HTTP ${status}: got ${Code[err.code]}`);
      assert.match(err.rawMessage, new RegExp(`unexpected HTTP status code received from server: ${status}`));
    }
    ch.close();
  });

  it("rejects a 200 response that is not gRPC", async () => {
    const ch = channel(srv.port);
    const err = await failure(call(ch, "html"));
    assert.equal(err.code, Code.Unknown, `${Code[err.code]}: ${err.rawMessage}`);
    assert.match(err.rawMessage, /unexpected content-type "text\/html"/);
    ch.close();
  });

  it("takes the status of a trailers-only response from its headers", async () => {
    const ch = channel(srv.port);
    const err = await failure(call(ch, "trailers-only"));
    assert.equal(err.code, Code.PermissionDenied);
    assert.equal(err.rawMessage, "go away");
    ch.close();
  });

  it("takes the status from the trailers and percent-decodes grpc-message", async () => {
    const ch = channel(srv.port);
    const err = await failure(call(ch, "encoded-message"));
    assert.equal(err.code, Code.NotFound);
    assert.equal(err.rawMessage, "café 100% %zz");
    // an error status wins over a message that came with it
    const busy = await failure(call(ch, "error-with-message"));
    assert.equal(busy.code, Code.Unavailable);
    assert.equal(busy.rawMessage, "busy");
    ch.close();
  });

  it("fails calls without a status, without a message, with two messages, or compressed", async () => {
    const ch = channel(srv.port);
    const cases: Array<[string, Code, RegExp]> = [
      ["no-status", Code.Unknown, /^$/], // trailers without grpc-status (grpc-go: Unknown)
      ["trailers-only-no-status", Code.Unknown, /^$/],
      ["no-trailers", Code.Internal, /without sending trailers/],
      ["no-message", Code.Internal, /received no response message/],
      ["two-messages", Code.Internal, /received another message/],
      ["compressed", Code.Internal, /compressed flag/],
      ["truncated", Code.Internal, /EOF/],
      ["bad-status", Code.Internal, /malformed grpc-status/],
    ];
    for (const [scenario, code, message] of cases) {
      const err = await failure(call(ch, scenario));
      assert.equal(err.code, code, `${scenario}: got ${Code[err.code]} ${err.rawMessage}`);
      assert.match(err.rawMessage, message, scenario);
    }
    ch.close();
  });

  it("refuses a response larger than the receive limit (ResourceExhausted)", async () => {
    const small = channel(srv.port, { maxRecvSize: 1000 });
    const err = await failure(call(small, "big:2000"));
    assert.equal(err.code, Code.ResourceExhausted);
    assert.match(err.rawMessage, /received message larger than max \(20\d\d vs\. 1000\)/);
    small.close();
    // the length prefix alone decides, before the body arrives; 4 MiB by default
    const byDefault = channel(srv.port);
    const err2 = await failure(call(byDefault, "huge-prefix", 5000));
    assert.equal(err2.code, Code.ResourceExhausted);
    assert.match(err2.rawMessage, /\(5242880 vs\. 4194304\)/);
    byDefault.close();
    const larger = channel(srv.port, { maxRecvSize: 4000 });
    assert.equal((await call(larger, "big:2000")).transmissions[0]!.length, 2000);
    larger.close();
  });

  it("refuses a request larger than the send limit before sending anything", async () => {
    const sessionsBefore = srv.of("session").length;
    const ch = channel(srv.port, { maxSendSize: 10 });
    const refused = call(ch, "ok");
    const err = await failure(refused);
    assert.equal(err.code, Code.ResourceExhausted);
    assert.match(err.rawMessage, /trying to send message larger than max \(\d+ vs\. 10\)/);
    ch.close();
    // a later call's arrival proves the server has reported everything before it
    const probe = channel(srv.port);
    const marker = call(probe, "ok");
    await marker;
    await srv.request(marker.sid);
    assert.equal(srv.of("session").length, sessionsBefore + 1, "only the probe opened a connection");
    assert.equal(
      srv.of("request").find((e) => e.headers?.sid === refused.sid),
      undefined,
    );
    probe.close();
  });

  it("cancels the stream when the deadline passes (DeadlineExceeded)", async () => {
    const ch = channel(srv.port);
    const started = Date.now();
    const hung = call(ch, "hang", 80);
    const err = await failure(hung, 2000);
    assert.equal(err.code, Code.DeadlineExceeded);
    assert.ok(Date.now() - started >= 70, "not before the deadline");
    const req = await srv.request(hung.sid);
    assert.equal(req.headers!["grpc-timeout"], "80m");
    // the server sees the stream reset with CANCEL
    const closed = await waitFor(
      () => srv.of("close").find((e) => e.session === req.session && e.stream === req.stream),
      "stream closed at the server",
    );
    assert.equal(closed.rstCode, constants.NGHTTP2_CANCEL);
    ch.close();
  });

  it("moves new calls to a fresh connection after a GOAWAY; the call in flight still finishes", async () => {
    const ch = channel(srv.port);
    const first = call(ch, "hold", 5000);
    const held = await srv.request(first.sid);
    assert.equal(ch.openConnections(), 1);
    // graceful shutdown: streams up to the one in flight may finish
    srv.send("goaway");
    await waitFor(() => ch.openConnections() === 0, "the connection to stop taking calls");
    // the next call goes straight to a new connection while the old one still carries the first
    const next = call(ch, "ok", 5000);
    assert.equal((await next).status, Status.SUCCESS);
    const req = await srv.request(next.sid);
    assert.ok(req.session > held.session, "a second connection");
    assert.equal(ch.openConnections(), 1);
    srv.send("release");
    assert.equal((await first).status, Status.SUCCESS);
    ch.close();
  });
});

describe("gRPC transport: connections retired after a number of calls (the Deno mode)", () => {
  it("hands each connection at most that many calls and closes the full ones itself", async () => {
    const srv = await new ScriptServer().start();
    try {
      const ch = channel(srv.port, { maxStreamsPerSession: 4 });
      // sequential calls, then a burst while a connection is still connecting
      for (let i = 0; i < 6; i++) assert.equal((await call(ch, "ok", 5000)).status, Status.SUCCESS);
      const burst = Array.from({ length: 7 }, () => call(ch, "ok", 5000));
      assert.equal(
        ch.openConnections(),
        0,
        "the full connection takes no new calls; the fresh one is not up yet",
      );
      for (const r of await Promise.all(burst)) assert.equal(r.status, Status.SUCCESS);
      await waitFor(() => srv.of("request").length === 13, "the server to report 13 requests");
      const perSession = new Map<number, number>();
      for (const r of srv.of("request")) perSession.set(r.session, (perSession.get(r.session) ?? 0) + 1);
      assert.deepEqual([...perSession.values()], [4, 4, 4, 1], "13 calls over 4 connections, 4 each at most");
      // the three full ones were closed by the client once their calls finished; the last stays
      const full = [...perSession.entries()].filter(([, n]) => n === 4).map(([s]) => s);
      await waitFor(
        () => full.every((s) => srv.of("gone").some((e) => e.session === s)),
        "the full connections to close",
      );
      assert.equal(ch.openConnections(), 1);
      assert.ok(!srv.of("gone").some((e) => e.session === Math.max(...perSession.keys())));
      ch.close();
    } finally {
      srv.kill();
    }
  });
});

describe("gRPC transport: keepalive and idle connections", () => {
  let srv: ScriptServer;
  before(async () => {
    srv = await new ScriptServer().start();
  });
  after(() => srv.stop());

  /** Every event the server emitted so far has been read once a fresh call's request shows up. */
  async function sync(): Promise<void> {
    const ch = channel(srv.port);
    const c = call(ch, "ok");
    await c;
    await srv.request(c.sid);
    ch.close();
  }

  it("pings while a call is in flight, never while idle", async () => {
    const ch = channel(srv.port, { pingIntervalMs: 40 });
    const slow = call(ch, "slow:300", 5000);
    assert.equal((await slow).status, Status.SUCCESS);
    const { session } = await srv.request(slow.sid);
    const pings = () => srv.of("ping").filter((e) => e.session === session).length;
    await sync();
    const busy = pings();
    assert.ok(busy >= 2, `pings during the call: ${busy}`);
    await new Promise((r) => setTimeout(r, 200)); // idle for five intervals: nothing may arrive
    await sync();
    assert.equal(pings(), busy, "no ping on an idle connection");
    assert.equal(ch.openConnections(), 1);
    ch.close();
  });

  for (const runtime of ["bun", "deno"]) {
    it(`does not keep the process alive once idle (${runtime})`, async () => {
      const bin = fileURLToPath(new URL(`../../node_modules/.bin/${runtime}`, import.meta.url));
      const main = fileURLToPath(new URL("../support/grpc_idle_main.ts", import.meta.url));
      const args = runtime === "deno" ? ["run", "-A", main, String(srv.port)] : [main, String(srv.port)];
      const child = spawn(bin, args, { stdio: ["ignore", "pipe", "inherit"] });
      let out = "";
      child.stdout?.on("data", (d) => {
        out += d.toString();
      });
      const code = await new Promise<number | null>((resolve) => {
        const timer = setTimeout(() => {
          child.kill("SIGKILL");
          resolve(null);
        }, 15_000);
        child.on("exit", (c) => {
          clearTimeout(timer);
          resolve(c);
        });
      });
      assert.match(out, /status=1 open=1/);
      assert.equal(code, 0, "the process exited by itself with its connection still open");
    });
  }
});

describe("gRPC transport: the server dies mid-call", () => {
  for (const sessionPerCall of [false, true]) {
    it(`fails the call in flight with a retryable code${sessionPerCall ? " (session per call)" : ""}`, async () => {
      const srv = await new ScriptServer().start();
      try {
        const ch = channel(srv.port, { sessionPerCall });
        const hung = call(ch, "hang", 20_000);
        const pending = failure(hung);
        await srv.request(hung.sid);
        srv.kill();
        const err = await pending;
        assert.equal(err.code, Code.Unavailable, `${Code[err.code]}: ${err.rawMessage}`);
        assert.ok(isRetryable(err));
        // and while it is down: Unavailable, at once
        const down = await failure(call(ch, "ok", 5000));
        assert.equal(down.code, Code.Unavailable, `${Code[down.code]}: ${down.rawMessage}`);
        assert.equal(ch.openConnections(), 0);
        ch.close();
      } finally {
        srv.kill();
      }
    });
  }
});

describe("gRPC transport: helpers", () => {
  it("percent-decodes grpc-message as UTF-8, keeping malformed escapes", () => {
    assert.equal(decodeGrpcMessage("plain text"), "plain text");
    assert.equal(decodeGrpcMessage("%E2%9C%93 done%2C ok"), "✓ done, ok");
    assert.equal(decodeGrpcMessage("50% off %4"), "50% off %4");
  });

  it("encodes grpc-timeout in at most 8 digits", () => {
    assert.equal(encodeTimeout(1), "1m");
    assert.equal(encodeTimeout(2.2), "3m");
    assert.equal(encodeTimeout(99_999_999), "99999999m");
    assert.equal(encodeTimeout(100_000_000), "100000S");
  });
});
