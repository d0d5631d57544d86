// Action Cable protocol and HTTP broadcasting against the real server process, per runtime.

import { afterAll, beforeAll, describe, it } from "bun:test";
import assert from "node:assert/strict";
import { metric, publish } from "../support/publish.ts";
import { firstTextFrame, rawUpgrade } from "../support/raw_ws.ts";
import { e2eRuntimes, type ServerProcess, startServer } from "../support/server.ts";
import { waitFor } from "../support/wait.ts";
import { connect } from "../support/ws_client.ts";

const ID = JSON.stringify({ channel: "$pubsub", stream_name: "chat" });
const runtimes = e2eRuntimes(["bun", "deno"]);

for (const runtime of runtimes) {
  describe(`[${runtime}] Action Cable protocol (--public)`, () => {
    let server: ServerProcess;
    let broadcastUrl: string;
    let metricsUrl: string;

    beforeAll(async () => {
      // --secret puts the broadcast endpoint on the main port; --public then drops its auth.
      server = await startServer(runtime, {
        args: [
          "--public",
          "--norpc",
          "--secret=e2e",
          "--broadcast_adapter=http",
          "--metrics_http=/metrics",
          "--max_message_size=2048",
        ],
      });
      broadcastUrl = `${server.url}/_broadcast`;
      metricsUrl = `${server.url}/metrics`;
    });
    afterAll(async () => {
      await server?.stop();
    });

    it("negotiates sub-protocols and welcomes with a server sid", async () => {
      const plain = await connect(server.wsUrl, "actioncable-v1-json");
      assert.equal(plain.protocol, "actioncable-v1-json");
      const welcome = await plain.next((m) => m.type === "welcome", "welcome");
      assert.match(String(welcome.sid), /^[\w-]{21}$/);
      const ext = await connect(server.wsUrl, ["something-else", "actioncable-v1-ext-json"]);
      assert.equal(ext.protocol, "actioncable-v1-ext-json");
      await ext.next((m) => m.type === "welcome", "ext welcome");
      // Like anycable-go, an unknown (or absent) offer still upgrades, with no protocol selected.
      // Real clients refuse such a handshake, so it is checked at the HTTP level.
      for (const offer of ["something-else", undefined]) {
        const raw = await rawUpgrade(server.port, "/cable", offer);
        assert.equal(raw.status, 101);
        assert.equal(raw.headers["sec-websocket-protocol"], undefined);
        const first = await waitFor(() => firstTextFrame(raw.rest), "welcome over raw socket");
        assert.equal(JSON.parse(first).type, "welcome");
        raw.socket.destroy();
      }
      for (const c of [plain, ext]) c.close();
    });

    it("takes X-Request-ID as the sid only while no live session has it", async () => {
      const headers = { "X-Request-ID": `req-${runtime}-1` };
      const first = await connect(server.wsUrl, "actioncable-v1-json", headers);
      assert.equal(
        (await first.next((m) => m.type === "welcome", "first welcome")).sid,
        headers["X-Request-ID"],
      );
      const second = await connect(server.wsUrl, "actioncable-v1-json", headers);
      const sid = String((await second.next((m) => m.type === "welcome", "second welcome")).sid);
      assert.notEqual(sid, headers["X-Request-ID"]);
      assert.match(sid, /^[\w-]{21}$/);
      // the request id stays traceable beside the session id it did not get
      await server.waitForOutput(new RegExp(`INF .*sid=${sid} request_id=${headers["X-Request-ID"]}`));
      // exclude_socket with the shared id spares the second client
      for (const c of [first, second]) {
        c.send({ command: "subscribe", identifier: ID });
        await c.next((m) => m.type === "confirm_subscription", "confirm");
      }
      const res = await publish(broadcastUrl, {
        stream: "chat",
        data: JSON.stringify("not for req-1"),
        meta: { exclude_socket: headers["X-Request-ID"] },
      });
      assert.equal(res.status, 201);
      assert.equal((await second.next((m) => m.identifier === ID, "broadcast")).message, "not for req-1");
      await publish(broadcastUrl, { stream: "chat", data: JSON.stringify("for all") });
      assert.equal((await first.next((m) => m.identifier === ID, "next broadcast")).message, "for all");
      for (const c of [first, second]) c.close();
    });

    it("sends X-AnyCable-Version on upgrade and 400 on a plain GET of the cable path", async () => {
      const { default: WS } = await import("ws");
      const versionHeader = await new Promise<string | undefined>((resolve, reject) => {
        const ws = new WS(server.wsUrl, "actioncable-v1-json");
        let header: string | undefined;
        ws.on("upgrade", (res) => {
          header = res.headers["x-anycable-version"] as string | undefined;
        });
        ws.on("open", () => {
          resolve(header);
          ws.close();
        });
        ws.on("error", reject);
      });
      assert.match(versionHeader ?? "", /^\d+\.\d+\.\d+/);
      const res = await fetch(server.wsUrl.replace("ws://", "http://"));
      assert.equal(res.status, 400);
    });

    it("delivers HTTP broadcasts (single and batch) in order to @rails/actioncable", async () => {
      const { createConsumer, adapters } = await import("@rails/actioncable");
      const { default: WS } = await import("ws");
      (adapters as { WebSocket: unknown }).WebSocket = WS;
      const consumer = createConsumer(server.wsUrl);
      const received: unknown[] = [];
      let confirmed = false;
      consumer.subscriptions.create(
        { channel: "$pubsub", stream_name: "rails" },
        {
          connected: () => {
            confirmed = true;
          },
          received: (data: unknown) => received.push(data),
        },
      );
      await waitFor(() => confirmed, "rails subscription confirmed");
      for (let i = 0; i < 20; i++) {
        const res = await publish(broadcastUrl, { stream: "rails", data: JSON.stringify({ n: i }) });
        assert.equal(res.status, 201);
      }
      const batch = [1, 2, 3].map((n) => ({ stream: "rails", data: JSON.stringify({ b: n }) }));
      assert.equal((await publish(broadcastUrl, batch)).status, 201);
      await waitFor(() => received.length === 23, "23 broadcasts");
      assert.deepEqual(received, [
        ...Array.from({ length: 20 }, (_, n) => ({ n })),
        { b: 1 },
        { b: 2 },
        { b: 3 },
      ]);
      consumer.disconnect();
    });

    it("serves @anycable/core over the extended protocol with public streams", async () => {
      const { createCable } = await import("@anycable/core");
      const { default: WS } = await import("ws");
      const cable = createCable(server.wsUrl, {
        websocketImplementation: WS,
        protocol: "actioncable-v1-ext-json",
        logLevel: "error",
      });
      const channel = cable.streamFrom("core-stream");
      const got: unknown[] = [];
      channel.on("message", (msg: unknown) => {
        got.push(msg);
      });
      await channel.ensureSubscribed();
      await publish(broadcastUrl, { stream: "core-stream", data: JSON.stringify({ hello: "core" }) });
      await publish(broadcastUrl, { stream: "core-stream", data: "plain text" });
      await waitFor(() => got.length === 2, "two messages via @anycable/core");
      assert.deepEqual(got, [{ hello: "core" }, "plain text"]);
      cable.disconnect();
    });

    it("honours meta.exclude_socket", async () => {
      const a = await connect(server.wsUrl);
      const b = await connect(server.wsUrl);
      const sidA = String((await a.next((m) => m.type === "welcome", "welcome a")).sid);
      await b.next((m) => m.type === "welcome", "welcome b");
      for (const c of [a, b]) {
        c.send({ command: "subscribe", identifier: ID });
        await c.next((m) => m.type === "confirm_subscription", "confirm");
      }
      await publish(broadcastUrl, { stream: "chat", data: '"first"', meta: { exclude_socket: sidA } });
      await publish(broadcastUrl, { stream: "chat", data: '"second"' });
      assert.equal((await b.next((m) => m.identifier === ID, "b first")).message, "first");
      assert.equal((await b.next((m) => m.identifier === ID, "b second")).message, "second");
      assert.equal((await a.next((m) => m.identifier === ID, "a second")).message, "second");
      a.close();
      b.close();
    });

    it("disconnects remotely by identifiers, with the requested reconnect flag", async () => {
      const c = await connect(server.wsUrl);
      const sid = String((await c.next((m) => m.type === "welcome", "welcome")).sid);
      const other = await connect(server.wsUrl);
      await other.next((m) => m.type === "welcome", "welcome other");
      const res = await publish(broadcastUrl, {
        command: "disconnect",
        payload: { identifier: JSON.stringify({ sid }), reconnect: false },
      });
      assert.equal(res.status, 201);
      assert.deepEqual(await c.next((m) => m.type === "disconnect", "remote disconnect"), {
        type: "disconnect",
        reason: "remote",
        reconnect: false,
      });
      assert.equal(await c.waitClosed(), 1000);
      other.send({ command: "ping" });
      await other.next((m) => m.type === "pong", "other client still served");
      other.close();
    });

    it("pings with ?pi= and ?ptp= overrides", async () => {
      const c = await connect(`${server.wsUrl}?pi=1&ptp=ms`);
      await c.next((m) => m.type === "welcome", "welcome");
      const p1 = await c.next((m) => m.type === "ping", "first ping", 3000);
      const p2 = await c.next((m) => m.type === "ping", "second ping", 3000);
      const t1 = Number(p1.message);
      const t2 = Number(p2.message);
      assert.ok(Math.abs(t1 - Date.now()) < 5000, `ms timestamp ${t1}`);
      assert.ok(t2 - t1 >= 700 && t2 - t1 <= 1600, `interval ${t2 - t1}ms`);
      c.close();
      const s = await connect(`${server.wsUrl}?pi=1`);
      const ps = await s.next((m) => m.type === "ping", "seconds ping", 3000);
      assert.ok(Math.abs(Number(ps.message) - Date.now() / 1000) < 5, `s timestamp ${ps.message}`);
      s.close();
    });

    it("answers client ping, ignores unknown commands and undecodable frames, counting them", async () => {
      const before = await metric(metricsUrl, "failed_client_msg_total");
      const c = await connect(server.wsUrl);
      await c.next((m) => m.type === "welcome", "welcome");
      c.send({ command: "subscribe", identifier: ID });
      await c.next((m) => m.type === "confirm_subscription", "confirm");
      c.send({ command: "ping" });
      await c.next((m) => m.type === "pong", "pong");
      c.send({ command: "teleport" });
      c.send({ command: "subscribe", identifier: ID }); // duplicate
      c.sendRaw("{not json");
      await waitFor(
        async () => (await metric(metricsUrl, "failed_client_msg_total")) === before + 3,
        "3 failures counted",
      );
      // still open and still receiving broadcasts
      await publish(broadcastUrl, { stream: "chat", data: '"after"' });
      assert.equal((await c.next((m) => m.identifier === ID, "broadcast after bad input")).message, "after");
      assert.equal(c.closeCode, undefined);
      c.close();
    });

    it("closes oversized frames with 1009 and keeps other clients", async () => {
      const big = await connect(server.wsUrl);
      const other = await connect(server.wsUrl);
      await big.next((m) => m.type === "welcome", "welcome");
      await other.next((m) => m.type === "welcome", "welcome other");
      big.sendRaw(JSON.stringify({ command: "message", identifier: ID, data: "x".repeat(5000) }));
      assert.equal(await big.waitClosed(), 1009);
      other.send({ command: "ping" });
      await other.next((m) => m.type === "pong", "other still served");
      other.close();
    });

    it("rejects bad broadcast requests with the right status and applies nothing", async () => {
      const c = await connect(server.wsUrl);
      await c.next((m) => m.type === "welcome", "welcome");
      c.send({ command: "subscribe", identifier: ID });
      await c.next((m) => m.type === "confirm_subscription", "confirm");
      const get = await fetch(broadcastUrl);
      assert.equal(get.status, 422);
      const before = await metric(metricsUrl, "failed_broadcast_msg_total");
      const bad = await publish(broadcastUrl, '[{"stream":"chat","data":"\\"half\\""},{"data":"x"}]');
      assert.equal(bad.status, 422);
      assert.match(await bad.text(), /batch\[1\].*stream/);
      const notJson = await publish(broadcastUrl, "{nope");
      assert.equal(notJson.status, 422);
      assert.equal(await metric(metricsUrl, "failed_broadcast_msg_total"), before + 2);
      await publish(broadcastUrl, { stream: "chat", data: '"good"' });
      const next = await c.next((m) => m.identifier === ID, "only the good broadcast");
      assert.equal(next.message, "good");
      c.close();
    });

    it("exposes core metrics in Prometheus format", async () => {
      const text = await (await fetch(metricsUrl)).text();
      for (const name of [
        "clients_num",
        "client_msg_total",
        "broadcast_msg_total",
        "server_msg_total",
        "data_sent_total",
        "data_rcvd_total",
        "failed_auths_total",
      ]) {
        assert.match(text, new RegExp(`^anycable_go_${name} \\d+$`, "m"));
      }
      assert.ok((await metric(metricsUrl, "server_msg_total")) > 0);
    });
  });
}
