import assert from "node:assert/strict";
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, it } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { Status } from "../../gen/anycable/rpc_pb.ts";
import { Logger } from "../../src/log/logger.ts";
import { CircuitBreaker, HTTP_RPC_BREAKER } from "../../src/rpc/breaker.ts";
import { commandRequest, connectRequest, disconnectRequest } from "../../src/rpc/convert.ts";
import { HttpRpcClient, joinPath } from "../../src/rpc/http.ts";
import type { HttpPoster } from "../../src/rpc/http_post.ts";
import { makeTestCerts } from "../support/certs.ts";
import { waitFor } from "../support/wait.ts";

const NO_TLS = { enabled: false, rootCa: "", verify: true };
const ENV = {
  url: "http://h/cable",
  headers: { cookie: "a=1" },
  cstate: { s: "1" },
  istate: { id: { k: "v" } },
};

function capture() {
  const lines: string[] = [];
  return { lines, logger: new Logger("debug", "text", {}, { write: (l) => lines.push(l) }) };
}

interface Sent {
  url: string;
  headers: Record<string, string>;
  body: Record<string, unknown>;
  timeoutMs?: number;
}

function fakePoster(reply: (s: Sent) => { status: number; body: string } | Error) {
  const sent: Sent[] = [];
  const poster: HttpPoster = {
    async post(url, headers, body, timeoutMs) {
      const s = { url, headers, body: JSON.parse(body), timeoutMs };
      sent.push(s);
      const r = reply(s);
      if (r instanceof Error) throw r;
      return { status: r.status, text: async () => r.body };
    },
  };
  return { sent, poster };
}

function client(poster: HttpPoster, secret = "", now?: () => number) {
  return new HttpRpcClient({
    host: "http://app.test/_anycable/",
    secret,
    tls: NO_TLS,
    logger: capture().logger,
    poster,
    now,
  });
}

const ok = (body: unknown) => ({ status: 200, body: JSON.stringify(body) });

describe("HTTP RPC requests", () => {
  it("POSTs proto-named JSON to <base>/<method> with meta headers and the bearer secret", async () => {
    const { sent, poster } = fakePoster(() => ok({ status: 1, identifiers: "ids", transmissions: ["w"] }));
    const c = client(poster, "s3cret");
    const res = await c.connect(connectRequest(ENV), { sid: "sid-1", timeoutMs: 3000 });
    assert.equal(res.status, Status.SUCCESS);
    assert.equal(res.identifiers, "ids");
    assert.equal(sent[0]!.url, "http://app.test/_anycable/connect");
    assert.equal(sent[0]!.headers.authorization, "Bearer s3cret");
    assert.equal(sent[0]!.headers["content-type"], "application/json");
    assert.equal(sent[0]!.headers["x-anycable-meta-sid"], "sid-1");
    assert.equal(sent[0]!.headers["x-anycable-meta-protov"], "v1");
    assert.equal(sent[0]!.timeoutMs, 3000);
    assert.deepEqual(sent[0]!.body, {
      env: { url: "http://h/cable", headers: { cookie: "a=1" }, cstate: { s: "1" } },
    });

    await c.command(commandRequest(ENV, "message", "id", "ids", "{}"), { sid: "sid-1" });
    assert.equal(sent[1]!.url, "http://app.test/_anycable/command");
    assert.deepEqual(sent[1]!.body, {
      command: "message",
      identifier: "id",
      connection_identifiers: "ids",
      data: "{}",
      env: { url: "http://h/cable", headers: { cookie: "a=1" }, cstate: { s: "1" }, istate: { k: "v" } },
    });
    await c.disconnect(disconnectRequest(ENV, "ids", ["id"]), { sid: "sid-1" });
    assert.equal(sent[2]!.url, "http://app.test/_anycable/disconnect");
    assert.deepEqual(sent[2]!.body.subscriptions, ["id"]);
    assert.deepEqual((sent[2]!.body.env as Record<string, unknown>).istate, { id: '{"k":"v"}' });
  });

  it("sends no Authorization header without a secret", async () => {
    const { sent, poster } = fakePoster(() => ok({ status: 1 }));
    await client(poster).connect(connectRequest(ENV), { sid: "x" });
    assert.equal(sent[0]!.headers.authorization, undefined);
  });

  it("joins the method onto the base path like Go's url.JoinPath", () => {
    assert.equal(joinPath(new URL("http://a/_anycable"), "connect"), "http://a/_anycable/connect");
    assert.equal(joinPath(new URL("http://a/"), "command"), "http://a/command");
    assert.equal(joinPath(new URL("http://a"), "command"), "http://a/command");
  });
});

