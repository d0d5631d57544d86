// The composition root: builds every part of a cable from the configuration and orders them as
// services. The CLI (cli.ts) and the embeddable library (lib.ts) both start from here.
import { Hono } from "hono";
import { API_DISABLED_LINE, apiStartupLines, createApiApp } from "../api/index.ts";
import * as apiConfig from "../api/options.ts";
import type { Broadcaster } from "../broadcast/broadcaster.ts";
import { ClusterHandler, type LocalDelivery, LocalHandler } from "../broadcast/handler.ts";
import { HttpBroadcaster } from "../broadcast/http.ts";
import * as broadcastConfig from "../broadcast/options.ts";
import type { Broker } from "../broker/broker.ts";
import { NoBroker } from "../broker/none.ts";
import { type Config, unservedAdapters } from "../config/index.ts";
import * as listenerConfig from "../http/options.ts";
import { pathMatcher } from "../http/request.ts";
import { Hub } from "../hub/hub.ts";
import { wrapIdentity } from "../identity/factory.ts";
import * as identityConfig from "../identity/options.ts";
import type { Logger } from "../log/logger.ts";
import * as metricsConfig from "../metrics/options.ts";
import { PrometheusSink } from "../metrics/prometheus.ts";
import { Metrics } from "../metrics/registry.ts";
import type { Controller } from "../node/controller.ts";
import { Node } from "../node/node.ts";
import { NullController } from "../node/null_controller.ts";
import * as nodeConfig from "../node/options.ts";
import { LocalPubSub } from "../pubsub/local.ts";
import * as pubsubConfig from "../pubsub/options.ts";
import type { PubSub } from "../pubsub/pubsub.ts";
import * as redisConfig from "../redis/options.ts";
import * as rpcConfig from "../rpc/options.ts";
import type { HandlerSpec, RunningServer, Runtime } from "../runtime/types.ts";
import { buildChannelRouter } from "../streams/factory.ts";
import * as streamsConfig from "../streams/options.ts";
import * as transportConfig from "../transports/options.ts";
import { requestGate } from "../transports/request.ts";
import { type SocketContext, wsCallbacks, wsUpgradeHandler } from "../transports/ws/handler.ts";
import * as wsConfig from "../transports/ws/options.ts";
import * as appConfig from "./options.ts";
import { type Service, ServiceList } from "./service.ts";

const HEALTH_BODY = "Ah, ha, ha, ha, stayin' alive, stayin' alive.";
const TICK_MS = 250;

export interface Cable {
  readonly node: Node;
  readonly hub: Hub;
  readonly metrics: Metrics;
  readonly services: ServiceList;
  /** Routes of the main port: WebSocket paths, health, and whatever else shares that port. */
  readonly main: HandlerSpec<SocketContext>;
}

export interface ComposeOptions {
  config: Config;
  runtime: Runtime;
  logger: Logger;
  /** The CLI binds the main port itself; an embedding application serves `main` in its own server. */
  embedded: boolean;
}

