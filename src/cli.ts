// The command line: config -> settings -> running server, signals, exit codes.
import { type Config, loadConfig, unservedAdapters, unservedOptions } from "./config/index.ts";
import { type LogFormat, Logger, type LogLevel } from "./log/logger.ts";
import type { DisconnectMode } from "./node/node.ts";
import type { Runtime } from "./runtime/types.ts";
import { startCable } from "./server.ts";
import type { ServerSettings } from "./settings.ts";
import { ANYCABLE_GO_COMPAT, VERSION } from "./version.ts";

/**
 * anycable-go's request timeout: --rpc_request_timeout for gRPC (0: none); for HTTP RPC the
 * deprecated --http_rpc_timeout, else --rpc_request_timeout, else 3000 ms.
 */
export function rpcRequestTimeout(impl: string, requestTimeout: number, httpTimeout: number): number {
  if (impl !== "http") return requestTimeout;
  if (httpTimeout > 0) return httpTimeout;
  return requestTimeout > 0 ? requestTimeout : 3000;
}

export function settingsFromConfig(c: Config): ServerSettings {
  const d = c.derived;
  return {
    nodeId: d.nodeId,
    host: c.host,
    port: c.port,
    paths: d.paths,
    healthPath: c.health_path,
    allowedOrigins: c.allowed_origins,
    maxConn: c.max_conn,
    tls: c.ssl_cert && c.ssl_key ? { certFile: c.ssl_cert, keyFile: c.ssl_key } : undefined,
    maxMessageSize: c.max_message_size,
    pingIntervalMs: c.ping_interval * 1000,
    pingPrecision: c.ping_timestamp_precision,
    nativePings: c.enable_native_pings,
    maxPendingBytes: c.ws_max_pending_size,
    writeTimeoutMs: c.ws_write_timeout * 1000,
    disconnectMode: c.disconnect_mode as DisconnectMode,
    proxyHeaders: d.proxyHeaders,
    proxyCookies: d.proxyCookies,
    skipAuth: d.skipAuth,
    publicStreams: d.publicStreams,
    rpc: {
      impl: d.rpcImpl as ServerSettings["rpc"]["impl"],
      host: c.rpc_host,
      concurrency: c.rpc_concurrency,
      requestTimeoutMs: rpcRequestTimeout(d.rpcImpl, c.rpc_request_timeout, c.http_rpc_timeout),
      commandTimeoutMs: c.rpc_command_timeout,
      secret: d.rpcSecret,
      secretDerived: c.http_rpc_secret === "" && d.rpcSecret !== "",
      tls: { enabled: c.rpc_enable_tls, rootCa: c.rpc_tls_root_ca, verify: c.rpc_tls_verify },
      maxRecvSize: c.rpc_max_call_recv_size,
      maxSendSize: c.rpc_max_call_send_size,
      disconnectRate: c.disconnect_rate,
      disconnectBacklog: c.disconnect_backlog_size,
    },
    broadcast: {
      enabled: d.broadcastAdapters.includes("http"),
      path: c.http_broadcast_path,
      port: d.broadcastPort,
      key: d.broadcastKey,
      redis: d.broadcastAdapters.includes("redis")
        ? { url: c.redis_url, channel: c.redis_channel, maxReconnectAttempts: c.redis_max_reconnect_attempts }
        : undefined,
    },
    metrics: { path: c.metrics_http, host: c.metrics_host, port: d.metricsPort },
    shutdownTimeoutMs: c.shutdown_timeout * 1000,
    shutdownDelayMs: c.shutdown_delay * 1000,
    identity: { jwtSecret: d.jwtSecret, jwtParam: d.jwtParam, enforceJwt: d.enforceJwt },
    streams: {
      pubsubChannel: c.streams_pubsub_channel,
      secret: d.streamsSecret,
      whisper: c.streams_whisper,
      presence: c.streams_presence,
      turboSecret: d.turboSecret,
      cableReadySecret: d.cableReadySecret,
    },
    api: {
      enabled: d.apiEnabled,
      host: c.api_host,
      port: d.apiPort,
      path: c.api_path,
      secret: d.apiSecret,
      cors: c.api_cors_headers,
    },
  };
}

export async function runCli(
  argv: string[],
  env: Record<string, string | undefined>,
  runtime: Runtime,
): Promise<void> {
  const loaded = loadConfig({ argv, env, readFile: (p) => runtime.readTextFile(p) });
  if (loaded.kind === "error") {
    console.error(loaded.message);
    runtime.exit(1);
  }
  if (loaded.kind === "exit") {
    if (loaded.output) console.log(loaded.output.replace(/\n$/, ""));
    runtime.exit(loaded.code);
  }
  const config = loaded.config;
  const logger = new Logger(config.derived.logLevel as LogLevel, config.log_format as LogFormat, {
    nodeid: config.derived.nodeId,
  });
  const log = logger.with({ context: "main" });
  for (const w of loaded.warnings) log.warn(w);
  if (config.debug) log.debug("🔧 🔧 🔧 Debug mode is on 🔧 🔧 🔧");
  log.info(
    `Starting AnyCable ${VERSION} (anycable-ts, anycable-go ${ANYCABLE_GO_COMPAT} compatible; runtime: ${runtime.name}, pid: ${runtime.pid()})`,
  );
  if (config.derived.configPath) log.info(`Using configuration from file: ${config.derived.configPath}`);
  if (config.public) log.warn("Server is running in the public mode");
  for (const name of unservedOptions(config))
    log.warn(`option ${name} is accepted but not served yet by anycable-ts`);
  for (const adapter of unservedAdapters(config)) {
    log.warn(
      `broadcast adapter "${adapter}" is not served yet by anycable-ts: only "http" accepts publications`,
    );
  }

  const settings = settingsFromConfig(config);
  let cable: Awaited<ReturnType<typeof startCable>>;
  try {
    cable = await startCable(settings, runtime, logger);
  } catch (err) {
    log.error(`failed to start: ${(err as Error).message}`);
    runtime.exit(1);
  }

  let stopping = false;
  const stop = () => {
    if (stopping) {
      log.warn("Immediate termination requested. Stopped");
      runtime.exit(0);
    }
    stopping = true;
    log.info(
      `Shutting down... (hit Ctrl-C to stop immediately or wait for up to ${config.shutdown_timeout}s for graceful shutdown)`,
    );
    const deadline = setTimeout(() => {
      log.warn("graceful shutdown timed out");
      runtime.exit(0);
    }, settings.shutdownTimeoutMs + settings.shutdownDelayMs);
    cable.shutdown().then(
      () => {
        clearTimeout(deadline);
        runtime.exit(0);
      },
      (err) => {
        log.error(`shutdown failed: ${(err as Error).message}`);
        runtime.exit(0);
      },
    );
  };
  runtime.onSignal("SIGINT", stop);
  runtime.onSignal("SIGTERM", stop);
}
