// The Durable Streams read API against the real server process, per runtime, driven by the
// official `@durable-streams/client`: catch-up reads, long-poll and SSE live reads (history first,
// then live messages, nothing lost or repeated), signed-stream authorization (?signed= and
// X-Signed), JWT authentication and --ds_skip_auth, and the statuses anycable-go answers with
// (400 bad offset, 401, 405 writes, 410 stale epoch, 204 after --ds_poll_interval, 304 for a
// catch-up's ETag), CORS, metrics.

import { afterAll, beforeAll, describe, it } from "bun:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { identificator } from "@anycable/serverless-js";
import { stream } from "@durable-streams/client";
import { metric, publish } from "../support/publish.ts";
import { e2eRuntimes, type ServerProcess, startServer } from "../support/server.ts";
import { signStream } from "../support/signing.ts";
import { waitFor } from "../support/wait.ts";

const SECRET = "ds-e2e-secret";
const BROADCAST_KEY = createHmac("sha256", SECRET).update("broadcast-cable").digest("hex");
const runtimes = e2eRuntimes(["bun", "deno"]);

type Item = { n: number };

for (const runtime of runtimes) {
  describe(`[${runtime}] Durable Streams (--ds --broker=memory, JWT, signed streams)`, () => {
    let server: ServerProcess;
    let open: ServerProcess;
    let epoch: string;
    const jwt = identificator(SECRET, "1h");
    let token: string;
    const url = (s: ServerProcess, name: string) => `${s.url}/ds/${name}`;
    const broadcast = (s: ServerProcess, name: string, n: number) =>
      publish(`${s.url}/_broadcast`, { stream: name, data: JSON.stringify({ n }) }, BROADCAST_KEY);

    beforeAll(async () => {
      const common = [
        "--ds",
        "--norpc",
        `--secret=${SECRET}`,
        "--broker=memory",
        "--broadcast_adapter=http",
        "--metrics_http=/metrics",
      ];
      [server, open] = await Promise.all([
        startServer(runtime, { args: [...common, "--ds_poll_interval=1", "--log_level=debug"] }),
        startServer(runtime, { args: [...common, "--ds_skip_auth", "--public_streams"] }),
      ]);
      const m = /Using in-memory broker \(epoch: ([^,]+),/.exec(server.output());
      assert.ok(m, server.output());
      epoch = m[1]!;
      token = await jwt.generateToken({ user: "ds-user" });
    });
    afterAll(async () => {
      await Promise.all([server?.stop(), open?.stop()]);
    });

    const authed = (name: string) => ({ "X-JID": token, "X-Signed": signStream(name, SECRET) });

    it("announces the endpoint and serves the options (no 'not served yet' line)", () => {
      assert.match(
        server.output(),
        new RegExp(`INF Handle Durable Streams requests at ${server.url}/ds/\\*`),
      );
      assert.doesNotMatch(server.output(), /option ds.* not served yet/);
    });

    it("catch-up read: the stream's history as JSON items, the next offset, up to date", async () => {
      const name = `chat/${runtime}/catch-up`;
      for (const n of [1, 2, 3]) assert.equal((await broadcast(server, name, n)).status, 201);
      const res = await stream<Item>({
        url: url(server, name),
        offset: "-1",
        live: false,
        headers: authed(name),
      });
      assert.deepEqual(await res.json(), [{ n: 1 }, { n: 2 }, { n: 3 }]);
      assert.equal(res.offset, `3::${epoch}`);
      assert.equal(res.upToDate, true);
      // from an offset: only what came after it
      const rest = await stream<Item>({
        url: url(server, name),
        offset: `1::${epoch}`,
        live: false,
        headers: authed(name),
      });
      assert.deepEqual(await rest.json(), [{ n: 2 }, { n: 3 }]);
      // HEAD: the tail position
      const head = await fetch(
        `${url(server, name)}?signed=${encodeURIComponent(signStream(name, SECRET))}`,
        {
          method: "HEAD",
          headers: { "X-JID": token },
        },
      );
      assert.equal(head.status, 200);
      assert.equal(head.headers.get("stream-next-offset"), `3::${epoch}`);
      assert.equal(head.headers.get("cache-control"), "no-store");
    });

    it("long-poll: history first, then each live message once, in order", async () => {
      const name = `chat/${runtime}/long-poll`;
      assert.equal((await broadcast(server, name, 1)).status, 201);
      const res = await stream<Item>({
        url: url(server, name),
        offset: "-1",
        live: "long-poll",
        headers: authed(name),
      });
      const got: number[] = [];
      const offsets: string[] = [];
      const unsubscribe = res.subscribeJson(async (batch) => {
        for (const item of batch.items) got.push(item.n);
        offsets.push(batch.offset);
      });
      try {
        await waitFor(() => got.length === 1, "history");
        // a live message wakes the waiting poll; the next poll waits again
        for (const n of [2, 3, 4]) {
          assert.equal((await broadcast(server, name, n)).status, 201);
          await waitFor(() => got.length === n, `message ${n}`);
        }
        assert.deepEqual(got, [1, 2, 3, 4]);
        assert.equal(offsets[offsets.length - 1], `4::${epoch}`);
        const polls = await metric(`${server.url}/metrics`, "ds_poll_requests_total");
        assert.ok(polls >= 1, `ds_poll_requests_total ${polls}`);
      } finally {
        unsubscribe();
        res.cancel();
      }
    });

    it("SSE: history as one batch, then live messages with their offsets", async () => {
      const name = `chat/${runtime}/sse`;
      for (const n of [1, 2]) assert.equal((await broadcast(server, name, n)).status, 201);
      const res = await stream<Item>({
        url: url(server, name),
        offset: "-1",
        live: "sse",
        json: true,
        headers: authed(name),
      });
      const got: number[] = [];
      let lastOffset = "";
      const unsubscribe = res.subscribeJson(async (batch) => {
        for (const item of batch.items) got.push(item.n);
        lastOffset = batch.offset;
      });
      try {
        await waitFor(() => got.length === 2, "history");
        await waitFor(
          async () => (await metric(`${server.url}/metrics`, "ds_sse_clients_num")) >= 1,
          "sse client",
        );
        for (const n of [3, 4, 5]) assert.equal((await broadcast(server, name, n)).status, 201);
        await waitFor(() => got.length === 5, "live messages");
        assert.deepEqual(got, [1, 2, 3, 4, 5]);
        assert.equal(lastOffset, `5::${epoch}`);
      } finally {
        unsubscribe();
        res.cancel();
      }
      await waitFor(
        async () => (await metric(`${server.url}/metrics`, "ds_sse_clients_num")) === 0,
        "sse client gone",
      );
    });

    it("raw SSE events: data and control, as anycable-go writes them", async () => {
      const name = `chat/${runtime}/raw`;
      assert.equal((await broadcast(server, name, 1)).status, 201);
      const ac = new AbortController();
      const res = await fetch(`${url(server, name)}?offset=-1&live=sse`, {
        headers: authed(name),
        signal: ac.signal,
      });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("content-type"), "text/event-stream");
      const reader = res.body!.getReader();
      let text = "";
      const dec = new TextDecoder();
      try {
        while (!text.includes("upToDate")) text += dec.decode((await reader.read()).value);
        assert.match(
          text,
          /^event: data\ndata:\[\{"n":1\}\]\n\nevent: control\ndata:\{"streamNextOffset":"1::/,
        );
        assert.equal((await broadcast(server, name, 2)).status, 201);
        while (!text.includes(`"2::`)) text += dec.decode((await reader.read()).value);
        assert.match(
          text,
          /event: data\ndata:\[\{"n":2\}\]\n\nevent: control\ndata:\{"streamNextOffset":"2::[^"]+","streamCursor":"\d+"\}/,
        );
      } finally {
        ac.abort();
      }
    });

    it("authorization: unsigned, wrongly signed and another stream's signature are 401; no token is 401", async () => {
      const name = `chat/${runtime}/private`;
      const get = (path: string, headers: Record<string, string>) =>
        fetch(`${url(server, path)}?offset=-1`, { headers });
      assert.equal((await get(name, { "X-JID": token })).status, 401);
      assert.equal((await get(name, { "X-JID": token, "X-Signed": "bogus--00" })).status, 401);
      assert.equal(
        (await get(name, { "X-JID": token, "X-Signed": signStream("other", SECRET) })).status,
        401,
      );
      assert.equal((await get(name, { "X-Signed": signStream(name, SECRET) })).status, 401);
      const ok = await get(name, authed(name));
      assert.equal(ok.status, 200);
      assert.equal(await ok.text(), "[]");
      assert.equal(ok.headers.get("stream-next-offset"), "0");
    });

    it("statuses: bad offset 400, write 405, stale epoch 410, long poll with nothing new 204, ETag 304", async () => {
      const name = `chat/${runtime}/statuses`;
      const h = authed(name);
      assert.equal((await fetch(`${url(server, name)}?offset=x::y`, { headers: h })).status, 400);
      assert.equal((await fetch(`${url(server, name)}?live=sse`, { headers: h })).status, 400);
      assert.equal((await fetch(`${server.url}/ds/`, { headers: h })).status, 400);
      assert.equal((await fetch(url(server, name), { method: "POST", headers: h, body: "[]" })).status, 405);
      assert.equal((await fetch(`${url(server, name)}?offset=1::stale`, { headers: h })).status, 410);
      assert.equal((await broadcast(server, name, 1)).status, 201);
      const poll = await fetch(`${url(server, name)}?offset=1::${epoch}&live=long-poll`, { headers: h });
      assert.equal(poll.status, 204);
      assert.equal(poll.headers.get("stream-next-offset"), `1::${epoch}`);
      assert.equal(poll.headers.get("stream-up-to-date"), "true");
      assert.match(poll.headers.get("stream-cursor") ?? "", /^\d+$/);
      assert.equal(poll.headers.get("x-content-type-options"), "nosniff");
      assert.equal(poll.headers.get("cross-origin-resource-policy"), "cross-origin");
      // catch-up answers have an ETag: the same one revalidates to 304 until a message comes
      const first = await fetch(url(server, name), { headers: h });
      const etag = first.headers.get("etag") ?? "";
      assert.match(etag, /^"[^"]+"$/);
      const again = await fetch(url(server, name), { headers: { ...h, "If-None-Match": etag } });
      assert.equal(again.status, 304);
      assert.equal(await again.text(), "");
      assert.equal(again.headers.get("stream-next-offset"), `1::${epoch}`);
      assert.equal((await broadcast(server, name, 2)).status, 201);
      const changed = await fetch(url(server, name), { headers: { ...h, "If-None-Match": etag } });
      assert.equal(changed.status, 200);
      assert.deepEqual(await changed.json(), [{ n: 1 }, { n: 2 }]);
      assert.notEqual(changed.headers.get("etag"), etag);
      const preflight = await fetch(url(server, name), {
        method: "OPTIONS",
        headers: { Origin: "https://app.example" },
      });
      assert.equal(preflight.status, 200);
      assert.match(
        preflight.headers.get("access-control-allow-headers") ?? "",
        /X-Signed, If-None-Match, x-jid/i,
      );
      assert.match(preflight.headers.get("access-control-expose-headers") ?? "", /Stream-Next-Offset.*ETag/);
      assert.ok((await metric(`${server.url}/metrics`, "ds_requests_total")) >= 5);
    });

    it("--ds_skip_auth with --public_streams: no token needed, public names readable", async () => {
      const name = `open/${runtime}`;
      assert.equal((await broadcast(open, name, 7)).status, 201);
      const res = await stream<Item>({ url: url(open, name), offset: "-1", live: false });
      assert.deepEqual(await res.json(), [{ n: 7 }]);
    });
  });
}
