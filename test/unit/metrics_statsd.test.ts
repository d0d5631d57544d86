// The MetricsSink contract on the StatsD sink in each tag format, read back from a real UDP
// listener; the exact lines of each format (go-statsd's), packet splitting at the maximum size,
// and a StatsD host that cannot be resolved (counted and logged, never thrown).
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { Logger } from "../../src/log/logger.ts";
import type { TagsFormat } from "../../src/metrics/options.ts";
import { parseHostPort } from "../../src/metrics/options.ts";
import type { MetricsSink, MetricsSnapshot } from "../../src/metrics/sink.ts";
import { packLines, StatsdSink, statsdLines } from "../../src/metrics/statsd.ts";
import { listenStatsd, parseStatsdLine, type StatsdListener } from "../support/statsd.ts";
import { waitFor } from "../support/wait.ts";
import { metricsSinkContract, type SinkReading } from "./contracts/metrics_sink_contract.ts";

const PREFIX = "anycable_go.";

async function listen() {
  return listenStatsd();
}

function closeListener(l: StatsdListener): Promise<void> {
  return l.close();
}

function parseLine(line: string, format: TagsFormat): SinkReading {
  return parseStatsdLine(line, format, PREFIX);
}

const silent = () => new Logger("error", "text", {}, { write() {} });

for (const format of ["datadog", "influxdb", "graphite"] as const) {
  metricsSinkContract(
    `statsd (${format})`,
    async () => {
      const l = await listen();
      const sink = new StatsdSink(
        {
          address: `127.0.0.1:${l.port}`,
          host: "127.0.0.1",
          port: l.port,
          prefix: PREFIX,
          maxPacketSize: 1400,
          tagsFormat: format,
          intervalSec: 15,
          tags: {},
        },
        silent(),
      );
      let mark = 0;
      // The packets of the last write are those the sink made after the ones before it.
      const proxy: MetricsSink = {
        name: sink.name,
        start: (fatal) => sink.start(fatal),
        shutdown: (deadline) => sink.shutdown(deadline),
        write(snapshot) {
          mark = sink.packetsWritten;
          sink.write(snapshot);
        },
      };
      return {
        sink: proxy,
        async read() {
          await sink.idle();
          assert.equal(sink.packetsFailed, 0, "no failed packets");
          await waitFor(() => l.packets.length >= sink.packetsSent, "every packet received");
          return l.packets
            .slice(mark)
            .flatMap((p) => p.split("\n"))
            .map((line) => parseLine(line, format));
        },
        close: () => closeListener(l),
      };
    },
    { descriptions: false },
  );
}

const snap = (tags: Record<string, string> = {}): MetricsSnapshot => ({
  counters: [
    { name: "broadcast_msg_total", description: "d", value: 3 },
    { name: "failed_auths_total", description: "d", value: 0 },
  ],
  gauges: [{ name: "clients_num", description: "d", value: 2 }],
  tags,
});

describe("StatsD lines (go-statsd's formats)", () => {
  const tags = { env: "prod", host: "h1" };

  it("datadog: tags after the type, `|#k:v,k:v`", () => {
    assert.deepEqual(statsdLines(snap(tags), PREFIX, "datadog"), [
      "anycable_go.broadcast_msg_total:3|c|#env:prod,host:h1",
      "anycable_go.failed_auths_total:0|c|#env:prod,host:h1",
      "anycable_go.clients_num:2|g|#env:prod,host:h1",
    ]);
  });

  it("influxdb: tags after the name, `,k=v,k=v`", () => {
    assert.deepEqual(statsdLines(snap(tags), PREFIX, "influxdb"), [
      "anycable_go.broadcast_msg_total,env=prod,host=h1:3|c",
      "anycable_go.failed_auths_total,env=prod,host=h1:0|c",
      "anycable_go.clients_num,env=prod,host=h1:2|g",
    ]);
  });

  it("graphite: tags after the name, `;k=v;k=v`", () => {
    assert.deepEqual(statsdLines(snap(tags), PREFIX, "graphite"), [
      "anycable_go.broadcast_msg_total;env=prod;host=h1:3|c",
      "anycable_go.failed_auths_total;env=prod;host=h1:0|c",
      "anycable_go.clients_num;env=prod;host=h1:2|g",
    ]);
  });

  it("without tags every format is the plain line; the prefix is put as given", () => {
    for (const f of ["datadog", "influxdb", "graphite"] as const) {
      assert.deepEqual(statsdLines(snap(), "", f), [
        "broadcast_msg_total:3|c",
        "failed_auths_total:0|c",
        "clients_num:2|g",
      ]);
    }
    assert.equal(statsdLines(snap(), "acme.cable.", "datadog")[2], "acme.cable.clients_num:2|g");
  });
});

