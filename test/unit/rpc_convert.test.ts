import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import {
  CommandResponseSchema,
  ConnectionResponseSchema,
  DisconnectResponseSchema,
  Status,
} from "../../gen/anycable/rpc_pb.ts";
import type { SessionEnv } from "../../src/node/controller.ts";
import {
  ApplicationError,
  checkDisconnect,
  commandRequest,
  commandResult,
  connectRequest,
  connectResult,
  disconnectRequest,
  goJsonObject,
} from "../../src/rpc/convert.ts";

const A = '{"channel":"ChatChannel","room":"1"}';
const B = '{"channel":"ChatChannel","room":"2"}';

function env(): SessionEnv {
  return {
    url: "http://example.com/cable?x=1",
    headers: { cookie: "s=1", "x-api-token": "t" },
    cstate: { user: "jack", gone: "" },
    istate: { [A]: { room: "1", count: "2", cleared: "" }, [B]: { room: "2" } },
  };
}

describe("RPC requests from the session env (anycable-go's protocol package)", () => {
  it("Connect carries url, headers and the connection state, never channel state", () => {
    const req = connectRequest(env());
    assert.equal(req.env?.url, "http://example.com/cable?x=1");
    assert.deepEqual(req.env?.headers, { cookie: "s=1", "x-api-token": "t" });
    // a key set to "" is deleted by anycable-go, so it never reaches the application again
    assert.deepEqual(req.env?.cstate, { user: "jack" });
    assert.deepEqual(req.env?.istate, {});
  });

  it("Command carries only the addressed subscription's state", () => {
    const req = commandRequest(env(), "message", A, '{"user":"jack"}', '{"action":"speak"}');
    assert.equal(req.command, "message");
    assert.equal(req.identifier, A);
    assert.equal(req.connectionIdentifiers, '{"user":"jack"}');
    assert.equal(req.data, '{"action":"speak"}');
    assert.deepEqual(req.env?.istate, { room: "1", count: "2" });
    assert.deepEqual(req.env?.cstate, { user: "jack" });
    const unknown = commandRequest(env(), "subscribe", '{"channel":"Other"}', "ids");
    assert.deepEqual(unknown.env?.istate, {});
    assert.equal(unknown.data, "");
  });

  it("Disconnect carries every subscription's state as a JSON object, with the subscriptions", () => {
    const req = disconnectRequest(env(), '{"user":"jack"}', [A, B]);
    assert.deepEqual(req.subscriptions, [A, B]);
    assert.equal(req.identifiers, '{"user":"jack"}');
    assert.deepEqual(req.env?.istate, { [A]: '{"count":"2","room":"1"}', [B]: '{"room":"2"}' });
  });

  it("encodes channel state the way Go's encoding/json does (sorted keys, HTML-safe)", () => {
    assert.equal(goJsonObject({ b: "<x>", a: "&\u2028" }), '{"a":"\\u0026\\u2028","b":"\\u003cx\\u003e"}');
    assert.equal(goJsonObject({}), "{}");
  });
});

describe("RPC responses to session results", () => {
  it("a successful Connect gives identifiers, transmissions and the state to merge", () => {
    const res = connectResult(
      create(ConnectionResponseSchema, {
        status: Status.SUCCESS,
        identifiers: "ids",
        transmissions: ['{"type":"welcome"}'],
        env: { cstate: { a: "1" } },
      }),
    );
    assert.deepEqual(res, {
      status: "success",
      identifiers: "ids",
      transmissions: ['{"type":"welcome"}'],
      cstate: { a: "1" },
    });
  });

  it("a rejected Connect keeps its transmissions but not its identifiers", () => {
    const res = connectResult(
      create(ConnectionResponseSchema, { status: Status.FAILURE, identifiers: "x", transmissions: ["bye"] }),
    );
    assert.equal(res.status, "failure");
    assert.equal(res.identifiers, "");
    assert.deepEqual(res.transmissions, ["bye"]);
    assert.equal(res.cstate, undefined);
  });

  it("an ERROR Connect is a failed call (the session closes with 1011)", () => {
    assert.throws(
      () => connectResult(create(ConnectionResponseSchema, { status: Status.ERROR, errorMsg: "boom" })),
      (err: unknown) => err instanceof ApplicationError && err.message === "Application error: boom",
    );
    // unknown enum values are errors too, as in anycable-go
    assert.throws(
      () => connectResult(create(ConnectionResponseSchema, { status: 7 as Status })),
      ApplicationError,
    );
  });

  it("Command results carry a presence change, its info parsed from JSON (or kept as text)", () => {
    const presence = (info: string) =>
      commandResult(
        create(CommandResponseSchema, { status: Status.SUCCESS, presence: { type: "join", id: "u1", info } }),
      ).presence;
    assert.deepEqual(presence('{"name":"Ann"}'), { type: "join", id: "u1", info: { name: "Ann" } });
    assert.deepEqual(presence("plain words"), { type: "join", id: "u1", info: "plain words" });
    assert.deepEqual(presence(""), { type: "join", id: "u1" });
    assert.deepEqual(
      commandResult(
        create(CommandResponseSchema, { status: Status.SUCCESS, presence: { type: "leave", id: "u1" } }),
      ).presence,
      { type: "leave", id: "u1" },
    );
  });

  it("Command results carry streams, stops, state, disconnect and transmissions", () => {
    const res = commandResult(
      create(CommandResponseSchema, {
        status: Status.SUCCESS,
        streams: ["a"],
        stoppedStreams: ["b"],
        stopStreams: true,
        disconnect: true,
        transmissions: ["t"],
        env: { cstate: { c: "1" }, istate: { i: "2" } },
      }),
    );
    assert.deepEqual(res, {
      status: "success",
      transmissions: ["t"],
      streams: ["a"],
      stoppedStreams: ["b"],
      stopAllStreams: true,
      disconnect: true,
      cstate: { c: "1" },
      istate: { i: "2" },
      errorMsg: undefined,
      presence: undefined,
    });
    const failed = commandResult(create(CommandResponseSchema, { status: Status.FAILURE }));
    assert.equal(failed.status, "failure");
    assert.equal(failed.istate, undefined);
    const error = commandResult(create(CommandResponseSchema, { status: Status.ERROR, errorMsg: "nope" }));
    assert.equal(error.status, "error");
    assert.equal(error.errorMsg, "Application error: nope");
  });

  it("only an ERROR Disconnect fails", () => {
    checkDisconnect(create(DisconnectResponseSchema, { status: Status.SUCCESS }));
    checkDisconnect(create(DisconnectResponseSchema, { status: Status.FAILURE }));
    assert.throws(
      () => checkDisconnect(create(DisconnectResponseSchema, { status: Status.ERROR })),
      ApplicationError,
    );
  });
});
