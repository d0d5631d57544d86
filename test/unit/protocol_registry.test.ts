import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { selectProtocol as selectJsonOnly } from "../../src/protocols/actioncable.ts";
import { jsonEncoder } from "../../src/protocols/json_encoder.ts";
import { msgpackEncoder } from "../../src/protocols/msgpack_encoder.ts";
import { protobufEncoder, protobufExtEncoder } from "../../src/protocols/protobuf_encoder.ts";
import { ALL_PROTOCOLS, PROTOCOLS, protocolInfo, selectProtocol } from "../../src/protocols/registry.ts";

const SIX = [
  "actioncable-v1-json",
  "actioncable-v1-ext-json",
  "actioncable-v1-msgpack",
  "actioncable-v1-ext-msgpack",
  "actioncable-v1-protobuf",
  "actioncable-v1-ext-protobuf",
];

describe("protocol registry", () => {
  it("knows the six Action Cable sub-protocols", () => {
    assert.deepEqual([...ALL_PROTOCOLS], SIX);
  });
  it("maps each to its encoder and extended flag", () => {
    const table = SIX.map((name) => {
      const p = protocolInfo(name);
      return [p.name, p.encoder, p.extended];
    });
    assert.deepEqual(table, [
      ["actioncable-v1-json", jsonEncoder, false],
      ["actioncable-v1-ext-json", jsonEncoder, true],
      ["actioncable-v1-msgpack", msgpackEncoder, false],
      ["actioncable-v1-ext-msgpack", msgpackEncoder, true],
      ["actioncable-v1-protobuf", protobufEncoder, false],
      ["actioncable-v1-ext-protobuf", protobufExtEncoder, true],
    ]);
  });
  it("encoders that share an id are one object (identical bytes by construction)", () => {
    const byId = new Map<string, Set<unknown>>();
    for (const p of PROTOCOLS.values()) {
      const set = byId.get(p.encoder.id) ?? new Set();
      set.add(p.encoder);
      byId.set(p.encoder.id, set);
    }
    assert.deepEqual([...byId.keys()], ["json", "msgpack", "protobuf", "protobuf-ext"]);
    for (const set of byId.values()) assert.equal(set.size, 1);
    assert.deepEqual(
      SIX.map((n) => protocolInfo(n).encoder.binary),
      [false, false, true, true, true, true],
    );
  });
  it("no protocol (or an unknown one) is actioncable-v1-json", () => {
    assert.equal(protocolInfo("").name, "actioncable-v1-json");
    assert.equal(protocolInfo("actioncable-v2-json").name, "actioncable-v1-json");
    assert.equal(protocolInfo("__proto__").name, "actioncable-v1-json");
  });
});

describe("selectProtocol (all six)", () => {
  it("selects each name when offered alone", () => {
    for (const name of SIX) assert.equal(selectProtocol(name), name);
  });
  it("the client's first supported entry wins", () => {
    assert.equal(
      selectProtocol("actioncable-v1-ext-protobuf,actioncable-v1-json"),
      "actioncable-v1-ext-protobuf",
    );
    assert.equal(selectProtocol("actioncable-v1-json, actioncable-v1-msgpack"), "actioncable-v1-json");
  });
  it("splits on commas with or without spaces and trims", () => {
    assert.equal(selectProtocol("foo,  actioncable-v1-ext-msgpack  ,bar"), "actioncable-v1-ext-msgpack");
  });
  it("never selects a token entry or an unknown one", () => {
    assert.equal(
      selectProtocol("anycable-token.eyJhbGciOi,actioncable-v1-msgpack"),
      "actioncable-v1-msgpack",
    );
    assert.equal(selectProtocol("anycable-token.actioncable-v1-json"), "");
    assert.equal(selectProtocol("actioncable-v1-cbor, MSGPACK"), "");
  });
  it('is "" for nothing offered', () => {
    assert.equal(selectProtocol(""), "");
    assert.equal(selectProtocol(null), "");
    assert.equal(selectProtocol(undefined), "");
    assert.equal(selectProtocol(" , "), "");
  });
  it("actioncable.ts's selectProtocol still speaks JSON only until the node is wired to encoders", () => {
    assert.equal(selectJsonOnly("actioncable-v1-msgpack,actioncable-v1-json"), "actioncable-v1-json");
    assert.equal(selectJsonOnly("actioncable-v1-protobuf"), "");
  });
});
