// What an SSE request subscribes to (GET query, Last-Event-ID, history_since, POST JSONL), `raw`,
// and the CORS headers of the HTTP transports, as anycable-go's sse/sse.go and server/cors.go.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { corsHeaders } from "../../src/transports/cors.ts";
import {
  commandFromQuery,
  commandsFromBody,
  goJsonString,
  identifierFromQuery,
  isRaw,
  parseLastEventId,
} from "../../src/transports/sse/params.ts";

const q = (s: string) => new URLSearchParams(s);

describe("SSE GET parameters", () => {
  it("takes the first of identifier, channel, stream, signed_stream, turbo_signed_stream_name", () => {
    const all = "identifier=ID&channel=Chat&stream=pub&signed_stream=sig&turbo_signed_stream_name=turbo";
    assert.equal(identifierFromQuery(q(all)), "ID");
    assert.equal(identifierFromQuery(q(all.replace("identifier=ID&", ""))), '{"channel":"Chat"}');
    assert.equal(
      identifierFromQuery(q("stream=pub&signed_stream=sig&turbo_signed_stream_name=turbo")),
      '{"channel":"$pubsub","stream_name":"pub"}',
    );
    assert.equal(
      identifierFromQuery(q("signed_stream=sig&turbo_signed_stream_name=turbo")),
      '{"channel":"$pubsub","signed_stream_name":"sig"}',
    );
    assert.equal(
      identifierFromQuery(q("turbo_signed_stream_name=turbo")),
      '{"channel":"Turbo::StreamsChannel","signed_stream_name":"turbo"}',
    );
  });

  it("skips empty parameters and reads the first of repeated ones (Go's Query().Get)", () => {
    assert.equal(
      identifierFromQuery(q("identifier=&channel=&stream=s")),
      '{"channel":"$pubsub","stream_name":"s"}',
    );
    assert.equal(identifierFromQuery(q("channel=A&channel=B")), '{"channel":"A"}');
    assert.equal(identifierFromQuery(q("raw=1&history_since=5")), "");
  });

  it("builds identifiers with Go's JSON escaping (<, >, &, U+2028, U+2029, quotes)", () => {
    assert.equal(goJsonString('a<b>&"c"\u2028\u2029'), '"a\\u003cb\\u003e\\u0026\\"c\\"\\u2028\\u2029"');
    assert.equal(
      identifierFromQuery(q(`stream=${encodeURIComponent("<x> & y")}`)),
      '{"channel":"$pubsub","stream_name":"\\u003cx\\u003e \\u0026 y"}',
    );
    // still the JSON of the same name
    assert.deepEqual(JSON.parse(identifierFromQuery(q("channel=%3Cb%3E"))), { channel: "<b>" });
  });

  it("refuses a request naming no channel", () => {
    assert.deepEqual(commandFromQuery(q("raw=1"), null), { ok: false, error: "no channel provided" });
  });

  it("is a subscribe without history when neither Last-Event-ID nor history_since is given", () => {
    assert.deepEqual(commandFromQuery(q("channel=Chat"), null), {
      ok: true,
      commands: [{ command: "subscribe", identifier: '{"channel":"Chat"}' }],
    });
  });

  it("asks for history from the stream position in Last-Event-ID, and since history_since", () => {
    assert.deepEqual(commandFromQuery(q("stream=a/b&history_since=1700000000"), "12/ep0ch/a/b"), {
      ok: true,
      commands: [
        {
          command: "subscribe",
          identifier: '{"channel":"$pubsub","stream_name":"a/b"}',
          history: { streams: { "a/b": { epoch: "ep0ch", offset: 12 } }, since: 1700000000 },
        },
      ],
    });
  });

  it("ignores a Last-Event-ID without three parts, and refuses a non-numeric offset", () => {
    for (const id of ["12", "12/epoch", "", "x"]) {
      const parsed = commandFromQuery(q("channel=C"), id);
      assert.ok(parsed.ok);
      assert.equal(parsed.commands[0]!.history, undefined, id);
    }
    for (const id of ["x/e/s", "-1/e/s", "+1/e/s", " 1/e/s", "1.5/e/s", "/e/s", "18446744073709551616/e/s"]) {
      const parsed = commandFromQuery(q("channel=C"), id);
      assert.equal(parsed.ok, false, id);
    }
    // the largest uint64 is still an offset (as ParseUint takes it)
    assert.ok(!("error" in (parseLastEventId("18446744073709551615/e/s") ?? { error: "none" })));
    assert.deepEqual(parseLastEventId("0//"), { offset: 0, epoch: "", stream: "" });
  });

  it("keeps a stream named __proto__ as a stream", () => {
    const parsed = commandFromQuery(q("channel=C"), "1/e/__proto__");
    assert.ok(parsed.ok);
    assert.deepEqual(Object.keys(parsed.commands[0]!.history!.streams!), ["__proto__"]);
  });

  it("reads history_since as Go's ParseInt: signed decimal, 64 bits, else the request is refused", () => {
    const since = (v: string) => {
      const p = commandFromQuery(q(`channel=C&history_since=${encodeURIComponent(v)}`), null);
      return p.ok ? (p.commands[0]!.history?.since ?? "none") : "error";
    };
    assert.equal(since("42"), 42);
    assert.equal(since("+42"), 42);
    assert.equal(since("-42"), -42);
    assert.equal(since("0"), "none");
    for (const bad of ["x", "1.5", "1e3", " 1", "9223372036854775808"])
      assert.equal(since(bad), "error", bad);
    assert.equal(since("9223372036854775807"), Number(9223372036854775807n));
  });

  it("reads raw as true for true, 1, t, y in any case", () => {
    for (const v of ["true", "1", "t", "y", "TRUE", "T", "Y"]) assert.equal(isRaw(q(`raw=${v}`)), true, v);
    for (const v of ["", "0", "false", "yes", "on"]) assert.equal(isRaw(q(`raw=${v}`)), false, v);
    assert.equal(isRaw(q("")), false);
  });
});

