// Every metric anycable-go 1.6 registers (its code's names, types and help texts), the ones
// anycable-ts adds, and whether and where anycable-ts serves each. README's metrics table is
// rendered from this list (`bun scripts/metrics-doc.ts --write README.md`, checked by a test), and
// the metrics log filter names the ones it cannot print.
//
// A metric is registered by the part that updates it, and only when that part runs: rows whose
// `served` is a sentence belong to parts anycable-ts does not have (yet); those parts register
// them when they land.

export type MetricType = "counter" | "gauge";

export interface MetricInfo {
  readonly name: string;
  readonly type: MetricType;
  readonly description: string;
  /** true, or why / with which feature anycable-ts serves it. */
  readonly served: true | string;
  /** When it is registered or how anycable-ts computes it, for the README. */
  readonly note?: string;
  /** Not an anycable-go metric. */
  readonly extension?: true;
}

const c = (name: string, description: string, more: Partial<MetricInfo> = {}): MetricInfo => ({
  name,
  type: "counter",
  description,
  served: true,
  ...more,
});
const g = (name: string, description: string, more: Partial<MetricInfo> = {}): MetricInfo => ({
  name,
  type: "gauge",
  description,
  served: true,
  ...more,
});

const MEMORY =
  "with `ANYCABLE_MEMORY_METRICS=1` (or `--memory_metrics`), sampled every `--stats_refresh_interval`";

