// The composition root: builds every part of a cable from the configuration and orders them as
// services. The CLI (cli.ts) and the embeddable library (lib.ts) both start from here.
import { Hono } from "hono";
import { API_DISABLED_LINE, apiStartupLines, createApiApp } from "../api/index.ts";
import * as apiConfig from "../api/options.ts";
import { ForwardingHandler, type PublicationTarget } from "../broadcast/handler.ts";
import type { Broker } from "../broker/broker.ts";
import { createBroker } from "../broker/factory.ts";
import * as brokerConfig from "../broker/options.ts";
import type { Config } from "../config/index.ts";
import * as enatsConfig from "../enats/options.ts";
import * as listenerConfig from "../http/options.ts";
import { pathMatcher } from "../http/request.ts";
import { Hub } from "../hub/hub.ts";
import { wrapIdentity } from "../identity/factory.ts";
import { jwtHeaderName } from "../identity/jwt.ts";
import * as identityConfig from "../identity/options.ts";
import type { Logger } from "../log/logger.ts";
import * as metricsConfig from "../metrics/options.ts";
import { PrometheusSink } from "../metrics/prometheus.ts";
import { pushMetrics } from "../metrics/push.ts";
import { Metrics } from "../metrics/registry.ts";
import * as natsConfig from "../nats/options.ts";
import type { Controller } from "../node/controller.ts";
import type { Executor } from "../node/executor.ts";
import { Node } from "../node/node.ts";
import { NullController } from "../node/null_controller.ts";
import * as nodeConfig from "../node/options.ts";
import * as postgresConfig from "../postgres/options.ts";
import * as graphqlConfig from "../protocols/graphql/index.ts";
import * as ocppConfig from "../protocols/ocpp/index.ts";
import { OCPP_PROTOCOL } from "../protocols/ocpp/protocol.ts";
import * as pusherConfig from "../protocols/pusher/index.ts";
import { PUSHER_PROTOCOL } from "../protocols/pusher/protocol.ts";
import { createPubSub } from "../pubsub/factory.ts";
import type { PubSub, PubSubHandler } from "../pubsub/pubsub.ts";
import * as redisConfig from "../redis/options.ts";
import * as rpcConfig from "../rpc/options.ts";
import type { HandlerSpec, Runtime } from "../runtime/types.ts";
import { createStatusApp, STATUS_DISABLED_LINE, statusEnabled, statusStartupLines } from "../status/index.ts";
import * as statusConfig from "../status/options.ts";
import { StatusSampler } from "../status/sampler.ts";
import { StreamsController } from "../streams/controller.ts";
import { buildChannelRouter } from "../streams/factory.ts";
import * as streamsConfig from "../streams/options.ts";
import { corsHeaders } from "../transports/cors.ts";
import { DsTransport } from "../transports/ds/handler.ts";
import * as dsConfig from "../transports/ds/options.ts";
import { LpTransport } from "../transports/lp/handler.ts";
import * as lpConfig from "../transports/lp/options.ts";
import * as transportConfig from "../transports/options.ts";
import { requestGate } from "../transports/request.ts";
import { SseTransport } from "../transports/sse/handler.ts";
import * as sseConfig from "../transports/sse/options.ts";
import { type SocketContext, wsCallbacks, wsUpgradeHandler } from "../transports/ws/handler.ts";
import * as wsConfig from "../transports/ws/options.ts";
import { VERSION_STRING } from "../version.ts";
import { createBroadcasters } from "./broadcasters.ts";
import { delayService, listenersService, nodeService, type TickTask } from "./lifecycle.ts";
import * as appConfig from "./options.ts";
import { Routes } from "./routes.ts";
import { ServiceList } from "./service.ts";

const HEALTH_BODY = "Ah, ha, ha, ha, stayin' alive, stayin' alive.";

