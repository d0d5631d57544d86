// Request bodies: --max_body_size refuses a declared or streamed body over the cap (413, the rest
// left unread), a body that stalls gets a deadline, and both body-reading routes use it.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createPublishHandler } from "../../src/api/publish.ts";
import type { PublicationHandler } from "../../src/broadcast/broadcaster.ts";
import { HttpBroadcaster } from "../../src/broadcast/http.ts";
import { bodyReader, readBody } from "../../src/http/body.ts";
import { Logger } from "../../src/log/logger.ts";

const silent = new Logger("error", "text", {}, { write() {} });

/** A body stream that hands out `chunks` and then stays open (or ends); counts what was pulled. */
function streamOf(chunks: Uint8Array[], end: boolean) {
  const state = { pulled: 0, cancelled: false };
  let i = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (i < chunks.length) {
        state.pulled++;
        controller.enqueue(chunks[i++]!);
      } else if (end) controller.close();
      // else: the client stalls, nothing more arrives
    },
    cancel() {
      state.cancelled = true;
    },
  });
  return { stream, state };
}

function request(body: ReadableStream<Uint8Array> | string, headers: Record<string, string> = {}): Request {
  return new Request("http://localhost/_broadcast", {
    method: "POST",
    headers,
    body,
    duplex: "half",
  } as RequestInit);
}

const bytes = (n: number, fill = 0x61) => new Uint8Array(n).fill(fill);

describe("readBody", () => {
  it("reads a body within the cap, UTF-8 split across chunks included", async () => {
    const text = "héllo wörld";
    const all = new TextEncoder().encode(text);
    const { stream } = streamOf([all.subarray(0, 2), all.subarray(2, 9), all.subarray(9)], true);
    assert.deepEqual(await readBody(request(stream), { maxBytes: 100, timeoutMs: 5000 }), { ok: true, text });
  });

  it("refuses a declared Content-Length over the cap without reading the body", async () => {
    const { stream, state } = streamOf([bytes(10)], false);
    const req = request(stream, { "content-length": "2000" });
    assert.deepEqual(await readBody(req, { maxBytes: 1000, timeoutMs: 5000 }), {
      ok: false,
      reason: "too_large",
    });
    // the runtime may prefetch one chunk into its queue; the body is never consumed by us
    assert.ok(state.pulled <= 1, `pulled ${state.pulled}`);
  });

  it("stops reading a chunked body once it passes the cap", async () => {
    const chunks = Array.from({ length: 100 }, () => bytes(100));
    const { stream, state } = streamOf(chunks, false);
    const res = await readBody(request(stream), { maxBytes: 1000, timeoutMs: 5000 });
    assert.deepEqual(res, { ok: false, reason: "too_large" });
    assert.ok(state.pulled < 20, `pulled ${state.pulled} of 100 chunks`);
    assert.ok(state.cancelled, "the rest of the body is cancelled");
  });

  it("0 means no limit", async () => {
    const { stream } = streamOf([bytes(5000), bytes(5000)], true);
    const res = await readBody(request(stream), { maxBytes: 0, timeoutMs: 5000 });
    assert.equal(res.ok && res.text.length, 10_000);
  });

  it("gives up on a body that stops arriving", async () => {
    const { stream, state } = streamOf([bytes(10)], false);
    assert.deepEqual(await readBody(request(stream), { maxBytes: 1000, timeoutMs: 50 }), {
      ok: false,
      reason: "timeout",
    });
    assert.ok(state.cancelled);
  });
});

describe("body-reading routes answer 413 over --max_body_size", () => {
  const handled: unknown[] = [];
  const handler: PublicationHandler = {
    handle: (p) => handled.push(p),
    handleInvalid: () => handled.push("invalid"),
  };
  const body = JSON.stringify({ stream: "s", data: "x".repeat(2000) });

  it("POST /_broadcast", async () => {
    const b = new HttpBroadcaster(handler, "", silent, 1000);
    const res = await b.fetch(request(body));
    assert.equal(res.status, 413);
    assert.equal(res.headers.get("connection"), "close");
    const small = await b.fetch(request(JSON.stringify({ stream: "s", data: "1" })));
    assert.equal(small.status, 201);
    assert.equal(handled.length, 1);
  });

  it("the REST API's publish", async () => {
    handled.length = 0;
    const publish = createPublishHandler(handler, { secret: "", cors: true, maxBodyBytes: 1000 }, silent);
    const res = await publish(request(body));
    assert.equal(res.status, 413);
    assert.equal(res.headers.get("connection"), "close");
    assert.equal(res.headers.get("access-control-allow-origin"), "*");
    assert.equal(handled.length, 0);
    const unlimited = createPublishHandler(handler, { secret: "", cors: false, maxBodyBytes: 0 }, silent);
    assert.equal((await unlimited(request(body))).status, 201);
  });
});

describe("body read failures are logged once per burst", () => {
  it("one ERR line for a burst of failed reads, one line when reads succeed again", async () => {
    const lines: string[] = [];
    const log = new Logger("info", "text", {}, { write: (l) => lines.push(l) });
    const read = bodyReader(log, 1000);
    const broken = () =>
      new ReadableStream<Uint8Array>({
        pull(controller) {
          controller.error(new Error("The connection was closed."));
        },
      });
    const results = await Promise.all(Array.from({ length: 20 }, () => read(request(broken()))));
    assert.ok(results.every((r) => !r.ok && r.reason === "failed"));
    assert.equal(lines.length, 1, lines.join("\n"));
    assert.match(lines[0]!, / ERR failed to read request body .*connection was closed/);
    assert.deepEqual(await read(request("{}")), { ok: true, text: "{}" });
    assert.equal(lines.length, 2);
    assert.match(lines[1]!, / INF request bodies are read again failed_reads=20/);
  });

  it("one WRN line for a burst of oversized bodies", async () => {
    const lines: string[] = [];
    const read = bodyReader(new Logger("info", "text", {}, { write: (l) => lines.push(l) }), 10);
    for (let i = 0; i < 5; i++) assert.equal((await read(request("x".repeat(100)))).ok, false);
    assert.equal(lines.length, 1, lines.join("\n"));
    assert.match(lines[0]!, / WRN request body too large limit=10/);
  });
});