export async function composeCable({ config, runtime, logger, embedded }: ComposeOptions): Promise<Cable> {
  const log = logger.with({ context: "main" });
  const app = appConfig.fromConfig(config);
  const listener = listenerConfig.fromConfig(config);
  const ws = wsConfig.fromConfig(config);
  const rpc = rpcConfig.fromConfig(config);
  const broadcast = broadcastConfig.fromConfig(config);
  const metricsOpts = metricsConfig.fromConfig(config);
  const api = apiConfig.fromConfig(config);
  const nodeOpts = nodeConfig.fromConfig(config);

  const metrics = new Metrics();
  const hub = new Hub();
  const controller = await buildController(rpc, config, metrics, logger, runtime);
  const node = new Node({
    controller,
    hub,
    metrics,
    logger,
    ...nodeOpts,
    cancellableCalls: rpc.impl !== "none",
  });

  // The pipeline of one publication: broadcaster -> handler -> broker -> pub/sub -> node -> hub.
  const delivery: LocalDelivery = {
    broadcast: (m) => node.broadcast(m),
    executeCommand: (c) => node.remoteDisconnect(c.identifier, c.reconnect),
    countPublication: () => node.countPublication(),
    countFailedPublication: () => node.countFailedPublication(),
  };
  const pubsubOpts = pubsubConfig.fromConfig(config);
  if (pubsubOpts.adapter !== "" && pubsubOpts.adapter !== "none") {
    // anycable-go picks Redis pub/sub by itself when Redis is configured (e.g. REDIS_URL).
    log.warn(
      `pub/sub adapter "${pubsubOpts.adapter}" is not served yet by anycable-ts: publications reach this node's clients only`,
    );
  }
  const pubsub: PubSub = new LocalPubSub(delivery);
  hub.setStreamsListener({
    streamAdded: (s) => pubsub.subscribe(s),
    streamRemoved: (s) => pubsub.unsubscribe(s),
  });
  const broker: Broker = new NoBroker(pubsub);
  log.info(broker.announce());
  const clusterHandler = new ClusterHandler(broker, delivery);
  const localHandler = new LocalHandler(delivery);

  // One Hono app per port, like anycable-go's one HTTP server per port.
  const apps = new Map<number, Hono>();
  const appFor = (port: number): Hono => {
    let a = apps.get(port);
    if (!a) {
      a = new Hono();
      apps.set(port, a);
    }
    return a;
  };
  const scheme = listener.tls ? "https" : "http";
  // The main port is known once bound (it may be 0); start-up lines are built after that.
  const bound = { mainPort: listener.port };
  const portOf = (port: number) => (port === listener.port ? bound.mainPort : port);
  const address = (port: number, host = listener.host) => `${scheme}://${host}:${portOf(port)}`;
  const startupLines: Array<() => string[]> = [];

  appFor(listener.port).all(listener.healthPath, (c) => c.text(HEALTH_BODY));

  const broadcasters: Broadcaster[] = [];
  for (const adapter of broadcast.adapters) {
    if (adapter === "http") {
      const http = new HttpBroadcaster(clusterHandler, broadcast.http.key, logger);
      appFor(broadcast.http.port).all(broadcast.http.path, (c) => http.fetch(c.req.raw));
      const auth = broadcast.http.key ? "authorization required" : "no authorization";
      startupLines.push(() => [
        `Accept broadcast requests at ${address(broadcast.http.port)}${broadcast.http.path} (${auth})`,
      ]);
      broadcasters.push(http);
    } else if (adapter === "redis") {
      // Loaded only when configured: the Redis client alone adds ~13 MiB to an idle server.
      const { RedisBroadcaster } = await import("../broadcast/redis.ts");
      const redis = redisConfig.fromConfig(config);
      broadcasters.push(
        new RedisBroadcaster(
          {
            url: redis.url,
            channel: broadcast.redis.channel,
            maxReconnectAttempts: redis.maxReconnectAttempts,
          },
          localHandler,
          logger,
        ),
      );
    }
  }
  for (const adapter of unservedAdapters(config)) {
    log.warn(
      `broadcast adapter "${adapter}" is not served yet by anycable-ts: only "http" and "redis" accept publications`,
    );
  }

  // REST API: on its port's app, or on a listener of its own when api.host differs (as anycable-go).
  const apiApp = api.enabled ? createApiApp(clusterHandler, api, logger) : undefined;
  const separateApiHost = api.host !== "" && api.host !== listener.host;
  if (apiApp && !separateApiHost) appFor(api.port).route("/", apiApp);
  if (!apiApp) log.info(API_DISABLED_LINE);

  const prometheus = new PrometheusSink();
  const metricsApp = metricsOpts.path ? new Hono() : undefined;
  metricsApp?.get(metricsOpts.path, (c) => {
    prometheus.write(metrics.snapshot());
    return c.text(prometheus.body);
  });
  const separateMetricsHost = metricsOpts.host !== "" && metricsOpts.host !== listener.host;
  if (metricsApp && !separateMetricsHost) appFor(metricsOpts.port).route("/", metricsApp);

  const isWsPath = pathMatcher(ws.paths);
  const upgrade = wsUpgradeHandler(requestGate(transportConfig.fromConfig(config), node), logger);
  const mainApp = appFor(listener.port);
  const main: HandlerSpec<SocketContext> = {
    maxMessageSize: ws.maxMessageSize,
    nativePingIntervalMs: nodeOpts.nativePings ? nodeOpts.pingIntervalMs : undefined,
    handle: (req, remote) => {
      const url = new URL(req.url);
      if (isWsPath(url.pathname)) return upgrade(req, url, remote);
      return mainApp.fetch(req);
    },
    websocket: wsCallbacks(node),
  };

  // Listeners for every other port (and for separate metrics / API hosts).
  const extra: Array<{
    host: string;
    port: number;
    tls: boolean;
    fetch: (r: Request) => Response | Promise<Response>;
  }> = [];
  for (const [port, a] of apps)
    if (port !== listener.port)
      extra.push({ host: listener.host, port, tls: true, fetch: (r) => a.fetch(r) });
  if (metricsApp && separateMetricsHost) {
    extra.push({
      host: metricsOpts.host,
      port: metricsOpts.port,
      tls: false,
      fetch: (r) => metricsApp.fetch(r),
    });
  }
  if (apiApp && separateApiHost)
    extra.push({ host: api.host, port: api.port, tls: true, fetch: (r) => apiApp.fetch(r) });
  if (metricsApp) {
    const host = separateMetricsHost ? metricsOpts.host : listener.host;
    startupLines.push(() => [`Serve metrics at ${address(metricsOpts.port, host)}${metricsOpts.path}`]);
  }
  if (apiApp) {
    const host = separateApiHost ? api.host : listener.host;
    startupLines.push(() => apiStartupLines(api, address(api.port, host)));
  }

  const cable: Cable = { node, hub, metrics, services: new ServiceList(log), main };
  // Start order; shutdown runs it backwards (see ServiceList).
  const services = cable.services;
  services.add(prometheus);
  services.add(pubsub);
  services.add(broker);
  services.add(
    listenersService(cable, bound, runtime, listener, extra, embedded, ws.paths, log, startupLines),
  );
  services.add(nodeService(node, controller));
  for (const b of broadcasters) services.add(b);
  services.add(delayService(app.shutdownDelayMs, log));
  return cable;
}