export interface Cable {
  readonly node: Node;
  readonly hub: Hub;
  readonly metrics: Metrics;
  readonly services: ServiceList;
  /** The Server-Sent Events transport, with --sse. */
  readonly sse?: SseTransport;
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
  const listener = listenerConfig.fromConfig(config);
  const ws = wsConfig.fromConfig(config);
  const rpc = rpcConfig.fromConfig(config);
  const metricsOpts = metricsConfig.fromConfig(config);
  const api = apiConfig.fromConfig(config);
  const nodeOpts = nodeConfig.fromConfig(config);

  const metrics = new Metrics(metricsOpts.tags);
  const hub = new Hub();
  const { controller, tasks: controllerTasks } = await buildController(rpc, config, metrics, logger, runtime);

  // The pipeline of one publication: broadcaster -> handler -> broker -> pub/sub -> node -> hub.
  const thisNode: PublicationTarget & PubSubHandler = {
    handleBroadcast: (m) => node.broadcast(m),
    handleCommand: (c) => node.remoteDisconnect(c.identifier, c.reconnect),
    broadcast: (m) => node.broadcast(m),
    executeCommand: (c) => node.remoteDisconnect(c.identifier, c.reconnect),
  };
  const pubsub: PubSub = await createPubSub(config, thisNode, logger, metrics);
  hub.setStreamsListener({
    streamAdded: (s) => pubsub.subscribe(s),
    streamRemoved: (s) => pubsub.unsubscribe(s),
  });
  const brokerOpts = brokerConfig.fromConfig(config);
  // The broker's presence changes go to the node, built below (it needs the broker first).
  const broker: Broker = await createBroker(brokerOpts, {
    pubsub,
    presenter: {
      presenceChanged: (s, e, sid) => {
        if (!pusher?.presenceChanged(s, e)) node.presenceChanged(s, e, sid);
      },
    },
    log,
    redis: redisConfig.fromConfig(config),
    nats: natsConfig.fromConfig(config),
    postgres: postgresConfig.fromConfig(config),
    metrics,
  });
  log.info(broker.announce());
  // --- Pusher (protocols/pusher): an executor for the node, an endpoint, an API, webhooks
  const pusherOpts = pusherConfig.fromConfig(config);
  const pusher = pusherOpts.enabled
    ? new pusherConfig.Pusher(pusherOpts, { broker, logger, maxBodyBytes: listener.maxBodyBytes })
    : undefined;
  // --- GraphQL over WebSocket (protocols/graphql): executors on the application's controller chain
  const graphqlOpts = graphqlConfig.fromConfig(config);
  const graphql = graphqlOpts.enabled
    ? new graphqlConfig.Graphql(graphqlOpts, controller, logger)
    : undefined;
  // --- OCPP 1.6J (protocols/ocpp): charging stations at --ocpp_path/{station_id}, one executor
  const ocppOpts = ocppConfig.fromConfig(config);
  const ocpp = ocppOpts.enabled ? new ocppConfig.Ocpp(ocppOpts, controller, logger) : undefined;
  // typed: deno check infers the map's value type from the first spread alone
  const executors = new Map<string, Executor>([
    ...(pusher ? ([[PUSHER_PROTOCOL, pusher.executor]] as const) : []),
    ...(graphql ? graphql.executors : []),
    ...(ocpp ? ([[OCPP_PROTOCOL, ocpp.executor]] as const) : []),
  ]);
  const node = new Node({
    controller,
    hub,
    metrics,
    logger,
    ...nodeOpts,
    broker,
    sessionCache: broker.supportsHistory && brokerOpts.sessionsTtlSec > 0,
    // anycable-go touches them a bit before they would expire: every half TTL
    sessionsTouchMs: brokerOpts.sessionsTtlSec * 500,
    presenceTouchMs: brokerOpts.presenceTtlSec * 500,
    cancellableCalls: rpc.impl !== "none",
    executors: executors.size > 0 ? executors : undefined,
    secretParams: [identityConfig.fromConfig(config).jwtParam],
  });
  pusher?.attach(node);
  const clusterHandler = new ForwardingHandler(broker, node, logger);

  const routes = new Routes(listener);
  routes.main.all(listener.healthPath, (c) => c.text(HEALTH_BODY));
  const broadcasters = await createBroadcasters(
    config,
    {
      cluster: clusterHandler,
      local: new ForwardingHandler(thisNode, node, logger),
      delivered: async () => {
        await broker.drained?.();
        await pubsub.drained?.();
      },
    },
    routes,
    logger,
  );