describe("StatsD packets", () => {
  const lines = ["a:1|c", "bb:22|c", "ccc:333|g"]; // 5, 7 and 9 bytes

  it("fill a packet while every line plus its newline fits, without the last newline", () => {
    // 6 + 8 = 14 fits in 14: "a:1|c\nbb:22|c" (13 bytes sent); the third starts a new packet
    const text = (max: number) => packLines(lines, max).map((p) => new TextDecoder().decode(p));
    assert.deepEqual(text(14), ["a:1|c\nbb:22|c", "ccc:333|g"]);
    assert.deepEqual(text(13), ["a:1|c", "bb:22|c", "ccc:333|g"]);
    assert.deepEqual(text(24), ["a:1|c\nbb:22|c\nccc:333|g"]);
    assert.deepEqual(text(23), ["a:1|c\nbb:22|c", "ccc:333|g"]);
    for (const max of [14, 24, 1400]) {
      for (const p of packLines(lines, max)) assert.ok(p.byteLength < max, `${p.byteLength} < ${max}`);
    }
  });

  it("send a line longer than the maximum alone", () => {
    const text = packLines(["a:1|c", "x".repeat(50), "b:2|c"], 10).map((p) => new TextDecoder().decode(p));
    assert.deepEqual(text, ["a:1|c", "x".repeat(50), "b:2|c"]);
  });

  it("count bytes, not characters", () => {
    // "é" is 2 bytes: "t:é:1|g" is 8 bytes, 9 with its newline
    const two = ["t:é:1|g", "t:é:2|g"];
    assert.equal(packLines(two, 18).length, 1);
    assert.equal(packLines(two, 17).length, 2);
  });

  it("split a real snapshot over several UDP packets at --statsd_max_packet_size", async () => {
    const l = await listen();
    const sink = new StatsdSink(
      {
        address: `127.0.0.1:${l.port}`,
        host: "127.0.0.1",
        port: l.port,
        prefix: PREFIX,
        maxPacketSize: 100,
        tagsFormat: "datadog",
        intervalSec: 1,
        tags: { env: "test" },
      },
      silent(),
    );
    await sink.start();
    const many: MetricsSnapshot = {
      counters: Array.from({ length: 20 }, (_, i) => ({ name: `m${i}_total`, description: "", value: i })),
      gauges: [],
      tags: { env: "test" },
    };
    sink.write(many);
    await sink.idle();
    await waitFor(() => l.packets.length >= sink.packetsSent, "packets received");
    assert.ok(l.packets.length > 1, `${l.packets.length} packets`);
    for (const p of l.packets) assert.ok(Buffer.byteLength(p) < 100, `${Buffer.byteLength(p)} bytes`);
    const got = l.packets.flatMap((p) => p.split("\n"));
    assert.deepEqual(
      got,
      many.counters.map((c) => `anycable_go.${c.name}:${c.value}|c|#env:test`),
    );
    await sink.shutdown(AbortSignal.timeout(1000));
    await closeListener(l);
  });
});

