// The live status page's pure parts: the fixed-size ring, the sampler's rates from the metrics
// registry, the key (derived from --secret, given as ?key= or Bearer), the option, and the routes
// as a composed cable answers them (401 / 200, the publish endpoint only in public mode).
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { describe, it } from "node:test";
import { composeCable } from "../../src/app/cable.ts";
import { loadConfig } from "../../src/config/index.ts";
import { Logger } from "../../src/log/logger.ts";
import { Metrics } from "../../src/metrics/registry.ts";
import type { Runtime } from "../../src/runtime/types.ts";
import { statusKeyMatches } from "../../src/status/key.ts";
import { fromConfig } from "../../src/status/options.ts";
import { renderStatusPage } from "../../src/status/page.ts";
import { Ring, StatusSampler } from "../../src/status/sampler.ts";

function configOf(argv: string[]) {
  const loaded = loadConfig({ argv, env: {}, readFile: () => undefined });
  if (loaded.kind !== "run") throw new Error(JSON.stringify(loaded));
  return loaded.config;
}

const statusKey = (secret: string) => createHmac("sha256", secret).update("status-cable").digest("hex");

describe("status ring", () => {
  it("keeps the last `capacity` items, oldest first", () => {
    const r = new Ring<number>(3);
    assert.deepEqual(r.toArray(), []);
    assert.equal(r.last(), undefined);
    r.push(1);
    r.push(2);
    assert.deepEqual(r.toArray(), [1, 2]);
    for (let i = 3; i <= 10; i++) r.push(i);
    assert.deepEqual(r.toArray(), [8, 9, 10]);
    assert.equal(r.size, 3);
    assert.equal(r.last(), 10);
  });

  it("rejects a capacity that is not a positive integer", () => {
    assert.throws(() => new Ring(0), RangeError);
    assert.throws(() => new Ring(1.5), RangeError);
  });
});

describe("status sampler", () => {
  it("reads gauges and turns counters into per-second rates over the elapsed time", () => {
    const m = new Metrics();
    const clients = m.gauge("clients_num", "");
    m.onCollect(() => clients.set(7));
    m.gauge("broadcast_streams_num", "").set(3);
    m.gauge("rpc_pending_num", "").set(2);
    m.gauge("mem_sys_bytes", "").set(123_456);
    const broadcasts = m.counter("broadcast_msg_total", "");
    const delivered = m.counter("server_msg_total", "");
    const rpc = m.counter("rpc_call_total", "");
    const slow = m.counter("disconnected_slow_clients_total", "");
    const errors = m.counter("rpc_error_total", "");
    const timeouts = m.counter("rpc_timeout_total", "");
    const s = new StatusSampler(m, { capacity: 4, rss: () => 1 });
    broadcasts.inc(100);
    const first = s.sample(10_000);
    // no interval behind the first sample: rates 0, gauges as they are (collected on read)
    assert.equal(first.broadcastsPerSec, 0);
    assert.equal(first.clients, 7);
    assert.equal(first.streams, 3);
    assert.equal(first.rpcPending, 2);
    assert.equal(first.memBytes, 123_456);
    broadcasts.inc(4);
    delivered.inc(40);
    rpc.inc(3);
    errors.inc(1);
    timeouts.inc(1);
    slow.inc(2);
    const second = s.sample(12_000); // two seconds later
    assert.equal(second.broadcastsPerSec, 2);
    assert.equal(second.deliveredPerSec, 20);
    assert.equal(second.rpcCallsPerSec, 1.5);
    assert.equal(second.rpcErrorsPerSec, 1);
    assert.equal(second.slowDisconnects, 2);
    const third = s.sample(13_000);
    assert.equal(third.broadcastsPerSec, 0);
    for (let t = 14_000; t < 20_000; t += 1000) s.sample(t);
    assert.equal(s.ring.size, 4);
    assert.deepEqual(
      s.ring.toArray().map((x) => x.t),
      [16_000, 17_000, 18_000, 19_000],
    );
  });

  it("reads the process's RSS when mem_sys_bytes is not sampled; 0 for metrics not registered", () => {
    const s = new StatusSampler(new Metrics(), { rss: () => 42 });
    const x = s.sample(1);
    assert.equal(x.memBytes, 42);
    assert.equal(x.rpcCallsPerSec, 0);
    assert.equal(x.clients, 0);
  });

  it("runs as a ticker task once a second", () => {
    const m = new Metrics();
    const s = new StatusSampler(m);
    const task = s.task();
    assert.equal(task.everyMs, 1000);
    task.run(5);
    assert.equal(s.ring.last()?.t, 5);
  });
});

describe("status key", () => {
  const key = statusKey("s3cr3t");
  const req = (url: string, headers: Record<string, string> = {}) => new Request(url, { headers });
  it("accepts the key as ?key= or as a Bearer token", () => {
    assert.ok(statusKeyMatches(req(`http://x/status?key=${key}`), key));
    assert.ok(statusKeyMatches(req("http://x/status", { authorization: `Bearer ${key}` }), key));
  });
  it("refuses no key, a wrong key, the secret itself and a wrong scheme", () => {
    assert.ok(!statusKeyMatches(req("http://x/status"), key));
    assert.ok(!statusKeyMatches(req("http://x/status?key=nope"), key));
    assert.ok(!statusKeyMatches(req("http://x/status?key=s3cr3t"), key));
    assert.ok(!statusKeyMatches(req("http://x/status?key="), key));
    assert.ok(!statusKeyMatches(req("http://x/status", { authorization: `Basic ${key}` }), key));
    assert.ok(!statusKeyMatches(req("http://x/status", { authorization: "Bearer nope" }), key));
  });
  it("passes everything when open (public mode)", () => {
    assert.ok(statusKeyMatches(req("http://x/status"), ""));
  });
});