async function buildController(
  rpc: rpcConfig.Options,
  config: Config,
  metrics: Metrics,
  logger: Logger,
  runtime: Runtime,
): Promise<Controller> {
  const log = logger.with({ context: "main" });
  let app: Controller;
  if (rpc.impl === "none") {
    log.info("no RPC configured");
    app = new NullController();
  } else {
    // Loaded only with RPC: protobuf, the generated messages and the transports weigh ~10 MiB idle.
    const { createRpcController } = await import("../rpc/factory.ts");
    // logs "RPC controller initialized: <host> (..., impl: grpc|http, ...)" once started
    app = createRpcController(rpc, metrics, logger, { http2SessionPerCall: runtime.http2SessionPerCall });
  }
  const routed = buildChannelRouter(app, streamsConfig.fromConfig(config), log);
  return wrapIdentity(routed, identityConfig.fromConfig(config), log);
}

/** The node: the controller chain starts first, and the one ticker drives pings and slow-client checks. */
function nodeService(node: Node, controller: Controller): Service {
  let ticker: ReturnType<typeof setInterval> | undefined;
  return {
    name: "node",
    async start() {
      await controller.start?.();
      ticker = setInterval(() => node.tick(Date.now()), TICK_MS);
    },
    async shutdown() {
      // Every client gets `server_restart` first; the controller then flushes its disconnect queue.
      await node.shutdown();
      clearInterval(ticker);
    },
  };
}

/** Waits --shutdown_delay before anything else stops (it is the last service, stopped first). */
function delayService(delayMs: number, log: Logger): Service {
  return {
    name: "shutdown delay",
    async start() {},
    async shutdown(deadline) {
      if (delayMs <= 0) return;
      log.info(`Waiting ${delayMs / 1000}s before shutting down`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delayMs);
        deadline.addEventListener("abort", () => {
          clearTimeout(timer);
          resolve();
        });
      });
    },
  };
}

function listenersService(
  cable: Cable,
  bound: { mainPort: number },
  runtime: Runtime,
  listener: listenerConfig.Options,
  extra: Array<{
    host: string;
    port: number;
    tls: boolean;
    fetch: (r: Request) => Response | Promise<Response>;
  }>,
  embedded: boolean,
  paths: string[],
  log: Logger,
  startupLines: Array<() => string[]>,
): Service {
  const servers: RunningServer[] = [];
  return {
    name: "listeners",
    async start() {
      const scheme = listener.tls ? "https" : "http";
      if (!embedded) {
        const main = await runtime.serve({
          ...cable.main,
          hostname: listener.host,
          port: listener.port,
          tls: listener.tls,
        });
        servers.push(main);
        bound.mainPort = main.port;
        if (main.publish) cable.hub.setNativeFanout({ publish: main.publish });
        const at = `${scheme}://${listener.host}:${main.port}`;
        for (const path of paths) log.info(`Handle WebSocket connections at ${at}${path}`);
        log.info(`Handle health requests at ${at}${listener.healthPath}`);
      } else {
        log.info(
          `Embedded: WebSocket connections at ${paths.join(", ")}, health requests at ${listener.healthPath}`,
        );
      }
      for (const e of extra) {
        servers.push(
          await runtime.serve({
            hostname: e.host,
            port: e.port,
            tls: e.tls ? listener.tls : undefined,
            maxMessageSize: 0,
            handle: (r) => e.fetch(r),
          }),
        );
      }
      for (const lines of startupLines) for (const line of lines()) log.info(line);
    },
    async shutdown() {
      await Promise.all(servers.map((s) => s.stop().catch(() => {})));
      servers.length = 0;
    },
  };
}