  if (broker.supportsHistory && broadcasters.length > 0 && broadcasters.every((b) => b.fanout)) {
    // anycable-go's docs say so ("enabling a broker has no effect"); it does not tell at startup.
    log.warn(
      `broker "${brokerOpts.adapter}" has no effect on the configured broadcasters (${broadcasters.map((b) => b.name).join(", ")}): ` +
        "they deliver to this node's clients directly, without offsets or history; use http (or redisx) broadcasting",
    );
  }

  // REST API: on its port's app, or on a listener of its own when api.host differs (as anycable-go).
  const apiApp = api.enabled
    ? createApiApp(clusterHandler, broker, api, logger, listener.maxBodyBytes)
    : undefined;
  if (apiApp) {
    const separate = api.host !== "" && api.host !== listener.host;
    if (separate)
      routes.separateHost({ host: api.host, port: api.port, tls: true, fetch: (r) => apiApp.fetch(r) });
    else routes.on(api.port).route("/", apiApp);
    routes.announce(() =>
      apiStartupLines(api, routes.address(api.port, separate ? api.host : listener.host)),
    );
  } else {
    log.info(API_DISABLED_LINE);
  }

  const prometheus = new PrometheusSink();
  if (metricsOpts.path) {
    const metricsApp = new Hono();
    metricsApp.get(metricsOpts.path, (c) => {
      prometheus.write(metrics.snapshot());
      return c.text(prometheus.body);
    });
    const separate = metricsOpts.host !== "" && metricsOpts.host !== listener.host;
    if (separate) {
      routes.separateHost({
        host: metricsOpts.host,
        port: metricsOpts.port,
        tls: false,
        fetch: (r) => metricsApp.fetch(r),
      });
    } else {
      routes.on(metricsOpts.port).route("/", metricsApp);
    }
    const host = separate ? metricsOpts.host : listener.host;
    routes.announce(() => [`Serve metrics at ${routes.address(metricsOpts.port, host)}${metricsOpts.path}`]);
  }

  // The live status page (anycable-ts only): on the main port, sampled once a second by the ticker.
  const status = statusConfig.fromConfig(config);
  let statusSampler: StatusSampler | undefined;
  if (status.path !== "" && statusEnabled(status)) {
    statusSampler = new StatusSampler(metrics);
    routes.main.route(
      "/",
      createStatusApp({
        status,
        sampler: statusSampler,
        publisher: clusterHandler,
        wsPath: ws.paths[0] ?? "/cable",
        pubsubChannel: streamsConfig.fromConfig(config).pubsubChannel || "$pubsub",
        version: VERSION_STRING,
        nodeId: appConfig.fromConfig(config).nodeId,
        logger,
      }),
    );
    routes.announce(() => statusStartupLines(status, routes.address(listener.port)));
  } else if (status.path !== "") {
    log.warn(STATUS_DISABLED_LINE);
  }

