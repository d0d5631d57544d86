// One client flooding subscribes must not stall the others (issue 10, defect 1): against the real
// server process, per runtime. Ordering-based: the other client's broadcasts and /health must keep
// answering while the flood is still being worked through. And the per-connection limit
// (--max_subscriptions_per_connection, default 1000) rejects, counts and logs what is over it.

import { afterAll, beforeAll, describe, it } from "bun:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { metric, publish } from "../support/publish.ts";
import { e2eRuntimes, type ServerProcess, startServer } from "../support/server.ts";
import { waitFor } from "../support/wait.ts";

const runtimes = e2eRuntimes(["bun", "deno"]);
const id = (stream: string) => JSON.stringify({ channel: "$pubsub", stream_name: stream });
const subscribe = (stream: string) => JSON.stringify({ command: "subscribe", identifier: id(stream) });

interface Client {
  ws: WebSocket;
  /** Every message, parsed, in arrival order. */
  messages: Array<Record<string, unknown>>;
  onMessage?: (m: Record<string, unknown>) => void;
}

/** A welcomed client; messages are only appended (no per-lookup scans over a 30k-message log). */
async function client(url: string): Promise<Client> {
  const ws = new WebSocket(url, "actioncable-v1-json");
  const c: Client = { ws, messages: [] };
  ws.on("message", (d) => {
    const m = JSON.parse(d.toString()) as Record<string, unknown>;
    c.messages.push(m);
    c.onMessage?.(m);
  });
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
  });
  await waitFor(() => c.messages.some((m) => m.type === "welcome"), "welcome");
  return c;
}

for (const runtime of runtimes) {
  describe(`[${runtime}] a subscribe flood from one connection`, () => {
    let server: ServerProcess;
    let limited: ServerProcess;
    beforeAll(async () => {
      const common = [
        "--public",
        "--norpc",
        "--secret=e2e",
        "--broadcast_adapter=http",
        "--metrics_http=/metrics",
      ];
      [server, limited] = await Promise.all([
        startServer(runtime, { args: [...common, "--max_subscriptions_per_connection=0"] }),
        startServer(runtime, { args: [...common, "--debug"] }),
      ]);
    });
    afterAll(async () => {
      await Promise.all([server?.stop(), limited?.stop()]);
    });

    it("leaves other clients' broadcasts and /health answering while it is worked through", async () => {
      const n = 30_000;
      const probe = await client(server.wsUrl);
      probe.ws.send(subscribe("probe"));
      await waitFor(() => probe.messages.some((m) => m.type === "confirm_subscription"), "probe confirm");
      const flooder = await client(server.wsUrl);
      let answered = 0;
      let firstAnswer!: () => void;
      const started = new Promise<void>((resolve) => {
        firstAnswer = resolve;
      });
      let finished = false;
      flooder.onMessage = (m) => {
        if (m.type !== "confirm_subscription" && m.type !== "reject_subscription") return;
        if (++answered === 1) firstAnswer();
        if (answered === n) finished = true;
      };
      // a flooder dropped by the server ends the flood too (Deno used to drop it as too slow)
      flooder.ws.on("close", () => {
        finished = true;
        firstAnswer();
      });
      for (let i = 0; i < n; i++) flooder.ws.send(subscribe(`flood-${i}`));
      await started;

      // Round trips back to back until the flood is answered: a broadcast to the probe's stream
      // until the probe has it, then /health. Each completed round is counted only if it completed
      // before the last confirmation.
      let rounds = 0;
      for (let seq = 1; !finished; seq++) {
        const res = await publish(`${server.url}/_broadcast`, {
          stream: "probe",
          data: JSON.stringify({ seq }),
        });
        assert.equal(res.status, 201);
        await waitFor(
          () => finished || probe.messages.some((m) => (m.message as { seq?: number })?.seq === seq),
          `broadcast ${seq} at the probe`,
          60_000,
          1,
        );
        const health = await fetch(`${server.url}/health`);
        assert.equal(health.status, 200);
        if (!finished) rounds++;
      }
      assert.ok(rounds >= 3, `only ${rounds} broadcast + /health round trips completed during the flood`);

      // the flood itself: every subscribe confirmed, in order, on a connection that stayed open
      assert.equal(flooder.ws.readyState, WebSocket.OPEN, "the flooder was disconnected");
      const answers = flooder.messages.filter((m) => m.type === "confirm_subscription");
      assert.equal(answers.length, n);
      assert.equal(answers[0]!.identifier, id("flood-0"));
      assert.equal(answers[n - 1]!.identifier, id(`flood-${n - 1}`));
      await publish(`${server.url}/_broadcast`, { stream: `flood-${n - 1}`, data: '"last"' });
      await waitFor(
        () => flooder.messages.some((m) => m.message === "last"),
        "a broadcast on the last stream",
      );
      flooder.ws.close();
      probe.ws.close();
      // the closed flooder leaves none of its streams behind
      await waitFor(
        async () => (await metric(`${server.url}/metrics`, "broadcast_streams_num")) <= 1,
        "the flooder's streams to be gone",
        30_000,
      );
    }, 120_000);

    it("rejects subscribes over --max_subscriptions_per_connection (default 1000), counted and logged", async () => {
      const metricsUrl = `${limited.url}/metrics`;
      const before = await metric(metricsUrl, "subscriptions_limit_exceeded_total");
      const c = await client(limited.wsUrl);
      const total = 1005;
      for (let i = 0; i < total; i++) c.ws.send(subscribe(`lim-${i}`));
      const answersOf = () =>
        c.messages.filter((m) => m.type === "confirm_subscription" || m.type === "reject_subscription");
      await waitFor(() => answersOf().length === total, `${total} answers`, 30_000);
      const answers = answersOf();
      assert.ok(answers.slice(0, 1000).every((m) => m.type === "confirm_subscription"));
      assert.deepEqual(
        answers.slice(1000),
        [1000, 1001, 1002, 1003, 1004].map((i) => ({
          type: "reject_subscription",
          identifier: id(`lim-${i}`),
        })),
      );
      assert.equal(await metric(metricsUrl, "subscriptions_limit_exceeded_total"), before + 5);
      await limited.waitForOutput(/DBG .*subscription rejected: too many subscriptions .*limit=1000/);
      // a rejected stream gets nothing; after an unsubscribe there is room again
      await publish(`${limited.url}/_broadcast`, { stream: "lim-1000", data: '"not for you"' });
      c.ws.send(JSON.stringify({ command: "unsubscribe", identifier: id("lim-0") }));
      c.ws.send(subscribe("lim-1000"));
      await waitFor(
        () => c.messages.some((m) => m.type === "confirm_subscription" && m.identifier === id("lim-1000")),
        "confirmation after an unsubscribe made room",
      );
      await publish(`${limited.url}/_broadcast`, { stream: "lim-1000", data: '"now yes"' });
      await waitFor(() => c.messages.some((m) => m.message === "now yes"), "the broadcast after subscribing");
      assert.ok(!c.messages.some((m) => m.message === "not for you"));
      c.ws.close();
    }, 60_000);
  });
}
