// @durable-streams/server-conformance-tests against anycable-ts's Durable Streams read API, under
// vitest (the suite is written for it). The server runs under DS_CONFORMANCE_RUNTIME (bun or deno);
// the suite talks to the write adapter (ds_adapter.ts), which turns its creates and appends into
// broadcasts and forwards every read to the server. vitest.config.ts selects the read-side tests.
import { runConformanceTests } from "@durable-streams/server-conformance-tests";
import { afterAll, beforeAll } from "vitest";
import { type Adapter, startAdapter } from "./ds_adapter.ts";
import { BROADCAST_KEY, DS_PATH, type DsServer, POLL_INTERVAL_S, startDsServer } from "./ds_server.ts";

const runtime = process.env.DS_CONFORMANCE_RUNTIME ?? "bun";
const config = { baseUrl: "", longPollTimeoutMs: POLL_INTERVAL_S * 1000 + 2_000 };
let server: DsServer | undefined;
let adapter: Adapter | undefined;

beforeAll(async () => {
  server = await startDsServer(runtime);
  adapter = await startAdapter({ upstream: server.url, dsPath: DS_PATH, broadcastKey: BROADCAST_KEY });
  config.baseUrl = adapter.url;
  console.log(
    `ds-conformance: anycable-ts under ${runtime} at ${server.url}${DS_PATH}, adapter ${adapter.url}`,
  );
}, 60_000);

afterAll(async () => {
  console.log(`ds-conformance: ${adapter?.appends ?? 0} appends published through /_broadcast`);
  await adapter?.close();
  await server?.stop();
});

runConformanceTests(config);