describe("StatsD server unreachable", () => {
  let lines: string[];
  let logger: Logger;
  before(() => {
    lines = [];
    logger = new Logger("info", "text", {}, { write: (l) => lines.push(l) });
  });

  it("counts and logs packets to an unresolvable host, never throws, and keeps trying", async () => {
    const sink = new StatsdSink(
      {
        address: "statsd.invalid:8125",
        host: "statsd.invalid",
        port: 8125,
        prefix: PREFIX,
        maxPacketSize: 1400,
        tagsFormat: "datadog",
        intervalSec: 15,
        tags: {},
      },
      logger,
    );
    const fatals: Error[] = [];
    await sink.start((e) => fatals.push(e));
    assert.match(
      lines[0]!,
      /INF Send statsd metrics to statsd\.invalid:8125 with every 15s \(prefix=anycable_go\.\)/,
    );
    sink.write(snap());
    await sink.idle();
    sink.write(snap());
    await sink.idle();
    assert.equal(sink.packetsFailed, 2);
    assert.equal(sink.packetsSent, 0);
    const errors = lines.filter((l) =>
      l.includes("ERR failed to send StatsD metrics to statsd.invalid:8125"),
    );
    assert.equal(errors.length, 1, `one line per burst: ${lines.join("\n")}`);
    assert.match(errors[0]!, /error=.*ENOTFOUND|error=.*statsd\.invalid/);
    assert.match(errors[0]!, /packets=1 failed_packets_total=1/);
    assert.deepEqual(fatals, []);
    await sink.shutdown(AbortSignal.timeout(1000));
    assert.match(
      lines.at(-1)!,
      /WRN some StatsD metrics were not sent failed_packets=2 sent_packets=0 service=statsd$/,
    );
    await sink.shutdown(AbortSignal.timeout(1000));
    sink.write(snap()); // after shutdown: ignored
    assert.equal(sink.packetsWritten, 2);
  });

  it("says so when packets get through again", async () => {
    const l = await listen();
    let failNext = true;
    const sink = new StatsdSink(
      {
        address: `127.0.0.1:${l.port}`,
        host: "127.0.0.1",
        port: l.port,
        prefix: PREFIX,
        maxPacketSize: 1400,
        tagsFormat: "datadog",
        intervalSec: 15,
        tags: { env: "prod", dc: "one" },
      },
      logger,
      async (host) => {
        if (failNext) {
          failNext = false;
          throw new Error(`getaddrinfo EAI_AGAIN ${host}`);
        }
        return { address: host, family: 4 };
      },
    );
    lines.length = 0;
    await sink.start();
    assert.match(
      lines[0]!,
      /with every 15s \(prefix=anycable_go\., tags=map\[dc:one env:prod\], style=datadog\)/,
    );
    // the first lookup fails (a DNS hiccup), the next one succeeds
    sink.write(snap());
    await sink.idle();
    assert.ok(
      lines.some((x) => /ERR failed to send StatsD metrics .*EAI_AGAIN/.test(x)),
      lines.join("\n"),
    );
    sink.write(snap());
    await sink.idle();
    await waitFor(() => l.packets.length === 1, "the second interval's packet");
    assert.ok(
      lines.some((x) => /INF StatsD metrics are sent again .*failed_packets=1/.test(x)),
      lines.join("\n"),
    );
    await sink.shutdown(AbortSignal.timeout(1000));
    await closeListener(l);
  });
});

describe("--statsd_host", () => {
  it("is host:port, [v6]:port or :port (Go dials localhost)", () => {
    assert.deepEqual(parseHostPort("localhost:8125"), { host: "localhost", port: 8125 });
    assert.deepEqual(parseHostPort("[::1]:8125"), { host: "::1", port: 8125 });
    assert.deepEqual(parseHostPort(":8125"), { host: "localhost", port: 8125 });
    assert.match(parseHostPort("localhost").problem ?? "", /expected host:port/);
    assert.match(parseHostPort("localhost:0").problem ?? "", /out of range/);
    assert.match(parseHostPort("localhost:99999").problem ?? "", /out of range/);
    assert.match(parseHostPort("::1:8125").problem ?? "", /expected host:port/);
  });
});