describe("SSE POST bodies (JSONL)", () => {
  it("one command per non-empty line, the history fields kept", () => {
    const body = [
      '{"command":"subscribe","identifier":"{\\"channel\\":\\"A\\"}"}',
      "",
      '{"command":"subscribe","identifier":"B","history":{"since":5}}\r',
      "",
    ].join("\n");
    assert.deepEqual(commandsFromBody(body), {
      ok: true,
      commands: [
        { command: "subscribe", identifier: '{"channel":"A"}' },
        { command: "subscribe", identifier: "B", history: { since: 5 } },
      ],
    });
  });

  it("an empty body subscribes to nothing", () => {
    assert.deepEqual(commandsFromBody(""), { ok: true, commands: [] });
    assert.deepEqual(commandsFromBody("\n\n"), { ok: true, commands: [] });
  });

  it("any malformed line refuses the whole body", () => {
    for (const line of ["not json", "[1]", '"x"', '{"identifier":{"channel":"A"}}', "\r", '{"command":1}']) {
      const parsed = commandsFromBody(`{"command":"subscribe","identifier":"A"}\n${line}`);
      assert.equal(parsed.ok, false, JSON.stringify(line));
    }
  });
});

describe("CORS headers", () => {
  const FIXED = {
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    "Access-Control-Allow-Credentials": "true",
    "Access-Control-Allow-Headers":
      "Origin, X-Requested-With, X-Request-ID, Content-Type, Accept, X-CSRF-Token, Authorization",
  };

  it("allows any origin when --allowed_origins is empty", () => {
    assert.deepEqual(corsHeaders("")("http://a.example"), { "Access-Control-Allow-Origin": "*", ...FIXED });
    assert.deepEqual(corsHeaders("")(null), { "Access-Control-Allow-Origin": "*", ...FIXED });
  });

  it("echoes an allowed origin (exact host or *-suffix), and names none otherwise", () => {
    const cors = corsHeaders("example.com,*.example.io");
    assert.equal(cors("https://example.com")["Access-Control-Allow-Origin"], "https://example.com");
    assert.equal(cors("https://App.Example.IO")["Access-Control-Allow-Origin"], "https://app.example.io");
    assert.deepEqual(cors("https://evil.com"), FIXED);
    assert.deepEqual(cors(null), FIXED);
    assert.deepEqual(cors("not a url"), FIXED);
  });
});