export const METRICS_CATALOG: readonly MetricInfo[] = [
  // node (anycable-go node/node.go)
  g("clients_num", "The number of active clients"),
  g("clients_uniq_num", "The number of unique clients (with respect to connection identifiers)"),
  g("broadcast_streams_num", "The number of active broadcasting streams"),
  g("disconnect_queue_size", "The size of delayed disconnect", { note: "0 without an RPC backend" }),
  g("goroutines_num", "The number of Go routines", {
    served: "no: a Go runtime figure, JavaScript has no goroutines",
  }),
  g("mem_sys_bytes", "The total bytes of memory obtained from the OS", {
    note: "the process's resident set size, sampled every `--stats_refresh_interval`",
  }),
  g("heap_sys_bytes", "The total bytes of heap memory obtained from the OS", {
    note: `${MEMORY}: the JavaScript heap's size`,
  }),
  g("heap_alloc_total", "The number of allocated heap objects", {
    note: `${MEMORY}: bytes in use on the JavaScript heap (Go's HeapAlloc is bytes too)`,
  }),
  g("heap_idle_bytes", "The total bytes of idle heap memory", {
    note: `${MEMORY}: heap size minus heap in use`,
  }),
  g("stack_sys_bytes", "The total bytes of stack memory obtained from the OS", {
    served: "no: the JavaScript runtimes do not report stack memory",
  }),
  g("heap_released_bytes", "The total bytes of heap memory released", {
    served: "no: the JavaScript runtimes do not report heap returned to the OS",
  }),
  c("failed_auths_total", "The total number of failed authentication attempts"),
  c("client_msg_total", "The total number of received messages from clients"),
  c("disconnected_slow_clients_total", "The total number of disconnected slow clients"),
  c("failed_client_msg_total", "The total number of unrecognized messages received from clients"),
  c("publications_total", "The total number of publications received (from the application)"),
  c("broadcast_msg_total", "The total number of messages received through PubSub (for broadcast)"),
  c("remote_commands_total", "The total number of remote commands received through PubSub"),
  c(
    "failed_broadcast_msg_total",
    "The total number of unrecognized publications received from the application",
  ),
  c("server_msg_total", "The total number of messages sent to clients"),
  c("failed_server_msg_total", "The total number of messages failed to send to clients"),
  c(
    "timeout_server_msg_total",
    "The total number of messages failed to send to clients due to write timeouts",
  ),
  c("data_sent_total", "The total amount of bytes sent to clients"),
  c("data_rcvd_total", "The total amount of bytes received from clients"),
  // rpc (anycable-go rpc/rpc.go), registered when an RPC backend is configured
  c("rpc_call_total", "The total number of RPC calls", { note: "with RPC" }),
  c("rpc_retries_total", "The total number of RPC call retries", { note: "with RPC" }),
  c("rpc_error_total", "The total number of failed RPC calls", { note: "with RPC" }),
  c("rpc_timeout_total", "The total number of RPC call that timed out", {
    note: "with RPC (the docs say `rpc_timeouts_total`; the code registers this name)",
  }),
  c("rpc_canceled_total", "The total number of canceled RPC calls", { note: "with RPC" }),
  g("rpc_pending_num", "The number of pending RPC calls", { note: "with RPC" }),
  g("grpc_active_conn_num", "The number of active HTTP connections used by gRPC", {
    note: "with gRPC RPC",
  }),
  g("rpc_capacity_num", "The max number of concurrent RPC calls allowed", {
    note: "with adaptive RPC concurrency (`--rpc_concurrency=0`), as AnyCable Pro",
  }),
  // sse (anycable-go sse/handler.go)
  g("sse_clients_num", "The number of active SSE clients", { note: "with `--sse`" }),
  // long polling (AnyCable Pro's long_polling.md)
  g("long_poll_clients_num", "The number of active long polling clients", { note: "with `--poll`" }),
  c(
    "long_poll_stale_requests_total",
    "The total number of long polling requests for closed or unknown poll sessions",
    { note: "with `--poll`" },
  ),
  // durable streams (anycable-go ds/handler.go)
  c("ds_requests_total", "The total number of durable streams HEAD/GET requests", {
    note: "with `--ds`",
  }),
  c("ds_poll_requests_total", "The total number of durable streams long-poll requests", {
    note: "with `--ds`",
  }),
  c("ds_sse_requests_total", "The total number of durable streams SSE requests", {
    note: "with `--ds`",
  }),
  g("ds_poll_clients_num", "The number of active durable streams long-poll clients", {
    note: "with `--ds`",
  }),
  g("ds_sse_clients_num", "The number of active durable streams SSE clients", {
    note: "with `--ds`",
  }),
  // gobench (anycable-go's Go-channels benchmark build, gobench-cable)
  c("gochannels_call_total", "The total number of Go channels calls", {
    served: "no: only anycable-go's gobench-cable benchmark binary registers it",
  }),
  // anycable-ts only
  c(
    "subscriptions_limit_exceeded_total",
    "The total number of subscriptions rejected because the connection reached its subscriptions limit",
    { extension: true, note: "`--max_subscriptions_per_connection`" },
  ),
  c(
    "pubsub_dropped_total",
    "The total number of node-to-node messages dropped because the pub/sub engine was unreachable",
    { extension: true, note: "with Redis pub/sub" },
  ),
  c(
    "broker_errors_total",
    "The total number of broker operations that failed (engine unreachable, slow or holding foreign data)",
    { extension: true, note: "with the Redis, NATS or PostgreSQL broker" },
  ),
];

const BY_NAME = new Map(METRICS_CATALOG.map((m) => [m.name, m]));

export function metricInfo(name: string): MetricInfo | undefined {
  return BY_NAME.get(name);
}

/** README's table of every metric (between `<!-- metrics:begin -->` and `<!-- metrics:end -->`). */
export function renderMetricsTable(): string {
  const rows = METRICS_CATALOG.map((m) => {
    let served: string;
    if (m.served === true) served = m.note ? `yes: ${m.note}` : "yes";
    else served = m.served;
    if (m.extension) served += " _(anycable-ts only)_";
    return `| \`${m.name}\` | ${m.type} | ${m.description} | ${served} |`;
  });
  return [
    "<!-- Generated from src/metrics/catalog.ts by scripts/metrics-doc.ts; do not edit by hand. -->",
    "",
    "| Metric | Type | Description (anycable-go's help text) | Served by anycable-ts |",
    "| --- | --- | --- | --- |",
    ...rows,
  ].join("\n");
}
