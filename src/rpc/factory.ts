// Builds the application-facing Controller for --rpc_host: the transport named by rpc_impl (or the
// host's scheme), wrapped in the limiter/retry controller and the disconnect queue.

import type { TickTask } from "../app/lifecycle.ts";
import type { Logger } from "../log/logger.ts";
import type { Metrics } from "../metrics/registry.ts";
import type { Controller } from "../node/controller.ts";
import { PROTO_VERSIONS, type RpcClient } from "./client.ts";
import { RpcController } from "./controller.ts";
import { DisconnectQueue } from "./disconnect_queue.ts";
import { GrpcRpcClient } from "./grpc.ts";
import { HttpRpcClient } from "./http.ts";
import type { Options } from "./options.ts";
import { tlsEnabled } from "./tls.ts";

const DEFAULT_CONCURRENCY = 28;

/** What the runtime imposes on the transports (see GrpcRpcOptions.maxStreamsPerSession). */
export interface RuntimeTransportOptions {
  http2MaxStreamsPerSession?: number;
}

export function createRpcClient(
  rpc: Options,
  logger: Logger,
  runtime: RuntimeTransportOptions = {},
): RpcClient {
  switch (rpc.impl) {
    case "grpc":
      return new GrpcRpcClient({
        host: rpc.host,
        tls: rpc.tls,
        maxRecvSize: rpc.maxRecvSize,
        maxSendSize: rpc.maxSendSize,
        logger,
        maxStreamsPerSession: runtime.http2MaxStreamsPerSession,
      });
    case "http":
      if (rpc.secretDerived) {
        logger
          .with({ context: "rpc" })
          .info("auto-generated authorization secret from the application secret");
      }
      return new HttpRpcClient({ host: rpc.host, secret: rpc.secret, tls: rpc.tls, logger });
    default:
      throw new Error(`unknown RPC implementation: ${rpc.impl}`);
  }
}

/** anycable-go's start-up line, word for word in shape, so operators grep the same thing. */
export function rpcAnnouncement(rpc: Options, concurrency: number | string): string {
  const headers = rpc.proxyHeaders.join(",") || "<none>";
  const cookies = rpc.proxyCookies.join(",") || "<all>";
  return (
    `RPC controller initialized: ${rpc.host} (concurrency: ${concurrency}, impl: ${rpc.impl}, ` +
    `enable_tls: ${tlsEnabled(rpc.tls)}, proto_versions: ${PROTO_VERSIONS}, proxy_headers: ${headers}, ` +
    `proxy_cookies: ${cookies})`
  );
}

/** How often adaptive concurrency takes a step. */
export const ADAPTIVE_INTERVAL_MS = 1000;

export interface RpcControllerSetup {
  controller: Controller;
  /** Work for the cable's ticker (adaptive concurrency). */
  tasks: TickTask[];
}

export function createRpcController(
  rpc: Options,
  metrics: Metrics,
  logger: Logger,
  runtime: RuntimeTransportOptions = {},
): RpcControllerSetup {
  // --rpc_concurrency=0 is adaptive (AnyCable Pro; OSS anycable-go warns and uses 28); the
  // bounds were checked when the config was loaded (configProblem).
  const adaptive = rpc.concurrency === 0 ? rpc.adaptive : undefined;
  let concurrency = rpc.concurrency;
  if (concurrency < 0) {
    logger.with({ context: "rpc" }).warn("RPC concurrency must be positive, reverted to the default value");
    concurrency = DEFAULT_CONCURRENCY;
  }
  const shown = adaptive
    ? `auto (initial=${adaptive.initial}, min=${adaptive.min}, max=${adaptive.max})`
    : concurrency;
  const controller = new RpcController({
    client: createRpcClient(rpc, logger, runtime),
    concurrency: adaptive?.initial ?? concurrency,
    adaptive,
    requestTimeoutMs: rpc.requestTimeoutMs,
    commandTimeoutMs: rpc.commandTimeoutMs,
    metrics,
    logger,
    announce: rpcAnnouncement(rpc, shown),
  });
  const queue = new DisconnectQueue(controller, {
    rate: rpc.disconnectRate,
    backlog: rpc.disconnectBacklog,
    shutdownTimeoutMs: rpc.shutdownTimeoutMs,
    flushConcurrency: adaptive?.initial ?? concurrency,
    metrics,
    logger,
  });
  const tasks = adaptive ? [{ everyMs: ADAPTIVE_INTERVAL_MS, run: () => controller.adapt() }] : [];
  return { controller: queue, tasks };
}
