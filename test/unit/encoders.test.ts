// Runs the Encoder contract for all six Action Cable sub-protocols, each against its independent
// client codec (core's JSONEncoder; msgpackr- and protobufjs-based encoders for the binary ones).
import { JSONEncoder } from "@anycable/core";
import type { Frame } from "../../src/protocols/encoder.ts";
import { ALL_PROTOCOLS, protocolInfo } from "../../src/protocols/registry.ts";
import {
  clientPack,
  MsgpackEncoder,
  ProtobufEncoder,
  ProtobufEncoderV2,
} from "../support/anycable_encoders.ts";
import { type EncoderSubject, encoderContract } from "./contracts/encoder_contract.ts";

const bytes = (...b: number[]) => new Uint8Array(b);
const concat = (a: Uint8Array, b: Uint8Array) => {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
};

const JSON_MALFORMED: Array<[string, Frame]> = [
  ["an empty frame", ""],
  ["truncated JSON", '{"command":"subscribe"'],
  ["a JSON array", "[]"],
  ["a JSON string", '"str"'],
  ["a JSON number", "42"],
  ["a non-string command", '{"command":1}'],
  ["an object identifier", '{"command":"x","identifier":{}}'],
  ["a non-object history", '{"command":"history","history":5}'],
  ["a string since", '{"command":"history","history":{"since":"1"}}'],
  ["a fractional since", '{"command":"history","history":{"since":1.5}}'],
  ["an array of streams", '{"command":"history","history":{"streams":[1]}}'],
  ["a negative offset", '{"command":"history","history":{"streams":{"a":{"epoch":"e","offset":-1}}}}'],
  ["a numeric epoch", '{"command":"history","history":{"streams":{"a":{"epoch":5}}}}'],
  ["a non-object stream position", '{"command":"history","history":{"streams":{"a":"x"}}}'],
  ["a string presence", '{"command":"join","presence":"x"}'],
  ["a numeric presence id", '{"command":"join","presence":{"id":1}}'],
];

/** A msgpack map of `fields` plus one entry whose value is given as raw msgpack bytes. */
function withRawField(fields: Record<string, unknown>, key: string, raw: Uint8Array): Uint8Array {
  let out = bytes(0x80 | (Object.keys(fields).length + 1));
  for (const [k, v] of Object.entries(fields)) out = concat(out, concat(clientPack(k), clientPack(v)));
  return concat(out, concat(clientPack(key), raw));
}

const valid = clientPack({ command: "subscribe", identifier: "x" });
const MSGPACK_MALFORMED: Array<[string, Frame]> = [
  ["an empty frame", bytes()],
  ["a truncated map", valid.subarray(0, valid.length - 1)],
  ["a map header only", bytes(0x82)],
  ["trailing bytes", concat(valid, bytes(0xc0))],
  ["an array", clientPack([1, 2])],
  ["a string", clientPack("subscribe")],
  ["an integer", clientPack(7)],
  ["nil", bytes(0xc0)],
  ["a boolean", bytes(0xc3)],
  ["a bin value", bytes(0xc4, 0x01, 0x61)],
  ["a non-string command", clientPack({ command: 1, identifier: "x" })],
  ["an array identifier", clientPack({ command: "x", identifier: ["a"] })],
  ["bin data", clientPack({ command: "whisper", identifier: "x", data: new Uint8Array([1, 2]) })],
  // a timestamp ext (-1) with 4-byte seconds
  [
    "a timestamp ext in data",
    withRawField({ command: "whisper", identifier: "x" }, "data", bytes(0xd6, 0xff, 0, 0, 0, 1)),
  ],
  ["NaN in data", clientPack({ command: "whisper", identifier: "x", data: { v: Number.NaN } })],
  ["a string since", clientPack({ command: "history", identifier: "x", history: { since: "1" } })],
  ["a negative offset", clientPack({ command: "history", history: { streams: { a: { offset: -1 } } } })],
  ["a str32 header claiming 4 GiB", bytes(0xdb, 0xff, 0xff, 0xff, 0xff, 0x61)],
  ["an array32 header claiming 4G items", bytes(0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0)],
  ["a map32 header claiming 4G entries", bytes(0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 0x61, 0xc0)],
  ["a reserved byte", bytes(0xc1)],
  ["a __proto__ key", bytes(0x81, 0xa9, ...new TextEncoder().encode("__proto__"), 0xc0)],
];

