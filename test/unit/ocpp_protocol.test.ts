// The OCPP-J 1.6 codec (src/protocols/ocpp/protocol.ts): every station frame, every malformed one
// (each a CallError to answer, never a decode failure), the frames the OCPP channel's messages
// become, the unique ids of remote commands, and sub-protocol negotiation.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  answeredId,
  CALL_COMMAND,
  callErrorFrame,
  decodeFrame,
  ERROR_COMMAND,
  INVALID_COMMAND,
  MAX_ID_LENGTH,
  OcppEncoder,
  RESULT_COMMAND,
  selectOcppProtocol,
  snakeCase,
  UNKNOWN_ID,
} from "../../src/protocols/ocpp/protocol.ts";

function decoded(msg: unknown) {
  const r = decodeFrame(typeof msg === "string" ? msg : JSON.stringify(msg));
  assert.ok(r.ok, "decodeFrame never fails: a bad frame is an INVALID_COMMAND");
  return r.command;
}

function invalid(msg: unknown) {
  const c = decoded(msg);
  assert.equal(c.command, INVALID_COMMAND, `expected ${JSON.stringify(msg)} to be invalid`);
  return c.data as { id: string; code: string; description: string; silent: boolean };
}

describe("OCPP-J station frames", () => {
  it("a Call", () => {
    assert.deepEqual(
      decoded([2, "m1", "BootNotification", { chargePointVendor: "V", chargePointModel: "M" }]),
      {
        command: CALL_COMMAND,
        identifier: "",
        data: {
          id: "m1",
          action: "BootNotification",
          payload: { chargePointVendor: "V", chargePointModel: "M" },
        },
      },
    );
  });

  it("a CallResult and a CallError", () => {
    assert.deepEqual(decoded([3, "r1", { status: "Accepted" }]), {
      command: RESULT_COMMAND,
      identifier: "",
      data: { id: "r1", payload: { status: "Accepted" } },
    });
    assert.deepEqual(decoded([4, "r2", "NotSupported", "no", { a: 1 }]), {
      command: ERROR_COMMAND,
      identifier: "",
      data: { id: "r2", code: "NotSupported", description: "no", details: { a: 1 } },
    });
  });

  it("binary frames are read as their UTF-8 text", () => {
    const enc = new OcppEncoder("ocpp/s1");
    const r = enc.decode(new TextEncoder().encode('[2,"b","Heartbeat",{}]'));
    assert.ok(r.ok);
    assert.equal(r.command.command, CALL_COMMAND);
  });
});

describe("malformed OCPP-J frames are CallErrors to send, with the frame's id when readable", () => {
  const cases: [string, unknown, string, string][] = [
    ["not JSON", "[2, 'x'", UNKNOWN_ID, "FormationViolation"],
    ["empty", "", UNKNOWN_ID, "FormationViolation"],
    ["an object", { type: 2 }, UNKNOWN_ID, "FormationViolation"],
    ["a string", "hello", UNKNOWN_ID, "FormationViolation"],
    ["null", "null", UNKNOWN_ID, "FormationViolation"],
    ["an empty array", [], UNKNOWN_ID, "FormationViolation"],
    ["an unknown message type", [5, "a", "X", {}], "a", "FormationViolation"],
    ["a message type as a string", ["2", "a", "X", {}], "a", "FormationViolation"],
    ["no unique id", [2], UNKNOWN_ID, "ProtocolError"],
    ["a numeric unique id", [2, 17, "Heartbeat", {}], UNKNOWN_ID, "FormationViolation"],
    ["an empty unique id", [2, "", "Heartbeat", {}], UNKNOWN_ID, "FormationViolation"],
    [
      "a unique id too long",
      [2, "x".repeat(MAX_ID_LENGTH + 1), "Heartbeat", {}],
      UNKNOWN_ID,
      "FormationViolation",
    ],
    ["a Call without payload", [2, "c", "Heartbeat"], "c", "ProtocolError"],
    ["a Call with too many elements", [2, "c", "Heartbeat", {}, {}], "c", "FormationViolation"],
    ["a Call with a numeric action", [2, "c", 7, {}], "c", "FormationViolation"],
    ["a Call with an empty action", [2, "c", "", {}], "c", "FormationViolation"],
    ["a Call with an array payload", [2, "c", "Heartbeat", []], "c", "FormationViolation"],
    ["a Call with a null payload", [2, "c", "Heartbeat", null], "c", "FormationViolation"],
    ["a CallResult without payload", [3, "r"], "r", "ProtocolError"],
    ["a CallResult with a string payload", [3, "r", "ok"], "r", "FormationViolation"],
    ["a CallResult with too many elements", [3, "r", {}, {}], "r", "FormationViolation"],
  ];
  for (const [name, msg, id, code] of cases) {
    it(name, () => {
      const bad = invalid(msg);
      assert.equal(bad.id, id);
      assert.equal(bad.code, code);
      assert.equal(bad.silent, false);
      assert.ok(bad.description.length > 0);
    });
  }

  it("a malformed CallError is not answered (no error ping-pong)", () => {
    for (const msg of [
      [4, "e"],
      [4, "e", "GenericError", "x"],
      [4, "e", 1, "x", {}],
      [4, "e", "GenericError", "x", []],
      [4, "e", "GenericError", "x", {}, 1],
    ]) {
      const bad = invalid(msg);
      assert.equal(bad.id, "e");
      assert.equal(bad.silent, true, JSON.stringify(msg));
    }
  });
});

