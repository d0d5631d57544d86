// The live status page end to end, per runtime: the key (401 without it or with a wrong one, 200
// with it as ?key= or Bearer); after traffic (WebSocket clients subscribed to a stream, HTTP
// broadcasts) the page, loaded in headless Chromium (Debian's chromium driven by playwright-core,
// no browser download), plots non-zero connections, streams, broadcasts/s, delivered messages/s
// and memory (read from the data attributes the page keeps on each plot); a screenshot is kept in
// test/artifacts/; in a --public server the "try it" panel subscribes to a stream over WebSocket,
// publishes to it and shows the message arrive with its round-trip time.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "bun:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHmac } from "node:crypto";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { type Browser, chromium, type Page } from "playwright-core";
import { publish } from "../support/publish.ts";
import { e2eRuntimes, ROOT, type ServerProcess, startServer } from "../support/server.ts";
import { hasService } from "../support/services.ts";
import { connect, type RawClient } from "../support/ws_client.ts";

const runtimes = e2eRuntimes(["bun", "deno"]);
const enabled = hasService("chromium");
const ARTIFACTS = join(ROOT, "test", "artifacts");

const SECRET = "status-e2e-secret";
const hmac = (phrase: string) => createHmac("sha256", SECRET).update(phrase).digest("hex");
const STATUS_KEY = hmac("status-cable");
const BROADCAST_KEY = hmac("broadcast-cable");
const STREAM = "status-e2e";
const ID = JSON.stringify({ channel: "$pubsub", stream_name: STREAM });

function chromiumPath(): string {
  const found = spawnSync("sh", ["-c", "command -v chromium"], { encoding: "utf8" }).stdout.trim();
  return found || "/usr/bin/chromium";
}

async function subscriber(server: ServerProcess): Promise<RawClient> {
  const c = await connect(server.wsUrl);
  await c.next((m) => m.type === "welcome", "welcome");
  c.send({ command: "subscribe", identifier: ID });
  await c.next((m) => m.type === "confirm_subscription", "confirm_subscription");
  return c;
}

/** The value a plot shows: data-latest or data-peak of `#chart-<id>`. */
async function plotted(page: Page, id: string, attr: "latest" | "peak"): Promise<number> {
  return Number(await page.getAttribute(`#chart-${id}`, `data-${attr}`));
}

