// GraphQL over WebSocket (--graphql_path) against the real server process, per runtime, driven by
// the real clients: the graphql-ws library (graphql-transport-ws) and subscriptions-transport-ws
// (the legacy graphql-ws protocol), plus a raw `ws` client for the wire-level answers and close
// codes. The application is a @grpc/grpc-js backend implementing graphql-anycable's channel
// contract: GraphqlChannel#execute transmits {result, more}; subscriptions stream from a stream
// that broadcasts {result, more: true} through /_broadcast.
import { afterAll, beforeAll, describe, it } from "bun:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { identificator } from "@anycable/serverless-js";
import { createClient, type Client as GqlClient } from "graphql-ws";
import { SubscriptionClient } from "subscriptions-transport-ws";
import WebSocket from "ws";
import {
  type CommandReq,
  type CommandRes,
  type ConnectReq,
  type ConnectRes,
  type GrpcBackend,
  Status,
  startGrpcBackend,
} from "../support/grpc_backend.ts";
import { publish } from "../support/publish.ts";
import { e2eRuntimes, type ServerProcess, startServer } from "../support/server.ts";
import { waitFor } from "../support/wait.ts";
import { connect, type RawClient } from "../support/ws_client.ts";

const SECRET = "graphql-e2e-secret";
const BROADCAST_KEY = createHmac("sha256", SECRET).update("broadcast-cable").digest("hex");
const runtimes = e2eRuntimes(["bun", "deno"]);
const jwt = identificator(SECRET, "1h");

/** graphql-anycable's channel, as a gRPC application: what it got, and what it answers. */
function graphqlApp(backend: GrpcBackend): void {
  backend.onConnect = (req: ConnectReq): ConnectRes => {
    const header = req.env.headers["x-apollo-connection"];
    const params = header ? (JSON.parse(header) as { token?: string }) : {};
    if (params.token === "bad") {
      return {
        status: Status.FAILURE,
        transmissions: [JSON.stringify({ type: "disconnect", reason: "unauthorized", reconnect: false })],
      };
    }
    return {
      status: Status.SUCCESS,
      identifiers: JSON.stringify({ user: params.token ?? "anon" }),
      transmissions: [JSON.stringify({ type: "welcome" })],
    };
  };
  backend.onCommand = (req: CommandReq): CommandRes => {
    const id = req.identifier;
    const params = JSON.parse(id) as { channel: string; channelId: string };
    if (params.channel !== "GraphqlChannel") return { status: Status.ERROR, error_msg: "unknown channel" };
    if (req.command === "subscribe") {
      if (params.channelId.startsWith("reject")) {
        return {
          status: Status.FAILURE,
          transmissions: [JSON.stringify({ identifier: id, type: "reject_subscription" })],
        };
      }
      return {
        status: Status.SUCCESS,
        transmissions: [JSON.stringify({ identifier: id, type: "confirm_subscription" })],
      };
    }
    if (req.command === "unsubscribe") return { status: Status.SUCCESS };
    const data = JSON.parse(req.data) as {
      action: string;
      query: string;
      variables: { topic?: string } | null;
      operationName: string | null;
    };
    if (data.action !== "execute")
      return { status: Status.ERROR, error_msg: `unknown action ${data.action}` };
    const transmit = (message: unknown) => JSON.stringify({ identifier: id, message });
    if (data.query.includes("boom")) return { status: Status.ERROR, error_msg: "boom" };
    if (data.query.startsWith("subscription")) {
      // graphql-anycable: stream_from the subscription's fingerprint, answer {data: nil}, more
      return {
        status: Status.SUCCESS,
        streams: [`graphql:${data.variables?.topic ?? "news"}`],
        transmissions: [transmit({ result: { data: null }, more: true })],
      };
    }
    const user = (JSON.parse(req.connection_identifiers) as { user: string }).user;
    return {
      status: Status.SUCCESS,
      transmissions: [
        transmit({ result: { data: { hello: user, operationName: data.operationName } }, more: false }),
      ],
    };
  };
}

/** A one-result operation through graphql-ws: its values, then completion (or its error). */
function runOnce(client: GqlClient, query: string, operationName?: string): Promise<unknown[]> {
  return new Promise((resolve, reject) => {
    const values: unknown[] = [];
    client.subscribe(
      { query, ...(operationName ? { operationName } : {}) },
      { next: (v) => values.push(v), error: reject, complete: () => resolve(values) },
    );
  });
}

