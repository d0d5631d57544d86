// The StatsD sink: every rotate interval, each counter's growth over the interval (`|c`) and each
// gauge's value (`|g`) go over UDP to --statsd_host, in the line format of the client anycable-go
// uses (smira/go-statsd): `<prefix><name>:<value>|c`, tags per --statsd_tags_format, lines joined
// by "\n" into packets of at most --statsd_max_packet_size bytes.
//
// A StatsD server that cannot be resolved or reached is never fatal: the packets are counted as
// failed and logged once per burst, and the next interval tries again (re-resolving the host).
import { createSocket, type Socket } from "node:dgram";
import { lookup } from "node:dns/promises";
import type { Service } from "../app/service.ts";
import { BurstLog } from "../log/burst_log.ts";
import type { Logger } from "../log/logger.ts";
import type { TagsFormat } from "./options.ts";
import type { MetricsSink, MetricsSnapshot } from "./sink.ts";

interface TagStyle {
  /** Tags go after the metric name (influxdb, graphite) or after the type (datadog). */
  readonly placement: "name" | "suffix";
  readonly first: string;
  readonly other: string;
  readonly keyValue: string;
}

/** go-statsd's TagFormatDatadog / TagFormatInfluxDB / TagFormatGraphite. */
const STYLES: Record<TagsFormat, TagStyle> = {
  datadog: { placement: "suffix", first: "|#", other: ",", keyValue: ":" },
  influxdb: { placement: "name", first: ",", other: ",", keyValue: "=" },
  graphite: { placement: "name", first: ";", other: ";", keyValue: "=" },
};

function formatTags(tags: Readonly<Record<string, string>>, style: TagStyle): string {
  const entries = Object.entries(tags);
  if (entries.length === 0) return "";
  return style.first + entries.map(([k, v]) => `${k}${style.keyValue}${v}`).join(style.other);
}

/** One line per counter (its value as given: the interval's growth) and per gauge. */
export function statsdLines(snapshot: MetricsSnapshot, prefix: string, format: TagsFormat): string[] {
  const style = STYLES[format];
  const tags = formatTags(snapshot.tags, style);
  const atName = style.placement === "name" ? tags : "";
  const atEnd = style.placement === "suffix" ? tags : "";
  const lines: string[] = [];
  const int = (v: number) => String(Math.trunc(v));
  for (const c of snapshot.counters) lines.push(`${prefix}${c.name}${atName}:${int(c.value)}|c${atEnd}`);
  for (const g of snapshot.gauges) lines.push(`${prefix}${g.name}${atName}:${int(g.value)}|g${atEnd}`);
  return lines;
}

const encoder = new TextEncoder();

/**
 * Packs lines into packets as go-statsd does: a line is added to the current packet while the
 * packet's lines, each with its "\n", fit in `maxBytes`; the packet is sent without its last
 * "\n". A line too long for any packet travels alone.
 */
export function packLines(lines: readonly string[], maxBytes: number): Uint8Array[] {
  const packets: Uint8Array[] = [];
  let current: string[] = [];
  let size = 0;
  const flush = () => {
    if (current.length > 0) packets.push(encoder.encode(current.join("\n")));
    current = [];
    size = 0;
  };
  for (const line of lines) {
    const bytes = encoder.encode(line).byteLength + 1;
    if (size + bytes > maxBytes) flush();
    current.push(line);
    size += bytes;
  }
  flush();
  return packets;
}

export interface StatsdOptions {
  /** --statsd_host as given (host:port). */
  readonly address: string;
  readonly host: string;
  readonly port: number;
  readonly prefix: string;
  readonly maxPacketSize: number;
  readonly tagsFormat: TagsFormat;
  /** The rotate interval, for the start-up line. */
  readonly intervalSec: number;
  /** Tags the snapshots carry, for the start-up line. */
  readonly tags: Readonly<Record<string, string>>;
}

/** Packets waiting beyond the batch being sent (the server is slow to resolve): more are dropped. */
const MAX_QUEUED_PACKETS = 1000;

export class StatsdSink implements MetricsSink, Service {
  readonly name = "metrics (statsd)";
  private readonly log: Logger;
  private readonly burst: BurstLog;
  private readonly sockets = new Map<4 | 6, Socket>();
  private queue: Uint8Array[][] = [];
  private queued = 0;
  private sending: Promise<void> | undefined;
  private closed = false;
  /** Packets made from the snapshots written so far. */
  packetsWritten = 0;
  /** Packets handed to the OS / packets lost (unresolvable host, send error, queue full). */
  packetsSent = 0;
  packetsFailed = 0;