const PROTOBUF_MALFORMED: Array<[string, Frame]> = [
  ["identifier sent as a varint (wire type 0)", bytes(0x18, 0x00)],
  ["command sent length-delimited", bytes(0x12, 0x01, 0x01)],
  ["history sent as a varint", bytes(0x40, 0x01)],
  ["identifier as fixed32", bytes(0x1d, 1, 2, 3, 4)],
  ["a since sent length-delimited", bytes(0x42, 0x02, 0x0a, 0x00)],
  ["an epoch sent as a varint", bytes(0x42, 0x06, 0x12, 0x04, 0x12, 0x02, 0x10, 0x01)],
  ["a map key sent as a varint", bytes(0x42, 0x04, 0x12, 0x02, 0x08, 0x01)],
  ["a truncated varint", bytes(0x10, 0x80)],
  ["a truncated tag", bytes(0x80)],
  ["a truncated string", bytes(0x1a, 0x05, 0x61)],
  ["a length beyond the frame", bytes(0x1a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x61)],
  ["a length beyond the embedded message", bytes(0x42, 0x02, 0x12, 0x05, 0x0a)],
  ["an 11-byte varint", bytes(0x10, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01)],
  [
    "a 10-byte varint overflowing 64 bits",
    bytes(0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f),
  ],
  ["wire type 6 in a known field", bytes(0x0e, 0x00)],
  ["wire type 6 in an unknown field", bytes(0x7e, 0x00)],
  ["wire type 7 in an unknown field", bytes(0x7f, 0x00)],
  ["field number 0", bytes(0x00, 0x00)],
  ["an unterminated group", bytes(0xab, 0x06, 0x10, 0x01)],
  ["a mismatched end of group", bytes(0xab, 0x06, 0xb4, 0x06)],
  ["a stray end of group", bytes(0xac, 0x06)],
  ["an unknown field truncated", bytes(0xaa, 0x06, 0x05, 0x61)],
  ["an unknown fixed64 truncated", bytes(0xa9, 0x06, 1, 2, 3)],
  ["invalid UTF-8 in the identifier", bytes(0x1a, 0x02, 0xc3, 0x28)],
  ["invalid UTF-8 in data", bytes(0x22, 0x01, 0xff)],
  [
    "a negative offset",
    new ProtobufEncoder().encode({
      command: "history",
      history: { streams: { a: { epoch: "e", offset: -1 } } },
    }),
  ],
];

function subject(protocol: string): EncoderSubject {
  const { encoder } = protocolInfo(protocol);
  if (protocol.endsWith("-json")) {
    return {
      protocol,
      encoder,
      client: new JSONEncoder(),
      carries: { extFields: true, anyType: true, presence: true, objectData: true },
      malformed: JSON_MALFORMED,
    };
  }
  if (protocol.endsWith("-msgpack")) {
    return {
      protocol,
      encoder,
      client: new MsgpackEncoder(),
      carries: { extFields: true, anyType: true, presence: true, objectData: true },
      malformed: MSGPACK_MALFORMED,
    };
  }
  const ext = protocol.includes("-ext-");
  return {
    protocol,
    encoder,
    client: ext ? new ProtobufEncoderV2() : new ProtobufEncoder(),
    carries: { extFields: ext, anyType: false, presence: false, objectData: false },
    malformed: PROTOBUF_MALFORMED,
  };
}

for (const protocol of ALL_PROTOCOLS) encoderContract(subject(protocol));
