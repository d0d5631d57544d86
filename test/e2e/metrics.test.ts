// Metrics end to end, per runtime: after known traffic (connections, a rejected connection, a
// broadcast, RPC calls through the real @anycable/serverless-js HTTP backend), a UDP listener
// receives the StatsD lines in each tag format with the prefix, tags and values expected; the
// metrics log prints its lines every rotate interval; Prometheus shows the totals (and a
// slow-client disconnect); a StatsD host that cannot be resolved is not fatal; malformed tags stop
// the start with one line.

import { afterAll, afterEach, beforeAll, describe, it } from "bun:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { type HttpBackend, startHttpBackend } from "../support/http_backend.ts";
import { freePort } from "../support/ports.ts";
import { metric, publish } from "../support/publish.ts";
import { maskedTextFrame, rawUpgrade } from "../support/raw_ws.ts";
import { commandFor, e2eRuntimes, type ServerProcess, startServer } from "../support/server.ts";
import {
  listenStatsd,
  parseStatsdPackets,
  type StatsdListener,
  type StatsdReading,
  type StatsdTagsFormat,
} from "../support/statsd.ts";
import { waitFor } from "../support/wait.ts";
import { connect, type RawClient } from "../support/ws_client.ts";

const runtimes = e2eRuntimes(["bun", "deno"]);
const CHAT = JSON.stringify({ channel: "ChatChannel", room: "1" });

/** What `traffic` leaves behind, as the server must count it. */
const EXPECTED_COUNTERS: Record<string, number> = {
  // Connect x3 (ann, bob, the rejected one), subscribe x2, perform x1
  rpc_call_total: 6,
  failed_auths_total: 1,
  // two subscribes and one perform
  client_msg_total: 3,
  publications_total: 1,
  broadcast_msg_total: 1,
  rpc_error_total: 0,
  failed_client_msg_total: 0,
};
const EXPECTED_GAUGES: Record<string, number> = {
  clients_num: 2,
  clients_uniq_num: 2,
  broadcast_streams_num: 1,
  rpc_pending_num: 0,
};

interface Traffic {
  clients: RawClient[];
  /** Bytes of the frames the clients sent. */
  bytesSent: number;
  close(): void;
}

/** Two users subscribe to a chat, one broadcast reaches both, one performs; one is rejected. */
async function traffic(server: ServerProcess): Promise<Traffic> {
  const clients: RawClient[] = [];
  let bytesSent = 0;
  const send = (c: RawClient, obj: unknown) => {
    const text = JSON.stringify(obj);
    bytesSent += Buffer.byteLength(text);
    c.sendRaw(text);
  };
  for (const user of ["ann", "bob"]) {
    const c = await connect(`${server.wsUrl}?user=${user}`);
    await c.next((m) => m.type === "welcome", `${user} welcomed`);
    send(c, { command: "subscribe", identifier: CHAT });
    await c.next((m) => m.type === "confirm_subscription", `${user} subscribed`);
    clients.push(c);
  }
  const rejected = await connect(`${server.wsUrl}?reject=1`);
  await rejected.next((m) => m.type === "disconnect", "rejected connection");
  await rejected.waitClosed();
  const res = await publish(`${server.url}/_broadcast`, { stream: "chat_1", data: JSON.stringify({ n: 1 }) });
  assert.equal(res.status, 201);
  for (const c of clients) await c.next((m) => (m.message as { n?: number })?.n === 1, "the broadcast");
  send(clients[0]!, {
    command: "message",
    identifier: CHAT,
    data: JSON.stringify({ action: "echo", text: "hi" }),
  });
  await clients[0]!.next((m) => (m.message as { echo?: string })?.echo === "hi", "the echo");
  return {
    clients,
    bytesSent,
    close: () => {
      for (const c of clients) c.close();
    },
  };
}

/** Counters summed over the intervals (each StatsD |c is one interval's growth), last gauges. */
function totals(readings: StatsdReading[]): { counters: Map<string, number>; gauges: Map<string, number> } {
  const counters = new Map<string, number>();
  const gauges = new Map<string, number>();
  for (const r of readings) {
    if (r.type === "counter") counters.set(r.name, (counters.get(r.name) ?? 0) + r.value);
    else gauges.set(r.name, r.value);
  }
  return { counters, gauges };
}