describe("status options", () => {
  it("derives the key from --secret as HMAC-SHA256(secret, 'status-cable') hex", () => {
    const o = fromConfig(configOf(["--status_path=/status/", "--secret=s3cr3t"]));
    assert.deepEqual(o, { path: "/status", public: false, key: statusKey("s3cr3t") });
    assert.match(o.key, /^[0-9a-f]{64}$/);
  });
  it("is open in public mode and keyless (hence not served) without a secret", () => {
    assert.equal(fromConfig(configOf(["--status_path=/status", "--public", "--secret=x"])).key, "");
    assert.deepEqual(fromConfig(configOf(["--status_path=/status"])), {
      path: "/status",
      public: false,
      key: "",
    });
    assert.equal(fromConfig(configOf([])).path, "");
  });
  it("rejects a value that is not a path", () => {
    for (const bad of ["status", "/", "/a b", "/x?y"]) {
      const loaded = loadConfig({ argv: [`--status_path=${bad}`], env: {}, readFile: () => undefined });
      assert.notEqual(loaded.kind, "run", bad);
    }
  });
});

describe("status page", () => {
  it("is self-contained: no external script, style, image or font", () => {
    const html = renderStatusPage({
      dataPath: "/status/data",
      publishPath: "/status/publish",
      wsPath: "/cable",
      pubsubChannel: "$pubsub",
      version: "1",
      nodeId: "n</script><b>",
    });
    // (the SVG namespace is a name, not a fetch)
    assert.doesNotMatch(html, /<script[^>]+src=|<link|@import|url\(|https?:\/\/(?!www\.w3\.org\/2000\/svg")/);
    assert.doesNotMatch(html, /n<\/script><b>/);
    assert.match(html, /id="tryit"/);
    const keyed = renderStatusPage({
      dataPath: "/s/data",
      publishPath: null,
      wsPath: "/cable",
      pubsubChannel: "$pubsub",
      version: "1",
      nodeId: "n",
    });
    assert.doesNotMatch(keyed, /id="tryit"/);
  });
});

const noRuntime = { name: "bun", http2MaxStreamsPerSession: 0 } as unknown as Runtime;
async function compose(argv: string[]) {
  const lines: string[] = [];
  const logger = new Logger("info", "text", {}, { write: (l) => lines.push(l) });
  const cable = await composeCable({ config: configOf(argv), runtime: noRuntime, logger, embedded: true });
  const fetch = (path: string, init?: RequestInit) =>
    cable.main.handle(new Request(`http://localhost${path}`, init), "127.0.0.1") as Promise<Response>;
  return { cable, fetch, log: () => lines.join("\n") };
}

describe("status routes in a composed cable", () => {
  it("answers 401 without or with a wrong key, 200 with the key; no publish endpoint", async () => {
    const { fetch } = await compose(["--norpc", "--status_path=/status", "--secret=s3cr3t"]);
    const key = statusKey("s3cr3t");
    assert.equal((await fetch("/status")).status, 401);
    assert.equal((await fetch("/status?key=wrong")).status, 401);
    assert.equal((await fetch("/status/data")).status, 401);
    const page = await fetch(`/status?key=${key}`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get("content-type") ?? "", /text\/html/);
    assert.match(await page.text(), /anycable-ts status/);
    const data = await fetch("/status/data", { headers: { authorization: `Bearer ${key}` } });
    assert.equal(data.status, 200);
    const body = (await data.json()) as { samples: unknown[]; capacity: number; public: boolean };
    assert.equal(body.capacity, 300);
    assert.equal(body.public, false);
    assert.deepEqual(body.samples, []);
    const pub = await fetch(`/status/publish?key=${key}`, {
      method: "POST",
      body: '{"stream":"a","data":1}',
    });
    assert.equal(pub.status, 404);
  });

  it("in public mode is open and publishes through the cable (201; 422 on a bad body)", async () => {
    const { fetch, cable } = await compose(["--norpc", "--public", "--status_path=/status"]);
    assert.equal((await fetch("/status")).status, 200);
    const before =
      cable.metrics.counterValue("publications_total") + cable.metrics.counterValue("broadcast_msg_total");
    const ok = await fetch("/status/publish", {
      method: "POST",
      body: '{"stream":"demo","data":{"text":"hi"}}',
    });
    assert.equal(ok.status, 201);
    const after =
      cable.metrics.counterValue("publications_total") + cable.metrics.counterValue("broadcast_msg_total");
    assert.ok(after > before, "the publication reached the cable");
    for (const bad of ["nope", "{}", '{"stream":"","data":1}', '{"stream":"a"}', "[]"]) {
      assert.equal((await fetch("/status/publish", { method: "POST", body: bad })).status, 422, bad);
    }
  });

  it("is not served, with a warning, when it would be unprotected", async () => {
    const { fetch, log } = await compose(["--norpc", "--status_path=/status"]);
    assert.equal((await fetch("/status")).status, 404);
    assert.match(log(), /Status page is not served: it would be unprotected/);
  });
});
