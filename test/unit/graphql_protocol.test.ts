// The GraphQL wire codec (src/protocols/graphql/protocol.ts): every client frame of both
// protocols, every malformed one, and the server frames the channel's `{result, more}` messages
// become.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  COMPLETE_COMMAND,
  decodeFrame,
  endsOperation,
  errorFrame,
  INIT_COMMAND,
  INVALID_COMMAND,
  LEGACY_WS_PROTOCOL,
  legacyWsEncoder,
  operationIdentifier,
  operationOf,
  SUBSCRIBE_COMMAND,
  selectGraphqlProtocol,
  TERMINATE_COMMAND,
  TRANSPORT_WS_PROTOCOL,
  transportWsEncoder,
} from "../../src/protocols/graphql/protocol.ts";

function decoded(protocol: typeof TRANSPORT_WS_PROTOCOL | typeof LEGACY_WS_PROTOCOL, msg: unknown) {
  const r = decodeFrame(protocol, typeof msg === "string" ? msg : JSON.stringify(msg));
  assert.ok(r.ok, "decodeFrame never fails: a bad frame is an INVALID_COMMAND");
  return r.command;
}

const QUERY = "subscription { postCreated { id } }";

describe("graphql-transport-ws client frames", () => {
  const p = TRANSPORT_WS_PROTOCOL;

  it("connection_init with and without a payload", () => {
    assert.deepEqual(decoded(p, { type: "connection_init", payload: { token: "t" } }), {
      command: INIT_COMMAND,
      identifier: "",
      data: { token: "t" },
    });
    assert.deepEqual(decoded(p, { type: "connection_init" }), { command: INIT_COMMAND, identifier: "" });
    assert.deepEqual(decoded(p, { type: "connection_init", payload: null }), {
      command: INIT_COMMAND,
      identifier: "",
    });
  });

  it("subscribe carries the operation; variables and operationName default to null", () => {
    assert.deepEqual(decoded(p, { type: "subscribe", id: "1", payload: { query: QUERY } }), {
      command: SUBSCRIBE_COMMAND,
      identifier: "",
      data: { id: "1", query: QUERY, variables: null, operationName: null },
    });
    const full = decoded(p, {
      type: "subscribe",
      id: "op-2",
      payload: { query: QUERY, variables: { a: 1 }, operationName: "OnPost" },
    });
    assert.deepEqual(full.data, { id: "op-2", query: QUERY, variables: { a: 1 }, operationName: "OnPost" });
  });

  it("complete, ping and pong", () => {
    assert.deepEqual(decoded(p, { type: "complete", id: "1" }), {
      command: COMPLETE_COMMAND,
      identifier: "",
      data: "1",
    });
    assert.equal(decoded(p, { type: "ping" }).command, "ping");
    assert.equal(decoded(p, { type: "pong", payload: {} }).command, "pong");
  });

  const malformed: Array<[string, unknown, RegExp]> = [
    ["not JSON", "{", /not JSON/],
    ["an array", [], /JSON object/],
    ["a string", '"x"', /JSON object/],
    ["null", "null", /JSON object/],
    ["no type", { id: "1" }, /'type'/],
    ["a numeric type", { type: 1 }, /'type'/],
    ["an unknown type", { type: "start", id: "1", payload: { query: QUERY } }, /Invalid message type: start/],
    ["a legacy stop", { type: "stop", id: "1" }, /Invalid message type: stop/],
    ["a payload that is not an object", { type: "connection_init", payload: [1] }, /got array/],
    ["subscribe without id", { type: "subscribe", payload: { query: QUERY } }, /'id'/],
    ["subscribe with an empty id", { type: "subscribe", id: "", payload: { query: QUERY } }, /'id'/],
    ["subscribe with a numeric id", { type: "subscribe", id: 1, payload: { query: QUERY } }, /'id'/],
    ["subscribe without payload", { type: "subscribe", id: "1" }, /'payload'/],
    ["subscribe without query", { type: "subscribe", id: "1", payload: {} }, /'query'/],
    [
      "variables not an object",
      { type: "subscribe", id: "1", payload: { query: QUERY, variables: [] } },
      /'variables'/,
    ],
    [
      "operationName not a string",
      { type: "subscribe", id: "1", payload: { query: QUERY, operationName: 5 } },
      /'operationName'/,
    ],
    ["complete without id", { type: "complete" }, /'id'/],
  ];
  for (const [name, msg, reason] of malformed) {
    it(`${name} is an invalid frame`, () => {
      const cmd = decoded(p, msg);
      assert.equal(cmd.command, INVALID_COMMAND);
      assert.match((cmd.data as { reason: string }).reason, reason);
    });
  }

  it("a long unknown type is cut in the reason", () => {
    const cmd = decoded(p, { type: "x".repeat(10_000) });
    assert.ok((cmd.data as { reason: string }).reason.length < 200);
  });

  it("marks unparsable frames (the legacy protocol answers them with connection_error)", () => {
    assert.equal((decoded(p, "nope").data as { parse: boolean }).parse, true);
    assert.equal((decoded(p, { type: 1 }).data as { parse: boolean }).parse, false);
  });
});