describe("frames to the station", () => {
  const ident = JSON.stringify({ channel: "OCPPChannel", sn: "1" });

  it("an Ack transmission is a CallResult, an Error one a CallError", () => {
    const enc = new OcppEncoder("ocpp/s1");
    const ack = JSON.stringify({
      identifier: ident,
      message: { command: "Ack", id: "m1", payload: { x: 1 } },
    });
    assert.equal(enc.encodeTransmission(ack), '[3,"m1",{"x":1}]');
    const err = JSON.stringify({
      identifier: ident,
      message: { command: "Error", id: "m2", code: "NotSupported", message: "nope", payload: { y: 2 } },
    });
    assert.equal(enc.encodeTransmission(err), '[4,"m2","NotSupported","nope",{"y":2}]');
    // an unknown error code becomes GenericError; missing parts are empty
    const err2 = JSON.stringify({ identifier: ident, message: { command: "Error", id: "m3", code: "Oops" } });
    assert.equal(enc.encodeTransmission(err2), '[4,"m3","GenericError","",{}]');
    // answers without an id have nothing to answer
    const noId = JSON.stringify({ identifier: ident, message: { command: "Ack", payload: {} } });
    assert.equal(enc.encodeTransmission(noId), null);
  });

  it("any other command is a Call; without an id it gets a fresh unique one, remembered until answered", () => {
    let n = 0;
    const enc = new OcppEncoder("ocpp/s1", { newId: () => `gen-${++n}` });
    const frame = enc.encodeBroadcast(
      ident,
      JSON.stringify({
        command: "TriggerMessage",
        id: "",
        payload: { requestedMessage: "BootNotification" },
      }),
    );
    assert.equal(frame, '[2,"gen-1","TriggerMessage",{"requestedMessage":"BootNotification"}]');
    assert.equal(
      enc.encodeBroadcast(ident, JSON.stringify({ command: "Reset", payload: { type: "Soft" } })),
      '[2,"gen-2","Reset",{"type":"Soft"}]',
    );
    assert.equal(
      enc.encodeBroadcast(ident, JSON.stringify({ command: "ClearCache", id: "mine" })),
      '[2,"mine","ClearCache",{}]',
    );
    assert.equal(enc.pendingCalls, 3);
    assert.equal(enc.settle("gen-1"), "TriggerMessage");
    assert.equal(enc.settle("gen-1"), undefined, "an id is settled once");
    assert.equal(enc.settle("nope"), undefined);
    assert.equal(enc.pendingCalls, 2);
  });

  it("the default ids are UUIDs: unique, within OCPP-J's 36 characters", () => {
    const enc = new OcppEncoder("ocpp/s1");
    const ids = new Set<string>();
    for (let i = 0; i < 100; i++) {
      const f = enc.encodeBroadcast(ident, '{"command":"Reset","payload":{}}');
      const id = (JSON.parse(f as string) as unknown[])[1] as string;
      assert.ok(id.length <= MAX_ID_LENGTH && id.length > 0);
      ids.add(id);
    }
    assert.equal(ids.size, 100);
  });

  it("remembered calls are bounded: the oldest is forgotten first", () => {
    let n = 0;
    const enc = new OcppEncoder("ocpp/s1", { newId: () => `g${++n}`, maxPending: 3 });
    for (let i = 0; i < 5; i++) enc.encodeBroadcast(ident, '{"command":"Reset"}');
    assert.equal(enc.pendingCalls, 3);
    assert.equal(enc.settle("g1"), undefined);
    assert.equal(enc.settle("g2"), undefined);
    assert.equal(enc.settle("g5"), "Reset");
  });

  it("Action Cable replies and messages of other shapes have no OCPP frame", () => {
    const enc = new OcppEncoder("ocpp/s1");
    for (const r of [
      { type: "welcome" },
      { type: "ping", message: 1 },
      { type: "confirm_subscription", identifier: ident },
      { type: "reject_subscription", identifier: ident },
      { type: "disconnect", reason: "unauthorized", reconnect: false },
      { identifier: ident, message: "text" },
      { identifier: ident, message: { hello: 1 } },
      { identifier: ident, message: { command: "Ack", id: 5 } },
    ]) {
      assert.equal(enc.encodeReply(r), null, JSON.stringify(r));
    }
    assert.equal(enc.encodeTransmission("not json"), undefined);
    assert.equal(enc.encodeBroadcast(ident, "not json"), undefined);
    assert.equal(enc.encodeBroadcast(ident, '{"command":"Reset"}', { type: "presence" }), null);
    // a payload JSON cannot carry is a failed message, not a throw
    assert.equal(
      enc.encodeReply({ identifier: ident, message: { command: "Reset", payload: { n: 1n } } }),
      undefined,
    );
  });

  it("the id of an answer in a transmission", () => {
    assert.equal(
      answeredId(JSON.stringify({ identifier: ident, message: { command: "Ack", id: "a" } })),
      "a",
    );
    assert.equal(
      answeredId(JSON.stringify({ identifier: ident, message: { command: "Error", id: "b" } })),
      "b",
    );
    assert.equal(
      answeredId(JSON.stringify({ identifier: ident, message: { command: "Reset", id: "c" } })),
      undefined,
    );
    assert.equal(
      answeredId(JSON.stringify({ identifier: ident, message: { command: "Ack", id: "" } })),
      undefined,
    );
    assert.equal(answeredId("nope"), undefined);
  });

  it("CallError frames", () => {
    assert.equal(
      callErrorFrame("-1", "FormationViolation", 'bad "x"'),
      '[4,"-1","FormationViolation","bad \\"x\\"",{}]',
    );
  });
});