for (const runtime of runtimes) {
  describe(`[${runtime}] GraphQL over WebSocket: graphql-ws, subscriptions-transport-ws, raw frames`, () => {
    let backend: GrpcBackend;
    let server: ServerProcess;
    let url = "";
    const clients: GqlClient[] = [];
    const legacies: SubscriptionClient[] = [];
    const raws: RawClient[] = [];
    const broadcast = (stream: string, message: unknown) =>
      publish(`${server.url}/_broadcast`, { stream, data: JSON.stringify(message) }, BROADCAST_KEY);

    /** lazy: false keeps the socket open between operations (a lazy client closes it after the last one). */
    const gql = (connectionParams?: Record<string, unknown>, lazy = true) => {
      const c = createClient({
        url,
        webSocketImpl: WebSocket,
        connectionParams,
        retryAttempts: 0,
        lazy,
        onNonLazyError: () => {},
      });
      clients.push(c);
      return c;
    };
    const legacy = (connectionParams?: Record<string, unknown>) => {
      const c = new SubscriptionClient(url, { connectionParams, reconnect: false }, WebSocket);
      legacies.push(c);
      return c;
    };
    const raw = async (protocol: string | string[] = "graphql-transport-ws") => {
      const c = await connect(url, protocol);
      raws.push(c);
      return c;
    };
    /** A raw graphql-transport-ws client past connection_ack. */
    const acked = async (payload?: unknown) => {
      const c = await raw();
      c.send(payload === undefined ? { type: "connection_init" } : { type: "connection_init", payload });
      await c.next((m) => m.type === "connection_ack", "connection_ack");
      return c;
    };
    const performs = () => backend.callsOf("Command", "message").map((c) => c.request as CommandReq);

    beforeAll(async () => {
      backend = await startGrpcBackend();
      graphqlApp(backend);
      server = await startServer(runtime, {
        args: [
          `--rpc_host=${backend.address}`,
          `--secret=${SECRET}`,
          "--graphql_path=/graphql",
          "--broadcast_adapter=http",
        ],
      });
      url = `ws://127.0.0.1:${server.port}/graphql`;
    });
    afterAll(async () => {
      for (const c of clients) await c.dispose();
      for (const c of legacies) c.close();
      for (const c of raws) c.close();
      await server?.stop();
      await backend?.stop();
    });

    it("announces the endpoint", () => {
      assert.match(
        server.output(),
        new RegExp(`Handle GraphQL WebSocket connections at http://127\\.0\\.0\\.1:${server.port}/graphql`),
      );
    });

    it("graphql-ws: a query is a subscribe + execute on GraphqlChannel, its result a next, then complete", async () => {
      backend.calls.length = 0;
      const c = gql({ token: "alice" });
      const values = await runOnce(c, "query Hello { hello }", "Hello");
      assert.deepEqual(values, [{ data: { hello: "alice", operationName: "Hello" } }]);
      // the connection params reached Connect as the x-apollo-connection header (JSON)
      const [conn] = backend.callsOf("Connect");
      assert.equal((conn!.request as ConnectReq).env.headers["x-apollo-connection"], '{"token":"alice"}');
      const [sub] = backend.callsOf("Command", "subscribe").map((x) => x.request as CommandReq);
      const identifier = JSON.parse(sub!.identifier) as Record<string, unknown>;
      assert.deepEqual(Object.keys(identifier), ["channel", "channelId"]);
      assert.equal(identifier.channel, "GraphqlChannel");
      assert.match(String(identifier.channelId), /^[0-9a-f-]{36}$/);
      const [perform] = performs();
      assert.equal(perform!.identifier, sub!.identifier);
      assert.deepEqual(JSON.parse(perform!.data), {
        query: "query Hello { hello }",
        variables: null,
        operationName: "Hello",
        action: "execute",
      });
      // the finished operation leaves the channel
      await waitFor(
        () =>
          backend
            .callsOf("Command", "unsubscribe")
            .find((x) => (x.request as CommandReq).identifier === sub!.identifier),
        "unsubscribe of the finished query",
      );
    });

    it("graphql-ws: a subscription gets broadcasts as next, and leaves the channel when the client completes it", async () => {
      backend.calls.length = 0;
      const c = gql({ token: "bob" }, false);
      const values: unknown[] = [];
      const dispose = c.subscribe(
        { query: "subscription News($topic: String) { news(topic: $topic) }", variables: { topic: "gql-a" } },
        { next: (v) => values.push(v), error: () => {}, complete: () => {} },
      );
      await waitFor(() => performs().length === 1, "execute of the subscription");
      // The backend saw the perform before the server applied its answer (the stream to join):
      // publish until the subscription is in place. The {data: null} acknowledgement is not a result.
      let sentAt = 0;
      await waitFor(async () => {
        if (values.length > 0) return true;
        if (Date.now() - sentAt >= 250) {
          sentAt = Date.now();
          await broadcast("graphql:gql-a", { result: { data: { news: "first" } }, more: true });
        }
        return false;
      }, "a next for the broadcast");
      assert.deepEqual(values[0], { data: { news: "first" } });
      assert.ok(values.every((v) => JSON.stringify(v) === JSON.stringify({ data: { news: "first" } })));
      await broadcast("graphql:gql-a", { result: { data: { news: "second" } }, more: true });
      await waitFor(
        () => values.length >= 2 && JSON.stringify(values.at(-1)).includes("second"),
        "the second next",
      );
      assert.deepEqual(values.at(-1), { data: { news: "second" } });
      const identifier = performs()[0]!.identifier;
      dispose();
      await waitFor(
        () =>
          backend
            .callsOf("Command", "unsubscribe")
            .find((x) => (x.request as CommandReq).identifier === identifier),
        "unsubscribe after the client's complete",
      );
    });

    it("graphql-ws: a JWT among the connection params identifies the client without Connect", async () => {
      backend.calls.length = 0;
      const token = await jwt.generateToken({ user: "jwt-user" });
      const c = gql({ jid: token });
      const values = await runOnce(c, "query { hello }");
      assert.equal(backend.callsOf("Connect").length, 0);
      const [perform] = performs();
      assert.equal(perform!.connection_identifiers, JSON.stringify({ user: "jwt-user" }));
      assert.deepEqual(values, [{ data: { hello: "jwt-user", operationName: null } }]);
    });

    it("graphql-ws: a refused connection closes 4403; an operation the channel rejects or fails gets an error", async () => {
      const refused = gql({ token: "bad" });
      await assert.rejects(runOnce(refused, "query { hello }"), (e: { code?: number }) => e.code === 4403);
      const c = await acked({ token: "carol" });
      c.send({ id: "reject-1", type: "subscribe", payload: { query: "query { hello }" } });
      const rejected = await c.next((m) => m.id === "reject-1", "error for the rejected operation");
      assert.deepEqual(rejected, {
        id: "reject-1",
        type: "error",
        payload: [{ message: "Subscription rejected" }],
      });
      c.send({ id: "boom-1", type: "subscribe", payload: { query: "query { boom }" } });
      const failed = await c.next((m) => m.id === "boom-1", "error for the failed operation");
      assert.deepEqual(failed, { id: "boom-1", type: "error", payload: [{ message: "Operation failed" }] });
      // the connection goes on
      c.send({ type: "ping" });
      await c.next((m) => m.type === "pong", "pong");
      assert.equal(c.closeCode, undefined);
    });

    it("graphql-transport-ws close codes: 4401 before init, 4409 duplicate id, 4400 bad frames, 4429 second init, 4408 no init", async () => {
      // a subscriber beside the bad clients, unaffected by them
      const watcher = await acked({ token: "watcher" });
      watcher.send({
        id: "w1",
        type: "subscribe",
        payload: { query: "subscription { news }", variables: { topic: "gql-watch" } },
      });
      await waitFor(
        () => performs().some((p) => JSON.parse(p.identifier).channelId === "w1"),
        "watcher's execute",
      );

      const early = await raw();
      early.send({ id: "1", type: "subscribe", payload: { query: "{ hello }" } });
      assert.equal(await early.waitClosed(), 4401);
      assert.equal(early.closeReason, "Unauthorized");

      const dup = await acked();
      dup.send({ id: "d1", type: "subscribe", payload: { query: "subscription { news }" } });
      await waitFor(() => performs().some((p) => JSON.parse(p.identifier).channelId === "d1"), "first d1");
      dup.send({ id: "d1", type: "subscribe", payload: { query: "subscription { news }" } });
      assert.equal(await dup.waitClosed(), 4409);
      assert.equal(dup.closeReason, "Subscriber for d1 already exists");

      const notJson = await acked();
      notJson.sendRaw("{not json");
      assert.equal(await notJson.waitClosed(), 4400);
      const unknown = await acked();
      unknown.send({ type: "start", id: "1", payload: { query: "{ hello }" } });
      assert.equal(await unknown.waitClosed(), 4400);
      assert.match(String(unknown.closeReason), /Invalid message type: start/);
      const noQuery = await raw();
      noQuery.send({ type: "connection_init" });
      noQuery.send({ id: "q", type: "subscribe", payload: { variables: {} } });
      assert.equal(await noQuery.waitClosed(), 4400);

      const twice = await acked();
      twice.send({ type: "connection_init" });
      assert.equal(await twice.waitClosed(), 4429);

      const silent = await raw();
      assert.equal(await silent.waitClosed(15_000), 4408);

      await broadcast("graphql:gql-watch", { result: { data: { news: "still here" } }, more: true });
      const next = await watcher.next((m) => m.id === "w1", "watcher's next");
      assert.deepEqual(next, { id: "w1", type: "next", payload: { data: { news: "still here" } } });
      // a broadcast {more: false} (a server-side unsubscribe) completes the operation
      await broadcast("graphql:gql-watch", { more: false });
      assert.deepEqual(await watcher.next((m) => m.id === "w1", "watcher's complete"), {
        id: "w1",
        type: "complete",
      });
      assert.equal(watcher.closeCode, undefined);
    }, 60_000);

    it("subscriptions-transport-ws: queries and subscriptions over the legacy graphql-ws protocol", async () => {
      backend.calls.length = 0;
      const c = legacy({ token: "dora" });
      const result = await new Promise<unknown[]>((resolve, reject) => {
        const values: unknown[] = [];
        c.request({ query: "query Q { hello }", operationName: "Q" }).subscribe({
          next: (v) => values.push(v),
          error: reject,
          complete: () => resolve(values),
        });
      });
      assert.deepEqual(result, [{ data: { hello: "dora", operationName: "Q" } }]);
      assert.equal(
        (backend.callsOf("Connect")[0]!.request as ConnectReq).env.headers["x-apollo-connection"],
        '{"token":"dora"}',
      );
      const values: unknown[] = [];
      const sub = c
        .request({ query: "subscription { news }", variables: { topic: "gql-legacy" } })
        .subscribe({ next: (v) => values.push(v), error: () => {}, complete: () => {} });
      await waitFor(() => performs().length === 2, "execute of the legacy subscription");
      // The backend saw the execute, but the server adds the subscription's stream only once it
      // has the answer: broadcast again (every 250 ms) until the first one arrives.
      let sentAt = 0;
      await waitFor(async () => {
        if (values.length === 0 && Date.now() - sentAt >= 250) {
          sentAt = Date.now();
          await broadcast("graphql:gql-legacy", { result: { data: { news: "old school" } }, more: true });
        }
        return values.length >= 1;
      }, "legacy data");
      assert.deepEqual(values[0], { data: { news: "old school" } });
      const identifier = performs()[1]!.identifier;
      sub.unsubscribe();
      await waitFor(
        () =>
          backend
            .callsOf("Command", "unsubscribe")
            .find((x) => (x.request as CommandReq).identifier === identifier),
        "unsubscribe after stop",
      );
    });

    it("legacy protocol, raw: ack then ka, errors answered without closing, a refused init gets connection_error", async () => {
      const c = await raw("graphql-ws");
      assert.equal(c.protocol, "graphql-ws");
      c.send({ id: "1", type: "start", payload: { query: "{ hello }" } });
      assert.deepEqual(await c.next((m) => m.type === "error", "error before init"), {
        id: "1",
        type: "error",
        payload: { message: "connection_init is required first" },
      });
      c.send({ type: "connection_init", payload: { token: "eve" } });
      await c.next((m) => m.type === "connection_ack", "connection_ack");
      await c.next((m) => m.type === "ka", "keep-alive");
      c.sendRaw("{oops");
      const parseError = await c.next((m) => m.type === "connection_error", "connection_error");
      assert.match(String((parseError.payload as { message: string }).message), /not JSON/);
      c.send({ type: "subscribe", id: "2" });
      assert.deepEqual(await c.next((m) => m.type === "error", "unknown type"), {
        type: "error",
        payload: { message: "Invalid message type!" },
      });
      c.send({ id: "3", type: "start", payload: { query: "{ hello }" } });
      assert.deepEqual(await c.next((m) => m.id === "3" && m.type === "data", "data"), {
        id: "3",
        type: "data",
        payload: { data: { hello: "eve", operationName: null } },
      });
      await c.next((m) => m.id === "3" && m.type === "complete", "complete");
      c.send({ type: "connection_terminate" });
      assert.equal(await c.waitClosed(), 1000);

      const refused = await raw("graphql-ws");
      refused.send({ type: "connection_init", payload: { token: "bad" } });
      const error = await refused.next((m) => m.type === "connection_error", "connection_error");
      assert.deepEqual(error.payload, { message: "unauthorized" });
      await refused.waitClosed();
    });

    it("a client offering no GraphQL sub-protocol speaks the legacy one; Action Cable is not served here", async () => {
      const c = await raw([]);
      assert.equal(c.protocol, "");
      c.send({ type: "connection_init" });
      await c.next((m) => m.type === "connection_ack", "connection_ack");
      const res = await fetch(`${server.url}/graphql`);
      assert.equal(res.status, 400);
    });
  });
}