  const transport = transportConfig.fromConfig(config);
  const gate = requestGate(transport, node);
  const isWsPath = pathMatcher(ws.paths);
  const upgrade = wsUpgradeHandler(gate, logger);
  const sseOpts = sseConfig.fromConfig(config);
  const sse = sseOpts.enabled
    ? new SseTransport(
        node,
        gate,
        corsHeaders(transport.allowedOrigins),
        { closeTimeoutMs: nodeOpts.writeTimeoutMs > 0 ? nodeOpts.writeTimeoutMs : 2000 },
        metrics,
        logger,
      )
    : undefined;
  const isSsePath = pathMatcher([sseOpts.path]);
  if (sse) {
    routes.announce(() => [
      embedded
        ? `Embedded: SSE requests at ${sseOpts.path}`
        : `Handle SSE requests at ${routes.address(listener.port)}${sseOpts.path}`,
    ]);
  }
  // --- long polling (transports/lp): sessions held between poll requests, on this node only
  const lpOpts = lpConfig.fromConfig(config);
  const lp = lpOpts.enabled
    ? new LpTransport(lpOpts, {
        node,
        gate,
        cors: corsHeaders(transport.allowedOrigins),
        maxConn: transport.maxConn,
        maxPendingBytes: nodeOpts.maxPendingBytes,
        metrics,
        logger,
      })
    : undefined;
  const isLpPath = pathMatcher([lpOpts.path]);
  if (lp) {
    routes.announce(() => [
      embedded
        ? `Embedded: long polling requests at ${lpOpts.path}`
        : `Handle long polling requests at ${routes.address(listener.port)}${lpOpts.path} ` +
          `(poll_interval: ${lpOpts.intervalSec}, keepalive_timeout: ${lpOpts.keepaliveSec})`,
    ]);
  }
  // --- Durable Streams (transports/ds): reads of the broker's history, authorized as $pubsub streams
  const dsOpts = dsConfig.fromConfig(config);
  const streamsOpts = streamsConfig.fromConfig(config);
  const ds = dsOpts.enabled
    ? new DsTransport(dsOpts, {
        node,
        broker,
        gate,
        cors: corsHeaders(transport.allowedOrigins),
        streams: new StreamsController({
          secret: streamsOpts.secret,
          publicStreams: streamsOpts.publicStreams,
        }),
        pubsubChannel: streamsOpts.pubsubChannel,
        jwtHeader: transport.jwtParam ? jwtHeaderName(transport.jwtParam) : "",
        closeTimeoutMs: nodeOpts.writeTimeoutMs > 0 ? nodeOpts.writeTimeoutMs : 2000,
        metrics,
        logger,
      })
    : undefined;
  if (ds) {
    // (without a broker the configuration is refused: transports/ds/options.ts)
    routes.announce(() => [
      embedded
        ? `Embedded: Durable Streams requests at ${dsOpts.path}/*`
        : `Handle Durable Streams requests at ${routes.address(listener.port)}${dsOpts.path}/*`,
    ]);
  }
  const pusherUpgrade = pusher?.upgradeHandler(gate);
  if (pusher) {
    pusher.warnings();
    const api = pusher.apiHandler(clusterHandler);
    if (api) {
      const prefix = `${pusher.apiPath}/`;
      routes
        .on(pusherOpts.apiPort)
        .use("*", (c, next) => (c.req.path.startsWith(prefix) ? api(c.req.raw) : next()));
    }
    routes.announce(() => [
      `Handle Pusher WebSocket connections at ${routes.address(listener.port)}${pusher.wsPath}`,
      api
        ? `Handle Pusher API requests at ${routes.address(pusherOpts.apiPort)}${pusher.apiPath}/`
        : "Pusher API is not served: no secret to verify requests with",
    ]);
  }
  const graphqlUpgrade = graphql?.upgradeHandler(gate);
  if (graphql) {
    routes.announce(() => [
      embedded
        ? `Embedded: GraphQL WebSocket connections at ${graphqlOpts.path}`
        : `Handle GraphQL WebSocket connections at ${routes.address(listener.port)}${graphqlOpts.path}`,
    ]);
  }
  const ocppUpgrade = ocpp?.upgradeHandler(gate);
  if (ocpp) {
    routes.announce(() => [
      embedded
        ? `Embedded: OCPP v1.6 WebSocket connections at ${ocppOpts.path}/{station_id}`
        : `Handle OCPP v1.6 WebSocket connections at ${routes.address(listener.port)}${ocppOpts.path}/{station_id}`,
    ]);
  }
  const mainApp = routes.main;
  const main: HandlerSpec<SocketContext> = {
    maxMessageSize: ws.maxMessageSize,
    compression: ws.compression,
    nativePingIntervalMs: nodeOpts.nativePings ? nodeOpts.pingIntervalMs : undefined,
    closeTimeoutMs: nodeOpts.writeTimeoutMs > 0 ? nodeOpts.writeTimeoutMs : undefined,
    handle: (req, remote) => {
      const url = new URL(req.url);
      if (isWsPath(url.pathname)) return upgrade(req, url, remote);
      if (sse && isSsePath(url.pathname)) return sse.handle(req, url, remote);
      if (lp && isLpPath(url.pathname)) return lp.handle(req, url, remote);
      if (ds?.matches(url.pathname)) return ds.handle(req, url, remote);
      if (pusherUpgrade && url.pathname === pusher?.wsPath) return pusherUpgrade(req, url, remote);
      if (graphqlUpgrade && url.pathname === graphqlOpts.path) return graphqlUpgrade(req, url, remote);
      if (ocppUpgrade && ocpp?.matches(url.pathname, req)) return ocppUpgrade(req, url, remote);
      return mainApp.fetch(req);
    },
    websocket: wsCallbacks(node, logger),
  };