for (const runtime of runtimes) {
  describe.if(enabled)(`[${runtime}] status page`, () => {
    let browser: Browser;
    let server: ServerProcess | undefined;
    let clients: RawClient[] = [];

    beforeAll(async () => {
      browser = await chromium.launch({
        executablePath: chromiumPath(),
        args: ["--no-sandbox", "--headless=new"],
      });
      mkdirSync(ARTIFACTS, { recursive: true });
    });
    afterAll(async () => {
      await browser?.close();
    });
    afterEach(async () => {
      for (const c of clients) c.close();
      clients = [];
      await server?.stop();
      server = undefined;
    });

    it("asks for the key derived from --secret and plots the traffic (screenshot kept)", async () => {
      server = await startServer(runtime, {
        args: ["--norpc", "--noauth", "--public_streams", `--secret=${SECRET}`, "--status_path=/status"],
      });
      await server.waitForOutput(/Serve the status page at \S+\/status \(key required\)/);
      const url = server.url;
      // 401 without the key, with a wrong one, with the secret itself; 200 with the key.
      assert.equal((await fetch(`${url}/status`)).status, 401);
      assert.equal((await fetch(`${url}/status?key=wrong`)).status, 401);
      assert.equal((await fetch(`${url}/status?key=${SECRET}`)).status, 401);
      assert.equal(
        (await fetch(`${url}/status/data`, { headers: { authorization: "Bearer x" } })).status,
        401,
      );
      const page200 = await fetch(`${url}/status?key=${STATUS_KEY}`);
      assert.equal(page200.status, 200);
      assert.match(await page200.text(), /<title>anycable-ts status<\/title>/);
      const data = await fetch(`${url}/status/data`, { headers: { authorization: `Bearer ${STATUS_KEY}` } });
      assert.equal(data.status, 200);
      // no "try it" publishing without public mode
      assert.equal(
        (await fetch(`${url}/status/publish?key=${STATUS_KEY}`, { method: "POST", body: "{}" })).status,
        404,
      );

      // Traffic: three subscribers, broadcasts every 100 ms until the page has plotted them.
      for (let i = 0; i < 3; i++) clients.push(await subscriber(server));
      let sent = 0;
      let publishing = true;
      const loop = (async () => {
        while (publishing) {
          const res = await publish(
            `${url}/_broadcast`,
            { stream: STREAM, data: JSON.stringify({ n: ++sent }) },
            BROADCAST_KEY,
          );
          assert.equal(res.status, 201);
          await new Promise((r) => setTimeout(r, 100));
        }
      })();
      try {
        await clients[0]!.next((m) => m.identifier === ID && "message" in m, "a broadcast at a subscriber");
        const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
        const errors: string[] = [];
        page.on("pageerror", (e) => errors.push(String(e)));
        const res = await page.goto(`${url}/status?key=${STATUS_KEY}`);
        assert.equal(res?.status(), 200);
        await page.waitForFunction(
          () => {
            const v = (id: string, a: string) =>
              Number(document.getElementById(`chart-${id}`)?.dataset[a] ?? 0);
            return (
              v("clients", "latest") >= 3 &&
              v("streams", "latest") >= 1 &&
              v("broadcasts", "latest") > 0 &&
              v("delivered", "latest") > 0 &&
              v("mem", "latest") > 0 &&
              Number(document.body.dataset.samples ?? 0) >= 5
            );
          },
          undefined,
          { timeout: 30_000, polling: 200 },
        );
        expect(await plotted(page, "clients", "latest")).toBe(3);
        expect(await plotted(page, "streams", "latest")).toBe(1);
        expect(await plotted(page, "broadcasts", "peak")).toBeGreaterThan(0);
        // each broadcast reaches three clients
        expect(await plotted(page, "delivered", "peak")).toBeGreaterThanOrEqual(
          await plotted(page, "broadcasts", "peak"),
        );
        expect(await plotted(page, "mem", "latest")).toBeGreaterThan(10 * 1024 * 1024);
        expect(await plotted(page, "rpc", "peak")).toBe(0);
        // the plots are drawn: a polyline with one point per sample
        const points = await page.getAttribute("#chart-clients polyline", "points");
        expect((points ?? "").trim().split(" ").length).toBeGreaterThanOrEqual(5);
        // keyed mode has no "try it" panel
        expect(await page.locator("#tryit").count()).toBe(0);
        const shot = join(ARTIFACTS, `status-page-${runtime}.png`);
        await page.screenshot({ path: shot, fullPage: true });
        console.log(`status page screenshot: ${shot}`);
        expect(errors).toEqual([]);
        await page.close();
      } finally {
        publishing = false;
        await loop;
      }
    }, 60_000);

    it("in public mode, the try-it panel subscribes and publishes, and the message arrives", async () => {
      server = await startServer(runtime, { args: ["--public", "--norpc", "--status_path=/status"] });
      await server.waitForOutput(/Serve the status page at \S+\/status \(public, with the try-it panel\)/);
      // open: no key needed
      assert.equal((await fetch(`${server.url}/status`)).status, 200);
      // a WebSocket client of the test's own on the panel's stream sees the page's publication too
      const stream = "try-it-e2e";
      const watcher = await connect(server.wsUrl);
      clients.push(watcher);
      await watcher.next((m) => m.type === "welcome", "welcome");
      const watchId = JSON.stringify({ channel: "$pubsub", stream_name: stream });
      watcher.send({ command: "subscribe", identifier: watchId });
      await watcher.next((m) => m.type === "confirm_subscription", "confirm_subscription");

      const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
      const errors: string[] = [];
      page.on("pageerror", (e) => errors.push(String(e)));
      await page.goto(`${server.url}/status`);
      await page.fill("#stream", stream);
      await page.click("#subscribe");
      await page.waitForSelector('#tryit[data-state="subscribed"]', { timeout: 15_000 });
      const text = `hello from ${runtime}`;
      await page.fill("#message", text);
      await page.click("#publish");
      await page.waitForSelector('#tryit[data-received="1"]', { timeout: 15_000 });
      const item = page.locator("#received li").first();
      expect(await item.getAttribute("data-text")).toBe(text);
      const rtt = Number(await item.getAttribute("data-rtt"));
      expect(Number.isFinite(rtt) && rtt >= 0 && rtt < 15_000).toBe(true);
      expect(await item.textContent()).toContain("round-trip");
      const seen = await watcher.next(
        (m) => m.identifier === watchId && "message" in m,
        "the page's publication",
      );
      expect((seen.message as { text: string }).text).toBe(text);
      // the page's own connection shows on its plot
      await page.waitForFunction(
        () => Number(document.getElementById("chart-clients")?.dataset.latest) >= 2,
        undefined,
        {
          timeout: 15_000,
          polling: 200,
        },
      );
      const shot = join(ARTIFACTS, `status-page-public-${runtime}.png`);
      await page.screenshot({ path: shot, fullPage: true });
      console.log(`status page screenshot: ${shot}`);
      expect(errors).toEqual([]);
      await page.close();
    }, 60_000);
  });
}
