// The MetricsSink contract on the Prometheus sink (reading `.body`), and its exact exposition
// format, which must stay anycable-go's so existing scrapers and dashboards keep working.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { PrometheusSink } from "../../src/metrics/prometheus.ts";
import type { MetricsSnapshot } from "../../src/metrics/sink.ts";
import { metricsSinkContract, type SinkReading } from "./contracts/metrics_sink_contract.ts";

const PREFIX = "anycable_go_";

/** Parses anycable-go's exposition: a HELP and a TYPE line before each sample. */
function parseExposition(body: string): SinkReading[] {
  const readings: SinkReading[] = [];
  const help = new Map<string, string>();
  const type = new Map<string, string>();
  for (const line of body.split("\n")) {
    if (line === "") continue;
    let m = /^# HELP (\S+) (.*)$/.exec(line);
    if (m) {
      help.set(m[1], m[2]);
      continue;
    }
    m = /^# TYPE (\S+) (counter|gauge)$/.exec(line);
    if (m) {
      type.set(m[1], m[2]);
      continue;
    }
    m = /^([a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `not an exposition line: ${JSON.stringify(line)}`);
    const [, full, labels, value] = m;
    assert.ok(full.startsWith(PREFIX), `${full} has the ${PREFIX} prefix`);
    const tags: Record<string, string> = {};
    if (labels !== undefined) {
      for (const pair of labels.split(", ")) {
        const l = /^([a-zA-Z_]\w*)="([^"]*)"$/.exec(pair);
        assert.ok(l, `not a label: ${JSON.stringify(pair)} in ${line}`);
        tags[l[1]] = l[2];
      }
    }
    const t = type.get(full);
    assert.ok(t === "counter" || t === "gauge", `a TYPE line before ${full}`);
    assert.ok(help.has(full), `a HELP line before ${full}`);
    readings.push({
      name: full.slice(PREFIX.length),
      type: t,
      value: Number(value),
      description: help.get(full),
      tags,
    });
  }
  return readings;
}

metricsSinkContract(
  "prometheus",
  async () => {
    const sink = new PrometheusSink();
    return {
      sink,
      async read() {
        return parseExposition(sink.body);
      },
      async close() {},
    };
  },
  { descriptions: true },
);

describe("Prometheus exposition format", () => {
  const snap = (tags: Record<string, string>): MetricsSnapshot => ({
    // Gauges listed first on purpose: counters still come first, as in anycable-go.
    gauges: [{ name: "clients_num", description: "The number of active clients", value: 2 }],
    counters: [
      {
        name: "broadcast_msg_total",
        description: "The total number of messages received through PubSub (for broadcast)",
        value: 3,
      },
    ],
    tags,
  });

  it("is anycable-go's text: blank line, HELP, TYPE, sample; counters before gauges", () => {
    const sink = new PrometheusSink();
    sink.write(snap({ host: "h1" }));
    assert.equal(
      sink.body,
      "\n# HELP anycable_go_broadcast_msg_total The total number of messages received through PubSub (for broadcast)\n" +
        "# TYPE anycable_go_broadcast_msg_total counter\n" +
        'anycable_go_broadcast_msg_total{host="h1"} 3\n' +
        "\n# HELP anycable_go_clients_num The number of active clients\n" +
        "# TYPE anycable_go_clients_num gauge\n" +
        'anycable_go_clients_num{host="h1"} 2\n',
    );
  });

  it('joins several tags with ", " and leaves out the braces without tags', () => {
    const sink = new PrometheusSink();
    sink.write(snap({ env: "prod", host: "h1" }));
    assert.match(sink.body, /^anycable_go_clients_num\{env="prod", host="h1"\} 2$/m);
    sink.write(snap({}));
    assert.match(sink.body, /^anycable_go_broadcast_msg_total 3$/m);
    assert.match(sink.body, /^anycable_go_clients_num 2$/m);
    assert.doesNotMatch(sink.body, /[{}]/);
  });

  it("turns tag names into valid label names (anycable-go writes `node-id` as it is)", () => {
    const sink = new PrometheusSink();
    sink.write(snap({ "node-id": "a1", "dc.zone": "z", "1st": "x" }));
    assert.match(sink.body, /^anycable_go_clients_num\{node_id="a1", dc_zone="z", _1st="x"\} 2$/m);
  });

  it("shows only the last snapshot written", () => {
    const sink = new PrometheusSink();
    sink.write(snap({ host: "old" }));
    sink.write({ counters: [], gauges: [{ name: "clients_num", description: "d", value: 9 }], tags: {} });
    assert.equal(
      sink.body,
      "\n# HELP anycable_go_clients_num d\n# TYPE anycable_go_clients_num gauge\nanycable_go_clients_num 9\n",
    );
  });
});