  /** @param resolve the host lookup (default: the system resolver, once per interval). */
  constructor(
    private readonly opts: StatsdOptions,
    logger: Logger,
    private readonly resolve: (host: string) => Promise<{ address: string; family: number }> = lookup,
  ) {
    this.log = logger.with({ service: "statsd" });
    this.burst = new BurstLog(this.log, {
      recovered: "StatsD metrics are sent again",
      countKey: "failed_packets",
      level: "error",
      windowMs: 60_000,
    });
  }

  /** Never fails: an unreachable server is not fatal. */
  async start(_fatal?: (err: Error) => void): Promise<void> {
    const o = this.opts;
    // fmt's %v of a Go map: map[k1:v1 k2:v2], keys sorted
    const tags = Object.entries(o.tags).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const tagsInfo =
      tags.length > 0
        ? `, tags=map[${tags.map(([k, v]) => `${k}:${v}`).join(" ")}], style=${o.tagsFormat}`
        : "";
    this.log.info(
      `Send statsd metrics to ${o.address} with every ${o.intervalSec}s (prefix=${o.prefix}${tagsInfo})`,
    );
  }

  write(snapshot: MetricsSnapshot): void {
    if (this.closed) return;
    const packets = packLines(
      statsdLines(snapshot, this.opts.prefix, this.opts.tagsFormat),
      this.opts.maxPacketSize,
    );
    this.packetsWritten += packets.length;
    if (this.queued + packets.length > MAX_QUEUED_PACKETS) {
      this.fail(packets.length, new Error("send queue full (the previous intervals are still being sent)"));
      return;
    }
    this.queue.push(packets);
    this.queued += packets.length;
    this.sending ??= this.drain().finally(() => {
      this.sending = undefined;
    });
  }

  /** Resolves once every packet written so far is sent or counted as failed. */
  async idle(): Promise<void> {
    while (this.sending) await this.sending;
  }

  async shutdown(deadline: AbortSignal): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.sending) {
      await Promise.race([
        this.idle(),
        new Promise<void>((resolve) => deadline.addEventListener("abort", () => resolve(), { once: true })),
      ]);
    }
    if (this.packetsFailed > 0) {
      this.log.warn("some StatsD metrics were not sent", {
        failed_packets: this.packetsFailed,
        sent_packets: this.packetsSent,
      });
    }
    for (const s of this.sockets.values()) {
      try {
        s.close();
      } catch {
        // already closed
      }
    }
    this.sockets.clear();
  }

  private async drain(): Promise<void> {
    for (let batch = this.queue.shift(); batch; batch = this.queue.shift()) {
      this.queued -= batch.length;
      await this.sendBatch(batch);
    }
  }

  private async sendBatch(packets: Uint8Array[]): Promise<void> {
    let address: string;
    let family: 4 | 6;
    try {
      const r = await this.resolve(this.opts.host);
      address = r.address;
      family = r.family === 6 ? 6 : 4;
    } catch (err) {
      this.fail(packets.length, err);
      return;
    }
    const socket = this.socket(family);
    // One at a time: Deno's dgram puts concurrent sends on the wire in reverse order.
    const results: Array<Error | null> = [];
    for (const p of packets) {
      results.push(
        await new Promise<Error | null>((resolve) => {
          try {
            socket.send(p, this.opts.port, address, (err) => resolve(err ?? null));
          } catch (err) {
            resolve(err as Error);
          }
        }),
      );
    }
    const errors = results.filter((e): e is Error => e !== null);
    this.packetsSent += packets.length - errors.length;
    if (errors.length > 0) this.fail(errors.length, errors[0]);
    else this.burst.success();
  }

  private socket(family: 4 | 6): Socket {
    let s = this.sockets.get(family);
    if (!s) {
      s = createSocket(family === 6 ? "udp6" : "udp4");
      // Asynchronous socket errors (e.g. ICMP feedback) are logged like failed sends, never thrown.
      s.on("error", (err) => this.fail(0, err));
      this.sockets.set(family, s);
    }
    return s;
  }

  private fail(packets: number, err: unknown): void {
    this.packetsFailed += packets;
    const error = err instanceof Error ? err.message : String(err);
    this.burst.failure(`failed to send StatsD metrics to ${this.opts.address}`, {
      error,
      packets,
      failed_packets_total: this.packetsFailed,
    });
  }
}
