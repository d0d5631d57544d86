// Option rows: Metrics and their sinks.
import type { Config, OptionSpec, OptionValue } from "../config/schema.ts";

/** --statsd_tags_format: go-statsd's TagFormatDatadog, TagFormatInfluxDB, TagFormatGraphite. */
export const TAGS_FORMATS = ["datadog", "influxdb", "graphite"] as const;
export type TagsFormat = (typeof TAGS_FORMATS)[number];

export const METRICS_OPTIONS = [
  {
    name: "metrics_log",
    key: "metrics_log",
    type: "bool",
    default: false,
    env: ["ANYCABLE_METRICS_LOG"],
    toml: "metrics.log",
    category: "METRICS:",
    description: "Write metrics to the log (info level)",
    hidden: false,
    deprecated: null,
    served: true,
  },
  {
    name: "metrics_rotate_interval",
    key: "metrics_rotate_interval",
    type: "int",
    default: 15,
    min: 0,
    env: ["ANYCABLE_METRICS_ROTATE_INTERVAL"],
    toml: "metrics.rotate_interval",
    category: "METRICS:",
    description: "How often metrics are flushed to their writers such as the log or StatsD (seconds)",
    hidden: false,
    deprecated: null,
    served: true,
  },
  {
    name: "metrics_log_interval",
    key: "metrics_log_interval",
    type: "int",
    default: 0,
    env: ["ANYCABLE_METRICS_LOG_INTERVAL"],
    toml: "metrics.LogInterval",
    category: "METRICS:",
    description: "[Deprecated] Old name of metrics_rotate_interval (seconds)",
    hidden: true,
    deprecated: "metrics_rotate_interval",
    served: true,
  },
  {
    name: "metrics_log_filter",
    key: "metrics_log_filter",
    type: "list",
    default: [],
    env: ["ANYCABLE_METRICS_LOG_FILTER"],
    toml: "metrics.log_filter",
    category: "METRICS:",
    description: "Comma-separated metric names to include in the log (all when empty)",
    hidden: false,
    deprecated: null,
    served: true,
  },
  {
    name: "metrics_log_formatter",
    key: "metrics_log_formatter",
    type: "string",
    default: "",
    env: ["ANYCABLE_METRICS_LOG_FORMATTER"],
    toml: "metrics.LogFormatter",
    category: "METRICS:",
    description: "Path to a custom Ruby metrics formatter script (macOS and Linux only)",
    hidden: true,
    deprecated: null,
    served: false,
  },
  {
    name: "metrics_http",
    key: "metrics_http",
    type: "string",
    default: "",
    env: ["ANYCABLE_METRICS_HTTP"],
    toml: "metrics.http_path",
    category: "METRICS:",
    description: "Serve Prometheus metrics over HTTP at this path",
    hidden: false,
    deprecated: null,
    served: true,
  },
  {
    name: "metrics_host",
    key: "metrics_host",
    type: "string",
    default: "",
    env: ["ANYCABLE_METRICS_HOST"],
    toml: "metrics.host",
    category: "METRICS:",
    description: "Host for a separate metrics HTTP server",
    hidden: false,
    deprecated: null,
    served: true,
  },
  {
    name: "metrics_port",
    key: "metrics_port",
    type: "int",
    default: 0,
    env: ["ANYCABLE_METRICS_PORT"],
    toml: "metrics.port",
    category: "METRICS:",
    description: "Port of the metrics endpoint (0 means the main server port)",
    hidden: false,
    deprecated: null,
    served: true,
    min: 0,
    max: 65535,
  },
  {
    name: "metrics_tags",
    key: "metrics_tags",
    type: "list",
    default: [],
    env: ["ANYCABLE_METRICS_TAGS"],
    toml: "metrics.tags",
    category: "METRICS:",
    description: "Comma-separated key:value tags added to every metric",
    hidden: false,
    deprecated: null,
    served: true,
    check: tagsProblem,
  },
  {
    name: "stats_refresh_interval",
    key: "stats_refresh_interval",
    type: "int",
    default: 5,
    min: 0,
    env: ["ANYCABLE_STATS_REFRESH_INTERVAL"],
    toml: "app.stats_refresh_interval",
    category: "METRICS:",
    description: "How often server-wide stats are recomputed (seconds)",
    hidden: false,
    deprecated: null,
    served: true,
  },
  {
    name: "memory_metrics",
    key: "memory_metrics",
    type: "bool",
    default: false,
    env: ["ANYCABLE_MEMORY_METRICS"],
    toml: null,
    category: "METRICS:",
    description:
      "Report heap gauges too (heap_sys_bytes, heap_alloc_total, heap_idle_bytes); anycable-go reads only the env var",
    hidden: false,
    deprecated: null,
    served: true,
    extension: true,
  },
  {
    name: "statsd_host",
    key: "statsd_host",
    type: "string",
    default: "",
    env: ["ANYCABLE_STATSD_HOST"],
    toml: "metrics.statsd.host",
    category: "STATSD:",
    description: "StatsD server (host:port) to send metrics to",
    hidden: false,
    deprecated: null,
    served: true,
    check: (v) => (v === "" ? null : typeof v === "string" ? (parseHostPort(v).problem ?? null) : null),
  },
  {
    name: "statsd_prefix",
    key: "statsd_prefix",
    type: "string",
    default: "anycable_go.",
    env: ["ANYCABLE_STATSD_PREFIX"],
    toml: "metrics.statsd.prefix",
    category: "STATSD:",
    description: "Prefix added to StatsD metric names",
    hidden: false,
    deprecated: null,
    served: true,
  },
  {
    name: "statsd_max_packet_size",
    key: "statsd_max_packet_size",
    type: "int",
    default: 1400,
    env: ["ANYCABLE_STATSD_MAX_PACKET_SIZE"],
    toml: "metrics.statsd.max_packet_size",
    category: "STATSD:",
    description: "Largest UDP packet the StatsD client sends (bytes)",
    hidden: true,
    deprecated: null,
    served: true,
  },
  {
    name: "statsd_tags_format",
    key: "statsd_tags_format",
    type: "string",
    default: "datadog",
    env: ["ANYCABLE_STATSD_TAGS_FORMAT"],
    toml: "metrics.statsd.tags_format",
    category: "STATSD:",
    description: "Tag syntax for StatsD (datadog, influxdb, graphite)",
    hidden: false,
    deprecated: null,
    served: true,
    choices: TAGS_FORMATS,
  },
] as const satisfies readonly OptionSpec[];