describe("legacy graphql-ws (subscriptions-transport-ws) client frames", () => {
  const p = LEGACY_WS_PROTOCOL;

  it("start, stop and connection_terminate", () => {
    assert.deepEqual(decoded(p, { type: "start", id: "1", payload: { query: QUERY } }).data, {
      id: "1",
      query: QUERY,
      variables: null,
      operationName: null,
    });
    assert.deepEqual(decoded(p, { type: "stop", id: "1" }), {
      command: COMPLETE_COMMAND,
      identifier: "",
      data: "1",
    });
    assert.equal(decoded(p, { type: "connection_terminate" }).command, TERMINATE_COMMAND);
  });

  it("the newer protocol's messages are not legacy ones", () => {
    for (const type of ["subscribe", "complete", "ping", "pong"]) {
      assert.equal(decoded(p, { type, id: "1", payload: { query: QUERY } }).command, INVALID_COMMAND, type);
    }
    assert.equal(decoded(p, { type: "start", payload: { query: QUERY } }).command, INVALID_COMMAND);
    assert.equal(decoded(p, { type: "stop" }).command, INVALID_COMMAND);
  });
});

describe("GraphQL server frames", () => {
  const id = operationIdentifier("GraphqlChannel", "7");

  it("operation identifiers round-trip whatever the channel's name", () => {
    assert.equal(id, '{"channel":"GraphqlChannel","channelId":"7"}');
    assert.equal(operationOf(operationIdentifier("ApiSchemaChannel", "a/b")), "a/b");
    assert.equal(operationOf(""), undefined);
    assert.equal(operationOf("{"), undefined);
    assert.equal(operationOf('{"channel":"X"}'), undefined);
    assert.equal(operationOf('{"channelId":7}'), undefined);
  });

  it("welcome, pings and pongs per protocol", () => {
    assert.equal(transportWsEncoder.encodeReply({ type: "welcome" }), '{"type":"connection_ack"}');
    assert.equal(legacyWsEncoder.encodeReply({ type: "welcome" }), '{"type":"connection_ack"}');
    assert.equal(transportWsEncoder.encodeReply({ type: "ping", message: 1 }), '{"type":"ping"}');
    assert.equal(legacyWsEncoder.encodeReply({ type: "ping", message: 1 }), '{"type":"ka"}');
    assert.equal(transportWsEncoder.encodeReply({ type: "pong" }), '{"type":"pong"}');
    assert.equal(legacyWsEncoder.encodeReply({ type: "pong" }), null);
  });

  it("confirmations are silent; a refused connection is a legacy connection_error", () => {
    for (const e of [transportWsEncoder, legacyWsEncoder]) {
      assert.equal(e.encodeReply({ type: "confirm_subscription", identifier: id }), null);
      assert.equal(e.encodeReply({ type: "reject_subscription", identifier: id }), null);
    }
    assert.equal(
      transportWsEncoder.encodeReply({ type: "disconnect", reason: "unauthorized", reconnect: false }),
      null,
    );
    assert.deepEqual(
      JSON.parse(
        legacyWsEncoder.encodeReply({
          type: "disconnect",
          reason: "unauthorized",
          reconnect: false,
        }) as string,
      ),
      { type: "connection_error", payload: { message: "unauthorized" } },
    );
  });

  it("a result becomes next (graphql-ws) or data (legacy) with the operation id", () => {
    const message = { result: { data: { postCreated: { id: "1" } } }, more: true };
    assert.deepEqual(JSON.parse(transportWsEncoder.encodeReply({ identifier: id, message }) as string), {
      id: "7",
      type: "next",
      payload: { data: { postCreated: { id: "1" } } },
    });
    assert.deepEqual(JSON.parse(legacyWsEncoder.encodeReply({ identifier: id, message }) as string), {
      id: "7",
      type: "data",
      payload: { data: { postCreated: { id: "1" } } },
    });
    const errors = { result: { errors: [{ message: "boom" }] }, more: false };
    assert.deepEqual(
      JSON.parse(transportWsEncoder.encodeReply({ identifier: id, message: errors }) as string),
      {
        id: "7",
        type: "next",
        payload: { errors: [{ message: "boom" }] },
      },
    );
  });

  it("a subscription's empty first answer is skipped; more: false alone completes", () => {
    assert.equal(
      transportWsEncoder.encodeReply({ identifier: id, message: { result: { data: null }, more: true } }),
      null,
    );
    assert.equal(transportWsEncoder.encodeReply({ identifier: id, message: { more: true } }), null);
    assert.equal(
      transportWsEncoder.encodeReply({ identifier: id, message: { more: false } }),
      '{"id":"7","type":"complete"}',
    );
    assert.equal(transportWsEncoder.encodeReply({ identifier: id, message: "plain text" }), null);
    assert.equal(
      transportWsEncoder.encodeReply({ identifier: "not json", message: { result: { data: 1 } } }),
      null,
    );
  });

  it("broadcasts: encoded per operation, presence events and non-JSON data never reach the client", () => {
    const data = JSON.stringify({ result: { data: { n: 1 } }, more: true });
    assert.equal(
      transportWsEncoder.encodeBroadcast(id, data),
      '{"id":"7","type":"next","payload":{"data":{"n":1}}}',
    );
    // the same publication for another operation of another session
    assert.equal(
      transportWsEncoder.encodeBroadcast(operationIdentifier("GraphqlChannel", "8"), data),
      '{"id":"8","type":"next","payload":{"data":{"n":1}}}',
    );
    assert.equal(transportWsEncoder.encodeBroadcast(id, data, { type: "presence" }), null);
    assert.equal(transportWsEncoder.encodeBroadcast(id, "{not json"), undefined);
    assert.equal(transportWsEncoder.encodeBroadcast(id, '{"more":false}'), '{"id":"7","type":"complete"}');
  });

  it("errors: a list of GraphQL errors (graphql-ws), one error (legacy), no id for a frame-level one", () => {
    assert.deepEqual(JSON.parse(errorFrame(TRANSPORT_WS_PROTOCOL, "1", "nope")), {
      id: "1",
      type: "error",
      payload: [{ message: "nope" }],
    });
    assert.deepEqual(JSON.parse(errorFrame(LEGACY_WS_PROTOCOL, "1", "nope")), {
      id: "1",
      type: "error",
      payload: { message: "nope" },
    });
    assert.deepEqual(JSON.parse(errorFrame(LEGACY_WS_PROTOCOL, "", "bad")), {
      type: "error",
      payload: { message: "bad" },
    });
  });

  it("endsOperation reads more: false of this operation's transmission only", () => {
    assert.equal(
      endsOperation(JSON.stringify({ identifier: id, message: { result: {}, more: false } }), id),
      true,
    );
    assert.equal(
      endsOperation(JSON.stringify({ identifier: id, message: { result: {}, more: true } }), id),
      false,
    );
    assert.equal(endsOperation(JSON.stringify({ identifier: "other", message: { more: false } }), id), false);
    assert.equal(endsOperation("{", id), false);
  });

  it("sub-protocol selection: the first one spoken, trimmed; none offered means legacy without echo", () => {
    assert.deepEqual(selectGraphqlProtocol("graphql-transport-ws"), {
      protocol: TRANSPORT_WS_PROTOCOL,
      echo: "graphql-transport-ws",
    });
    assert.deepEqual(selectGraphqlProtocol("foo, graphql-ws,graphql-transport-ws"), {
      protocol: LEGACY_WS_PROTOCOL,
      echo: "graphql-ws",
    });
    assert.deepEqual(selectGraphqlProtocol(null), { protocol: LEGACY_WS_PROTOCOL, echo: "" });
    assert.deepEqual(selectGraphqlProtocol("actioncable-v1-json"), {
      protocol: LEGACY_WS_PROTOCOL,
      echo: "",
    });
  });
});