for (const runtime of runtimes) {
  describe(`[${runtime}] metrics`, () => {
    let backend: HttpBackend;
    let server: ServerProcess | undefined;
    let statsd: StatsdListener | undefined;
    let load: Traffic | undefined;

    beforeAll(async () => {
      backend = await startHttpBackend();
    });
    afterAll(async () => {
      await backend?.stop();
    });
    afterEach(async () => {
      load?.close();
      load = undefined;
      await server?.stop();
      server = undefined;
      await statsd?.close();
      statsd = undefined;
    });

    async function start(args: string[]): Promise<ServerProcess> {
      const port = await freePort();
      server = await startServer(runtime, {
        port,
        args: [
          `--rpc_host=${backend.url}`,
          "--broadcast_adapter=http",
          `--http_broadcast_port=${port}`,
          "--metrics_http=/metrics",
          // no pings in the counts
          "--ping_interval=600",
          ...args,
        ],
      });
      return server;
    }

    const formats: Array<[StatsdTagsFormat, string, number]> = [
      ["datadog", "anycable_go.", 1400],
      ["influxdb", "acts.cable.", 1400],
      // small packets: each interval spans several
      ["graphite", "anycable_go.", 300],
    ];
    for (const [format, prefix, maxPacket] of formats) {
      it(`sends StatsD lines (${format} tags, prefix ${prefix}) with the traffic's values`, async () => {
        statsd = await listenStatsd();
        const s = await start([
          `--statsd_host=127.0.0.1:${statsd.port}`,
          `--statsd_tags_format=${format}`,
          `--statsd_max_packet_size=${maxPacket}`,
          "--metrics_rotate_interval=1",
          `--metrics_tags=env:e2e,runtime:${runtime}`,
          ...(prefix === "anycable_go." ? [] : [`--statsd_prefix=${prefix}`]),
        ]);
        assert.match(
          s.output(),
          new RegExp(
            `INF Send statsd metrics to 127\\.0\\.0\\.1:${statsd.port} with every 1s \\(prefix=${prefix.replace(/\./g, "\\.")}, tags=map\\[env:e2e runtime:${runtime}\\], style=${format}\\)`,
          ),
        );
        load = await traffic(s);
        const listener = statsd;
        const got = await waitFor(
          () => {
            const t = totals(parseStatsdPackets(listener.packets, format, prefix));
            const ok =
              Object.entries(EXPECTED_COUNTERS).every(([n, v]) => t.counters.get(n) === v) &&
              Object.entries(EXPECTED_GAUGES).every(([n, v]) => t.gauges.get(n) === v);
            return ok ? t : undefined;
          },
          `StatsD totals ${JSON.stringify(EXPECTED_COUNTERS)} ${JSON.stringify(EXPECTED_GAUGES)}`,
          15_000,
          100,
        ).catch((err) => {
          const t = totals(parseStatsdPackets(listener.packets, format, prefix));
          throw new Error(`${err.message}\ngot ${JSON.stringify([...t.counters, ...t.gauges])}`);
        });
        // every line of every packet carries the tags; packets stay under the maximum size
        const readings = parseStatsdPackets(listener.packets, format, prefix);
        for (const r of readings) assert.deepEqual(r.tags, { env: "e2e", runtime }, r.name);
        for (const p of listener.packets)
          assert.ok(Buffer.byteLength(p) < maxPacket, `${Buffer.byteLength(p)} bytes`);
        if (maxPacket < 1400) {
          // an interval's ~40 lines of ~50 bytes take several 300-byte packets
          const intervals = readings.filter((r) => r.name === "clients_num").length;
          assert.ok(
            listener.packets.length >= 3 * intervals,
            `${listener.packets.length} packets, ${intervals} intervals`,
          );
        }
        // each interval sends every counter and gauge the server registers
        for (const name of [
          "server_msg_total",
          "data_sent_total",
          "rpc_timeout_total",
          "disconnect_queue_size",
          "mem_sys_bytes",
        ]) {
          assert.ok(got.counters.has(name) || got.gauges.has(name), name);
        }
        assert.ok((got.gauges.get("mem_sys_bytes") ?? 0) > 1024 * 1024, "an RSS");
        // the intervals add up to what Prometheus says
        assert.equal(got.counters.get("rpc_call_total"), await metric(`${s.url}/metrics`, "rpc_call_total"));
        assert.equal(got.counters.get("data_rcvd_total"), load.bytesSent);
      });
    }

    it("prints the metrics log every rotate interval, filtered, and warns once about unknown names", async () => {
      const s = await start([
        "--metrics_log",
        "--metrics_rotate_interval=1",
        "--metrics_log_filter=clients_num,rpc_call_total,broadcast_msg_total,no_such_metric",
        "--metrics_tags=env:e2e",
      ]);
      assert.match(
        s.output(),
        /INF log metrics interval=1 fields=clients_num,rpc_call_total,broadcast_msg_total,no_such_metric nodeid=\S+ context=metrics\n/,
      );
      load = await traffic(s);
      const lineRe =
        /^\S+ \S+ INF {2}broadcast_msg_total=(\d+) clients_num=(\d+) rpc_call_total=(\d+) tags=env:e2e nodeid=\S+ context=metrics$/gm;
      const sums = await waitFor(
        () => {
          let broadcasts = 0;
          let calls = 0;
          let clients = -1;
          for (const m of s.output().matchAll(lineRe)) {
            broadcasts += Number(m[1]);
            clients = Number(m[2]);
            calls += Number(m[3]);
          }
          return broadcasts === 1 && calls === 6 && clients === 2 ? { broadcasts, calls } : undefined;
        },
        "metrics log lines adding up to the traffic",
        15_000,
        100,
      ).catch((err) => {
        throw new Error(`${err.message}\n${s.output()}`);
      });
      assert.equal(sums.calls, 6);
      const warns =
        s.output().match(/WRN metrics_log_filter names metrics this server does not report: [^\n]*/g) ?? [];
      assert.equal(warns.length, 1, s.output());
      assert.match(warns[0]!, /no_such_metric \(unknown metric\)/);
      // one line per interval, no metric outside the filter
      assert.doesNotMatch(s.output(), /INF {2}.*server_msg_total=/);
    });

    it("serves the traffic's totals, the tags and a slow-client disconnect over Prometheus", async () => {
      const s = await start(["--metrics_tags=env:e2e,node-id:n1", "--ws_max_pending_size=65536"]);
      load = await traffic(s);
      const url = `${s.url}/metrics`;
      await waitFor(async () => (await metric(url, "clients_num")) === 2, "two clients");
      for (const [name, value] of [
        ...Object.entries(EXPECTED_COUNTERS),
        ...Object.entries(EXPECTED_GAUGES),
      ]) {
        assert.equal(await metric(url, name), value, name);
      }
      assert.equal(await metric(url, "data_rcvd_total"), load.bytesSent);
      // welcome, confirm and the broadcast to each, the echo to one, the rejected one's disconnect
      assert.equal(await metric(url, "server_msg_total"), 8);
      const body = await (await fetch(url)).text();
      assert.match(body, /^anycable_go_rpc_call_total\{env="e2e", node_id="n1"\} 6$/m);
      assert.match(body, /^# TYPE anycable_go_mem_sys_bytes gauge$/m);

      // a client that stops reading is disconnected as too slow, and counted
      const raw = await rawUpgrade(s.port, "/cable?user=slow", "actioncable-v1-json");
      await waitFor(() => raw.rest.includes("welcome"), "slow client welcomed");
      raw.socket.write(maskedTextFrame(JSON.stringify({ command: "subscribe", identifier: CHAT })));
      await waitFor(() => raw.rest.includes("confirm_subscription"), "slow client subscribed");
      raw.socket.pause();
      const chunk = JSON.stringify("y".repeat(64 * 1024));
      let sent = 0;
      await waitFor(
        async () => {
          if (sent < 400) {
            await publish(`${s.url}/_broadcast`, { stream: "chat_1", data: chunk });
            sent++;
          }
          return (await metric(url, "disconnected_slow_clients_total")) === 1;
        },
        "slow client disconnected",
        60_000,
        1,
      );
      raw.socket.destroy();
      assert.equal(await metric(url, "publications_total"), 1 + sent);
    });

    it("keeps running when the StatsD host cannot be resolved, logging the failure once", async () => {
      const s = await start(["--statsd_host=statsd.invalid:8125", "--metrics_rotate_interval=1"]);
      await s.waitForOutput(
        /ERR failed to send StatsD metrics to statsd\.invalid:8125 [^\n]*packets=1/,
        15_000,
      );
      const c = await connect(`${s.wsUrl}?user=ann`);
      await c.next((m) => m.type === "welcome", "still serving");
      c.close();
      assert.equal((await fetch(`${s.url}/health`)).status, 200);
      // each interval fails again: counted (the shutdown says how many), not logged again
      await s.stop("SIGTERM");
      const out = s.output();
      assert.equal(out.split("failed to send StatsD metrics").length - 1, 1, out);
      assert.match(out, /WRN some StatsD metrics were not sent failed_packets=\d+ sent_packets=0/);
    });

    it("refuses malformed metrics tags and StatsD hosts with one line", () => {
      const [cmd, base] = commandFor(runtime);
      for (const [arg, what] of [
        ["--metrics_tags=env", /metrics_tags.*key:value/],
        ["--metrics_tags=env:a|b", /metrics_tags.*cannot contain/],
        ["--statsd_host=localhost", /statsd_host.*host:port/],
      ] as const) {
        const r = spawnSync(cmd, [...base, arg], { encoding: "utf8", timeout: 20_000 });
        assert.equal(r.status, 1, `${arg}: ${r.stdout}${r.stderr}`);
        const lines = `${r.stdout}${r.stderr}`.trim().split("\n");
        assert.equal(lines.length, 1, lines.join(" | "));
        assert.match(lines[0]!, what);
      }
    });
  });
}