/**
 * Characters that would break a metric line in one of the sinks (Prometheus label syntax, the
 * StatsD tag separators of the three formats, logfmt): a tag containing one is refused at start.
 */
const TAG_UNSAFE = /[\s"\\,:|#=;{}]/;

/** `--metrics_tags` items are "key:value" (anycable-go splits on ":" and takes the second part). */
function tagsProblem(value: OptionValue): string | null {
  if (!Array.isArray(value)) return null;
  for (const item of value as readonly string[]) {
    const at = item.indexOf(":");
    if (at < 0) return "expected comma-separated key:value pairs";
    const [key, val] = [item.slice(0, at), item.slice(at + 1)];
    if (key === "") return `tag "${item}" has an empty name`;
    if (TAG_UNSAFE.test(key) || TAG_UNSAFE.test(val)) {
      return `tag "${item}": names and values cannot contain whitespace or any of " \\ , : | # = ; { }`;
    }
  }
  return null;
}

/** "host:port" or "[v6]:port", as Go's net.Dial takes it. */
export function parseHostPort(
  s: string,
): { host: string; port: number; problem?: undefined } | { problem: string } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d+)$/.exec(s);
  if (!m) return { problem: `expected host:port, got "${s}"` };
  const host = m[1] ?? m[2] ?? "";
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return { problem: `port ${m[3]} is out of range 1-65535` };
  // Go dials "localhost" for an empty host
  return { host: host === "" ? "localhost" : host, port };
}

export interface StatsdSettings {
  readonly address: string;
  readonly host: string;
  readonly port: number;
  readonly prefix: string;
  readonly maxPacketSize: number;
  readonly tagsFormat: TagsFormat;
}

export interface Options {
  /** Prometheus path ("" = not served). */
  path: string;
  /** Own listener host when it differs from the server's ("" = the server's). */
  host: string;
  port: number;
  /** --metrics_tags */
  tags: Readonly<Record<string, string>>;
  /** --metrics_log; its filter (empty: every metric). */
  log: boolean;
  logFilter: readonly string[];
  /** How often the push sinks (log, StatsD) are written, seconds (0 means anycable-go's 15). */
  rotateIntervalSec: number;
  /** undefined without --statsd_host */
  statsd: StatsdSettings | undefined;
  /** --stats_refresh_interval (seconds; 0: the process gauges are not sampled). */
  statsRefreshSec: number;
  /** ANYCABLE_MEMORY_METRICS=1 */
  memoryMetrics: boolean;
}

export function fromConfig(c: Config): Options {
  const hp = c.statsd_host === "" ? undefined : parseHostPort(c.statsd_host);
  return {
    path: c.metrics_http,
    host: c.metrics_host,
    port: c.derived.metricsPort,
    tags: c.derived.metricsTags,
    log: c.metrics_log,
    logFilter: c.metrics_log_filter,
    rotateIntervalSec: c.derived.metricsRotateInterval > 0 ? c.derived.metricsRotateInterval : 15,
    statsd:
      hp && hp.problem === undefined
        ? {
            address: c.statsd_host,
            host: hp.host,
            port: hp.port,
            prefix: c.statsd_prefix,
            maxPacketSize: c.statsd_max_packet_size,
            tagsFormat: c.statsd_tags_format as TagsFormat,
          }
        : undefined,
    statsRefreshSec: c.stats_refresh_interval,
    memoryMetrics: c.memory_metrics,
  };
}
