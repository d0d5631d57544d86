// The node's counters and gauges, under anycable-go's names and help texts so dashboards keep
// working after the swap. Registration order is the exposition order: keep it stable.
import type { Counter, Metrics } from "../metrics/registry.ts";

export interface NodeCounters {
  readonly failedAuths: Counter;
  readonly clientMsg: Counter;
  readonly slowClients: Counter;
  readonly failedClientMsg: Counter;
  readonly publications: Counter;
  readonly broadcastMsg: Counter;
  readonly remoteCommands: Counter;
  readonly failedBroadcast: Counter;
  readonly serverMsg: Counter;
  readonly failedServerMsg: Counter;
  readonly timeoutServerMsg: Counter;
  readonly dataSent: Counter;
  readonly dataRcvd: Counter;
  readonly subscriptionsLimitExceeded: Counter;
}

/** Live sizes the gauges report; read on collection instead of being updated on every change. */
export interface NodeGaugeSources {
  clients(): number;
  uniqueClients(): number;
  streams(): number;
}

export function nodeMetrics(metrics: Metrics, sources: NodeGaugeSources): NodeCounters {
  const counters: NodeCounters = {
    failedAuths: metrics.counter("failed_auths_total", "The total number of failed authentication attempts"),
    clientMsg: metrics.counter("client_msg_total", "The total number of received messages from clients"),
    slowClients: metrics.counter(
      "disconnected_slow_clients_total",
      "The total number of disconnected slow clients",
    ),
    failedClientMsg: metrics.counter(
      "failed_client_msg_total",
      "The total number of unrecognized messages received from clients",
    ),
    publications: metrics.counter(
      "publications_total",
      "The total number of publications received (from the application)",
    ),
    broadcastMsg: metrics.counter(
      "broadcast_msg_total",
      "The total number of messages received through PubSub (for broadcast)",
    ),
    remoteCommands: metrics.counter(
      "remote_commands_total",
      "The total number of remote commands received through PubSub",
    ),
    failedBroadcast: metrics.counter(
      "failed_broadcast_msg_total",
      "The total number of unrecognized publications received from the application",
    ),
    serverMsg: metrics.counter("server_msg_total", "The total number of messages sent to clients"),
    failedServerMsg: metrics.counter(
      "failed_server_msg_total",
      "The total number of messages failed to send to clients",
    ),
    timeoutServerMsg: metrics.counter(
      "timeout_server_msg_total",
      "The total number of messages failed to send to clients due to write timeouts",
    ),
    dataSent: metrics.counter("data_sent_total", "The total amount of bytes sent to clients"),
    dataRcvd: metrics.counter("data_rcvd_total", "The total amount of bytes received from clients"),
    // anycable-ts only (anycable-go has no per-connection subscription limit)
    subscriptionsLimitExceeded: metrics.counter(
      "subscriptions_limit_exceeded_total",
      "The total number of subscriptions rejected because the connection reached its subscriptions limit",
    ),
  };
  const clients = metrics.gauge("clients_num", "The number of active clients");
  const uniq = metrics.gauge(
    "clients_uniq_num",
    "The number of unique clients (with respect to connection identifiers)",
  );
  const streams = metrics.gauge("broadcast_streams_num", "The number of active broadcasting streams");
  // Listed (as 0) even when no disconnect queue runs; the queue sets it when there is one.
  metrics.gauge("disconnect_queue_size", "The size of delayed disconnect");
  metrics.onCollect(() => {
    clients.set(sources.clients());
    uniq.set(sources.uniqueClients());
    streams.set(sources.streams());
  });
  return counters;
}
