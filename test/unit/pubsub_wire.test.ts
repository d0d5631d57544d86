// The node-to-node JSON (pubsub/wire.ts): anycable-go's StreamMessage / RemoteCommandMessage.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decodePubSubMessage, encodeRemoteCommand, encodeStreamMessage } from "../../src/pubsub/wire.ts";

describe("pub/sub wire format", () => {
  it("encodes with anycable-go's field names and order, leaving out empty fields", () => {
    assert.equal(
      encodeStreamMessage({ stream: "s", dataJson: '{"a":1}' }),
      '{"stream":"s","data":"{\\"a\\":1}"}',
    );
    assert.equal(
      encodeStreamMessage({
        stream: "s",
        dataJson: '"x"',
        excludeSocket: "sid",
        broadcastType: "whisper",
        transient: true,
        offset: 2,
        epoch: "e",
      }),
      '{"stream":"s","data":"\\"x\\"","meta":{"exclude_socket":"sid","broadcast_type":"whisper","transient":true},"offset":2,"epoch":"e"}',
    );
    assert.equal(
      encodeRemoteCommand({ command: "disconnect", identifier: "u", reconnect: false }),
      '{"command":"disconnect","payload":{"identifier":"u","reconnect":false}}',
    );
  });

  it("round-trips what it encodes", () => {
    const m = { stream: "s", dataJson: "[1,2]", excludeSocket: "x", offset: 9, epoch: "ep" };
    assert.deepEqual(decodePubSubMessage(encodeStreamMessage(m)), { kind: "broadcast", message: m });
  });

  it("decodes what anycable-go publishes, data JSON or not", () => {
    assert.deepEqual(decodePubSubMessage('{"stream":"s","data":"hello"}'), {
      kind: "broadcast",
      message: { stream: "s", dataJson: '"hello"' },
    });
    assert.deepEqual(
      decodePubSubMessage('{"stream":"s","data":"{\\"n\\":1}","meta":{},"offset":0,"epoch":""}'),
      {
        kind: "broadcast",
        message: { stream: "s", dataJson: '{"n":1}' },
      },
    );
    assert.deepEqual(decodePubSubMessage('{"stream":"s"}'), {
      kind: "broadcast",
      message: { stream: "s", dataJson: '""' },
    });
    assert.deepEqual(
      decodePubSubMessage('{"command":"disconnect","payload":{"identifier":"i","reconnect":true}}'),
      {
        kind: "command",
        command: { command: "disconnect", identifier: "i", reconnect: true },
      },
    );
  });

  it("ignores batches and unknown commands, rejects the malformed", () => {
    assert.equal(decodePubSubMessage('[{"stream":"s","data":"1"}]').kind, "ignored");
    assert.equal(decodePubSubMessage('{"command":"reload","payload":{}}').kind, "ignored");
    for (const bad of [
      "garbage{",
      "42",
      "null",
      "{}",
      '{"stream":""}',
      '{"stream":"s","data":1}',
      '{"stream":"s","data":"1","meta":"x"}',
      '{"stream":"s","data":"1","offset":-1}',
      '{"stream":"s","data":"1","offset":1.5}',
      '{"stream":"s","data":"1","epoch":3}',
      '{"command":"disconnect"}',
      '{"command":"disconnect","payload":{"identifier":3}}',
    ]) {
      assert.equal(decodePubSubMessage(bad).kind, "invalid", bad);
    }
  });
});