describe("names and negotiation", () => {
  it("actions become snake_case channel actions", () => {
    assert.equal(snakeCase("BootNotification"), "boot_notification");
    assert.equal(snakeCase("StartTransaction"), "start_transaction");
    assert.equal(snakeCase("DiagnosticsStatusNotification"), "diagnostics_status_notification");
    assert.equal(snakeCase("Heartbeat"), "heartbeat");
    assert.equal(snakeCase("DataTransfer"), "data_transfer");
    assert.equal(snakeCase("Get15118EVCertificate"), "get15118_ev_certificate");
  });

  it("ocpp1.6 is chosen when offered; other offers only are refused; no offer is served", () => {
    assert.deepEqual(selectOcppProtocol("ocpp1.6"), { echo: "ocpp1.6", refused: false });
    assert.deepEqual(selectOcppProtocol("ocpp2.0.1,ocpp1.6"), { echo: "ocpp1.6", refused: false });
    assert.deepEqual(selectOcppProtocol(" ocpp2.0.1 , ocpp1.6 "), { echo: "ocpp1.6", refused: false });
    assert.deepEqual(selectOcppProtocol("ocpp2.0.1"), { echo: "", refused: true });
    assert.deepEqual(selectOcppProtocol(null), { echo: "", refused: false });
    assert.deepEqual(selectOcppProtocol(""), { echo: "", refused: false });
  });
});
