import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parsePublication } from "../../src/broadcast/publication.ts";

describe("parsePublication", () => {
  it("parses a single publication with meta", () => {
    const r = parsePublication('{"stream":"s","data":"{\\"x\\":1}","meta":{"exclude_socket":"sid1"}}');
    assert.deepEqual(r, {
      ok: true,
      value: {
        kind: "broadcast",
        publications: [{ stream: "s", dataJson: '{"x":1}', excludeSocket: "sid1" }],
      },
    });
  });
  it("parses a batch in order", () => {
    const r = parsePublication('[{"stream":"a","data":"1"},{"stream":"b","data":"2"}]');
    assert.ok(r.ok);
    if (r.ok && r.value.kind === "broadcast") {
      assert.deepEqual(
        r.value.publications.map((p) => [p.stream, p.dataJson]),
        [
          ["a", "1"],
          ["b", "2"],
        ],
      );
    }
  });
  it("parses a remote disconnect", () => {
    const r = parsePublication(
      '{"command":"disconnect","payload":{"identifier":"{\\"sid\\":\\"x\\"}","reconnect":true}}',
    );
    assert.deepEqual(r, {
      ok: true,
      value: {
        kind: "command",
        command: { command: "disconnect", identifier: '{"sid":"x"}', reconnect: true },
      },
    });
  });
  const bad: Array<[string, RegExp]> = [
    ["not json", /not valid JSON/],
    ["[]", /empty/],
    ["42", /object/],
    ['{"data":"x"}', /stream/],
    ['{"stream":"s","data":{"x":1}}', /data.*string/],
    ['[{"stream":"a","data":"1"},{"data":"2"}]', /batch\[1\]/],
    ['{"stream":"s","meta":"x"}', /meta/],
    ['{"command":"explode"}', /unknown remote command/],
    ['{"command":"disconnect","payload":{}}', /identifier/],
  ];
  for (const [body, re] of bad) {
    it(`rejects ${body} with a reason`, () => {
      const r = parsePublication(body);
      assert.equal(r.ok, false);
      if (!r.ok) assert.match(r.error, re);
    });
  }
});
