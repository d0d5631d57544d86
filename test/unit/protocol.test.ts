import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  broadcastMessage,
  confirmMessage,
  decodeCommand,
  disconnectMessage,
  pingMessage,
  pingTimestamp,
  publicationDataJson,
  rejectMessage,
  selectProtocol,
  welcomeMessage,
} from "../../src/protocols/actioncable.ts";

describe("decodeCommand", () => {
  it("decodes subscribe with identifier and keeps data", () => {
    const r = decodeCommand(
      '{"command":"message","identifier":"{\\"channel\\":\\"A\\"}","data":"{\\"x\\":1}"}',
    );
    assert.deepEqual(r, {
      ok: true,
      command: { command: "message", identifier: '{"channel":"A"}', data: '{"x":1}' },
    });
  });
  it("treats JSON null as an empty command (like Go's Unmarshal)", () => {
    assert.deepEqual(decodeCommand("null"), { ok: true, command: { command: "", identifier: "" } });
  });
  it("accepts unknown keys and missing fields", () => {
    assert.deepEqual(decodeCommand('{"command":"ping","extra":[1]}'), {
      ok: true,
      command: { command: "ping", identifier: "" },
    });
  });
  for (const bad of [
    "",
    "{",
    "nope",
    "[]",
    '"str"',
    "42",
    "true",
    '{"command":1}',
    '{"command":"x","identifier":{}}',
  ]) {
    it(`rejects ${JSON.stringify(bad)}`, () => {
      const r = decodeCommand(bad);
      assert.equal(r.ok, false);
      if (!r.ok) assert.ok(r.error.length > 0);
    });
  }
});

describe("selectProtocol", () => {
  it("picks a supported protocol from a comma list without spaces", () => {
    assert.equal(selectProtocol("anycable-token.abc,actioncable-v1-ext-json"), "actioncable-v1-ext-json");
  });
  it("trims entries", () => {
    assert.equal(selectProtocol(" foo , actioncable-v1-json "), "actioncable-v1-json");
  });
  it("never selects a token or unknown protocol", () => {
    assert.equal(selectProtocol("anycable-token.abc, actioncable-unsupported"), "");
    assert.equal(selectProtocol(null), "");
  });
  it("prefers the first supported offer", () => {
    assert.equal(selectProtocol("actioncable-v1-json, actioncable-v1-ext-json"), "actioncable-v1-json");
  });
});

describe("encoders", () => {
  it("encode replies as anycable-go lays them out", () => {
    assert.equal(welcomeMessage("s1"), '{"type":"welcome","sid":"s1"}');
    assert.equal(pingMessage(12), '{"type":"ping","message":12}');
    assert.equal(confirmMessage('{"a":1}'), '{"type":"confirm_subscription","identifier":"{\\"a\\":1}"}');
    assert.equal(rejectMessage("x"), '{"type":"reject_subscription","identifier":"x"}');
  });
  it("always includes reconnect in disconnect, even when false", () => {
    assert.deepEqual(JSON.parse(disconnectMessage("unauthorized", false)), {
      type: "disconnect",
      reason: "unauthorized",
      reconnect: false,
    });
  });
  it("embeds JSON data as JSON and anything else as a string", () => {
    assert.equal(publicationDataJson('{"a": 1}'), '{"a": 1}');
    assert.equal(publicationDataJson("hello"), '"hello"');
    assert.equal(publicationDataJson(""), '""');
    assert.equal(publicationDataJson("null"), '"null"');
    assert.deepEqual(JSON.parse(broadcastMessage("id", publicationDataJson('{"a":1}'))), {
      identifier: "id",
      message: { a: 1 },
    });
    assert.deepEqual(JSON.parse(broadcastMessage("id", '"x"', "custom")), {
      type: "custom",
      identifier: "id",
      message: "x",
    });
  });
  it("formats ping timestamps by precision", () => {
    assert.equal(pingTimestamp("s", 1_700_000_000_123), 1_700_000_000);
    assert.equal(pingTimestamp("ms", 1_700_000_000_123), 1_700_000_000_123);
    assert.equal(pingTimestamp("ns", 1_700_000_000_123), 1_700_000_000_123_000_000);
    assert.equal(pingTimestamp("bogus", 5_000), 5);
  });
});