  // StatsD / log sinks (written every rotate interval by the ticker) and the process gauges
  const pushed = pushMetrics(metricsOpts, metrics, logger);

  // Start order; shutdown runs it backwards (see ServiceList).
  const services = new ServiceList(log);
  services.add(prometheus);
  for (const sink of pushed.sinks) services.add(sink);
  // anycable-go starts its embedded NATS server before pub/sub, which may connect to it.
  const enats = enatsConfig.fromConfig(config);
  if (enats.enabled) {
    const { EmbeddedNats } = await import("../enats/server.ts");
    services.add(new EmbeddedNats(enats, logger));
  }
  services.add(pubsub);
  services.add(broker);
  if (pusher?.webhooks) services.add(pusher.webhooks);
  services.add(listenersService({ runtime, listener, routes, main, embedded, hub, paths: ws.paths, log }));
  const tasks: TickTask[] = [
    { everyMs: 1000, run: (now) => broker.expire(now) },
    ...controllerTasks,
    ...pushed.tasks,
    ...(statusSampler ? [statusSampler.task()] : []),
    ...(graphql ? [{ everyMs: 1000, run: (now: number) => graphql.tick(now) }] : []),
  ];
  if (sse) {
    // Stopped after the node closed every session, before the listeners cut open connections.
    services.add({ name: "sse", async start() {}, shutdown: (deadline) => sse.drain(deadline) });
    tasks.push({ everyMs: 0, run: (now) => sse.tick(now) });
  }
  if (lp) {
    // like SSE: after the node answered every held poll with its server_restart
    services.add({ name: "long polling", async start() {}, shutdown: (deadline) => lp.drain(deadline) });
    tasks.push({ everyMs: 0, run: (now) => lp.tick(now) }, { everyMs: 1000, run: (now) => lp.sweep(now) });
  }
  if (ds) tasks.push({ everyMs: 0, run: (now) => ds.tick(now) });
  services.add(
    nodeService(node, controller, tasks, { slowDrainMs: appConfig.fromConfig(config).slowDrainMs }),
  );
  for (const b of broadcasters) services.add(b);
  services.add(delayService(appConfig.fromConfig(config).shutdownDelayMs, log));
  return { node, hub, metrics, services, main, sse };
}

async function buildController(
  rpc: rpcConfig.Options,
  config: Config,
  metrics: Metrics,
  logger: Logger,
  runtime: Runtime,
): Promise<{ controller: Controller; tasks: TickTask[] }> {
  const log = logger.with({ context: "main" });
  let app: Controller;
  let tasks: TickTask[] = [];
  if (rpc.impl === "none") {
    log.info("no RPC configured");
    app = new NullController();
  } else {
    // Loaded only with RPC: protobuf, the generated messages and the transports weigh ~10 MiB idle.
    const { createRpcController } = await import("../rpc/factory.ts");
    // logs "RPC controller initialized: <host> (..., impl: grpc|http, ...)" once started
    const setup = createRpcController(rpc, metrics, logger, {
      http2MaxStreamsPerSession: runtime.http2MaxStreamsPerSession,
    });
    app = setup.controller;
    tasks = setup.tasks;
  }
  const routed = buildChannelRouter(app, streamsConfig.fromConfig(config), log);
  return { controller: wrapIdentity(routed, identityConfig.fromConfig(config), log), tasks };
}