describe("HTTP RPC responses", () => {
  it("reads integer statuses, enum names and both JSON name styles", async () => {
    for (const status of [1, "SUCCESS"]) {
      const { poster } = fakePoster(() =>
        ok({
          status,
          streams: ["s"],
          stop_streams: true,
          stoppedStreams: ["x"],
          env: { istate: { a: "b" } },
          extra: 1,
        }),
      );
      const res = await client(poster).command(commandRequest(ENV, "subscribe", "id", "ids"), { sid: "x" });
      assert.equal(res.status, Status.SUCCESS);
      assert.deepEqual(res.streams, ["s"]);
      assert.equal(res.stopStreams, true);
      assert.deepEqual(res.stoppedStreams, ["x"]);
      assert.deepEqual(res.env?.istate, { a: "b" });
    }
    const { poster } = fakePoster(() => ok({ status: "FAILURE", transmissions: null, error_msg: "no" }));
    const res = await client(poster).connect(connectRequest(ENV), { sid: "x" });
    assert.equal(res.status, Status.FAILURE);
    assert.equal(res.errorMsg, "no");
  });

  it("maps HTTP failures to anycable-go's status codes", async () => {
    const cases: Array<[number | Error, Code, RegExp]> = [
      [401, Code.Unauthenticated, /http returned 401/],
      [422, Code.InvalidArgument, /bad payload/],
      [400, Code.InvalidArgument, /bad payload/],
      [500, Code.Unknown, /bad payload/],
      [new Error("connect ECONNREFUSED 127.0.0.1:1"), Code.Unavailable, /ECONNREFUSED/],
      [
        Object.assign(new Error("request timeout"), { name: "TimeoutError" }),
        Code.DeadlineExceeded,
        /request timeout/,
      ],
      [new Error("unable to verify the first certificate"), Code.Unauthenticated, /certificate/],
    ];
    for (const [reply, code, message] of cases) {
      const { poster } = fakePoster(() =>
        reply instanceof Error ? reply : { status: reply, body: "bad payload" },
      );
      await assert.rejects(
        client(poster).connect(connectRequest(ENV), { sid: "x" }),
        (err: unknown) => err instanceof ConnectError && err.code === code && message.test(err.rawMessage),
        String(reply),
      );
    }
  });

  it("rejects bodies that are not RPC JSON", async () => {
    const { poster } = fakePoster(() => ({ status: 200, body: "<html>" }));
    await assert.rejects(client(poster).connect(connectRequest(ENV), { sid: "x" }), /failed to decode/);
  });

  it("works over a real HTTP connection (fetch)", async () => {
    const seen: Array<{ url?: string; headers: IncomingMessage["headers"]; body: string }> = [];
    const server = createServer((req, res) => {
      let body = "";
      req.on("data", (c) => {
        body += c;
      });
      req.on("end", () => {
        seen.push({ url: req.url, headers: req.headers, body });
        res.setHeader("content-type", "application/json");
        res.end(JSON.stringify({ status: 1, identifiers: "real" }));
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as AddressInfo).port;
    try {
      const c = new HttpRpcClient({
        host: `http://127.0.0.1:${port}/rpc`,
        secret: "k",
        tls: NO_TLS,
        logger: capture().logger,
      });
      const res = await c.connect(connectRequest(ENV), { sid: "abc", timeoutMs: 2000 });
      assert.equal(res.identifiers, "real");
      assert.equal(seen[0]!.url, "/rpc/connect");
      assert.equal(seen[0]!.headers.authorization, "Bearer k");
      assert.equal(seen[0]!.headers["x-anycable-meta-sid"], "abc");
      assert.equal(JSON.parse(seen[0]!.body).env.url, "http://h/cable");
      await c.close();
    } finally {
      server.close();
    }
  });
});

describe("HTTP RPC cancellation (the session closed)", () => {
  it("aborts the request in flight over a real connection and rejects with Canceled", async () => {
    let requestClosed = false;
    let arrived = false;
    // a backend that never answers: only the cancellation ends the request
    const server = createServer((req) => {
      arrived = true;
      req.on("close", () => {
        requestClosed = true;
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as AddressInfo).port;
    const c = new HttpRpcClient({
      host: `http://127.0.0.1:${port}/rpc`,
      secret: "",
      tls: NO_TLS,
      logger: capture().logger,
    });
    try {
      const session = new AbortController();
      const call = c
        .connect(connectRequest(ENV), { sid: "x", timeoutMs: 30_000, signal: session.signal })
        .catch((e: unknown) => e);
      await waitFor(() => arrived, "request at the backend");
      session.abort();
      const err = await call;
      assert.ok(err instanceof ConnectError);
      assert.equal(err.code, Code.Canceled);
      await waitFor(() => requestClosed, "the backend sees the request go away");
    } finally {
      await c.close();
      server.closeAllConnections();
      server.close();
    }
  });

  it("does not count cancelled requests against the circuit breaker", async () => {
    const poster: HttpPoster = {
      post: (_url, _headers, _body, _timeoutMs, signal) =>
        new Promise((_, reject) => {
          signal?.addEventListener("abort", () => reject(new Error("This operation was aborted")));
        }),
    };
    const c = client(poster);
    for (let i = 0; i < 12; i++) {
      const session = new AbortController();
      const call = c.connect(connectRequest(ENV), { sid: "x", signal: session.signal });
      session.abort();
      await assert.rejects(call, (e: ConnectError) => e.code === Code.Canceled);
    }
    assert.equal(c.ready(), undefined, "the breaker stays closed");
  });

  it("a cancelled trial request leaves a half-open breaker able to close", () => {
    let t = 0;
    const cb = new CircuitBreaker(HTTP_RPC_BREAKER, capture().logger, () => t);
    for (let i = 0; i < 10; i++) cb.allow()(false);
    t += 5_000;
    assert.equal(cb.state(), "half-open");
    cb.allow()(undefined); // its session closed: no verdict, and its trial slot is given back
    for (let i = 0; i < 5; i++) cb.allow()(true);
    assert.equal(cb.state(), "closed");
  });
});

describe("HTTP RPC over TLS with a custom CA", () => {
  it("verifies against --rpc_tls_root_ca, skips verification when asked, refuses otherwise", async () => {
    const certs = makeTestCerts();
    const { createServer: createHttpsServer } = await import("node:https");
    const server = createHttpsServer({ cert: certs.cert, key: certs.key }, (req, res) => {
      req.resume();
      req.on("end", () => res.end(JSON.stringify({ status: 1, identifiers: `tls:${req.url}` })));
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as AddressInfo).port;
    const host = `https://localhost:${port}/rpc`;
    try {
      const viaCa = new HttpRpcClient({
        host,
        secret: "",
        tls: { enabled: false, rootCa: certs.caFile, verify: true },
        logger: capture().logger,
      });
      assert.equal(
        (await viaCa.connect(connectRequest(ENV), { sid: "s", timeoutMs: 5000 })).identifiers,
        "tls:/rpc/connect",
      );
      await viaCa.close();
      const noVerify = new HttpRpcClient({
        host,
        secret: "",
        tls: { enabled: true, rootCa: "", verify: false },
        logger: capture().logger,
      });
      assert.equal(
        (await noVerify.connect(connectRequest(ENV), { sid: "s", timeoutMs: 5000 })).identifiers,
        "tls:/rpc/connect",
      );
      await noVerify.close();
      const strict = new HttpRpcClient({
        host,
        secret: "",
        tls: { enabled: true, rootCa: "", verify: true },
        logger: capture().logger,
      });
      await assert.rejects(
        strict.connect(connectRequest(ENV), { sid: "s", timeoutMs: 5000 }),
        (e: ConnectError) => e.code === Code.Unauthenticated,
      );
      await strict.close();
    } finally {
      server.close();
    }
  });
});

describe("HTTP RPC circuit breaker (gobreaker settings of anycable-go)", () => {
  it("opens after >= 10 requests with >= 80% transport failures, half-opens after 5 s, closes after 5 successes", () => {
    let t = 0;
    const { lines, logger } = capture();
    const cb = new CircuitBreaker(HTTP_RPC_BREAKER, logger, () => t);
    for (let i = 0; i < 2; i++) cb.allow()(true);
    for (let i = 0; i < 7; i++) cb.allow()(false);
    assert.equal(cb.state(), "closed"); // 9 requests: below the minimum
    cb.allow()(false);
    assert.equal(cb.state(), "open"); // 8 of 10 failed
    assert.match(lines.join("\n"), /WRN circuit breaker is open/);
    assert.throws(() => cb.allow(), /circuit breaker is open/);
    t += 5_000;
    assert.equal(cb.state(), "half-open");
    const trials = Array.from({ length: 5 }, () => cb.allow());
    assert.throws(() => cb.allow(), /too many requests/);
    for (const done of trials) done(true);
    assert.equal(cb.state(), "closed");
    assert.match(lines.join("\n"), /INF circuit breaker is closed/);
  });

  it("forgets old outcomes every 10 s while closed, and re-opens on a failed trial", () => {
    let t = 0;
    const cb = new CircuitBreaker(HTTP_RPC_BREAKER, capture().logger, () => t);
    for (let i = 0; i < 9; i++) cb.allow()(false);
    t += 10_001;
    cb.allow()(false);
    assert.equal(cb.state(), "closed");
    for (let i = 0; i < 9; i++) cb.allow()(false);
    assert.equal(cb.state(), "open");
    t += 5_000;
    cb.allow()(false);
    assert.equal(cb.state(), "open");
  });

  it("an open breaker fails calls without sending them and makes the client not ready", async () => {
    let t = 0;
    const { sent, poster } = fakePoster(() => new Error("connect ECONNREFUSED"));
    const c = client(poster, "", () => t);
    for (let i = 0; i < 10; i++) await assert.rejects(c.connect(connectRequest(ENV), { sid: "x" }));
    assert.equal(sent.length, 10);
    assert.match(String(c.ready()), /http rpc is temporarily unavailable/);
    await assert.rejects(c.connect(connectRequest(ENV), { sid: "x" }), /circuit breaker is open/);
    assert.equal(sent.length, 10);
    t += 5_000;
    assert.equal(c.ready(), undefined);
  });
});
