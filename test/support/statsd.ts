// A StatsD server for tests: a UDP listener (node:dgram) that keeps every packet, and a parser of
// the line formats anycable-go's client (smira/go-statsd) writes in each tag style.
import assert from "node:assert/strict";
import { createSocket, type Socket } from "node:dgram";

export type StatsdTagsFormat = "datadog" | "influxdb" | "graphite";

export interface StatsdReading {
  name: string;
  type: "counter" | "gauge";
  value: number;
  tags: Record<string, string>;
}

export interface StatsdListener {
  readonly port: number;
  /** Every packet received, in arrival order. */
  readonly packets: string[];
  close(): Promise<void>;
}

export async function listenStatsd(): Promise<StatsdListener> {
  const socket: Socket = createSocket("udp4");
  const packets: string[] = [];
  socket.on("message", (m) => packets.push(m.toString("utf8")));
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", () => resolve()));
  return {
    port: socket.address().port,
    packets,
    close: () => new Promise((resolve) => socket.close(() => resolve())),
  };
}

/** Parses one line of the given tag format (asserting its shape and prefix) into a reading. */
export function parseStatsdLine(line: string, format: StatsdTagsFormat, prefix: string): StatsdReading {
  assert.ok(line.startsWith(prefix), `${JSON.stringify(line)} has the prefix ${prefix}`);
  const rest = line.slice(prefix.length);
  let head: string;
  let value: string;
  let type: string;
  let tagText = "";
  if (format === "datadog") {
    const m = /^([^:|#,;]+):(-?\d+)\|(c|g)(?:\|#(.+))?$/.exec(rest);
    assert.ok(m, `a datadog line: ${line}`);
    [, head, value, type] = m as unknown as [string, string, string, string];
    tagText = m[4] ?? "";
  } else {
    const m = /^([^:|#]+):(-?\d+)\|(c|g)$/.exec(rest);
    assert.ok(m, `an ${format} line: ${line}`);
    [, head, value, type] = m as unknown as [string, string, string, string];
  }
  const sep = format === "graphite" ? ";" : ",";
  const kv = format === "datadog" ? ":" : "=";
  let name = head;
  if (format !== "datadog") {
    const parts = head.split(sep);
    name = parts[0]!;
    tagText = parts.slice(1).join(sep);
  }
  const tags: Record<string, string> = {};
  if (tagText !== "") {
    for (const pair of tagText.split(sep)) {
      const at = pair.indexOf(kv);
      assert.ok(at > 0, `a tag: ${pair} in ${line}`);
      tags[pair.slice(0, at)] = pair.slice(at + 1);
    }
  }
  return { name, type: type === "c" ? "counter" : "gauge", value: Number(value), tags };
}

/** Every reading in the packets, in order. */
export function parseStatsdPackets(
  packets: readonly string[],
  format: StatsdTagsFormat,
  prefix: string,
): StatsdReading[] {
  return packets.flatMap((p) => p.split("\n")).map((l) => parseStatsdLine(l, format, prefix));
}
