// Wires node, hub, controllers, HTTP routes and the runtime's listeners from ServerSettings.
import { Hono } from "hono";
import { API_DISABLED_LINE, apiStartupLines, createApiApp } from "./api/index.ts";
import { createBroadcastHandler } from "./broadcast/http.ts";
import type { RedisBroadcaster } from "./broadcast/redis.ts";
import { extractHeaders, nanoid, originChecker, pathMatcher } from "./http/request.ts";
import { Hub } from "./hub/hub.ts";
import { wrapIdentity } from "./identity/factory.ts";
import { jwtHeaderName } from "./identity/jwt.ts";
import { tokenFromUpgrade } from "./identity/token.ts";
import type { Logger } from "./log/logger.ts";
import { Metrics, prometheusText } from "./metrics/registry.ts";
import type { Controller } from "./node/controller.ts";
import { Node } from "./node/node.ts";
import { NullController } from "./node/null_controller.ts";
import type { Session } from "./node/session.ts";
import type { ConnectionRequest } from "./node/socket.ts";
import { selectProtocol } from "./protocols/actioncable.ts";
import type { RunningServer, Runtime, Upgrade } from "./runtime/types.ts";
import type { ServerSettings } from "./settings.ts";
import { buildChannelRouter } from "./streams/factory.ts";
import { VERSION_STRING } from "./version.ts";

const HEALTH_BODY = "Ah, ha, ha, ha, stayin' alive, stayin' alive.";
const TICK_MS = 250;

interface SocketContext {
  request: ConnectionRequest;
  session?: Session;
}

export interface RunningCable {
  node: Node;
  metrics: Metrics;
  /** Port of the main (WebSocket) listener, useful when it was 0. */
  port: number;
  shutdown(): Promise<void>;
}

async function buildController(
  settings: ServerSettings,
  metrics: Metrics,
  logger: Logger,
  log: Logger,
  http2SessionPerCall: boolean,
): Promise<Controller> {
  let app: Controller;
  if (settings.rpc.impl === "none") {
    log.info("no RPC configured");
    app = new NullController();
  } else {
    // Loaded only with RPC: protobuf, the generated messages and the transports weigh ~10 MiB idle.
    const { createRpcController } = await import("./rpc/factory.ts");
    // logs "RPC controller initialized: <host> (..., impl: grpc|http, ...)" once started
    app = createRpcController(settings, metrics, logger, { http2SessionPerCall });
  }
  return wrapIdentity(buildChannelRouter(app, settings, log), settings, log);
}

export async function startCable(
  settings: ServerSettings,
  runtime: Runtime,
  logger: Logger,
): Promise<RunningCable> {
  const log = logger.with({ context: "main" });
  const metrics = new Metrics();
  const hub = new Hub();
  const controller = await buildController(settings, metrics, logger, log, runtime.http2SessionPerCall);
  await controller.start?.();
  const node = new Node({
    controller,
    hub,
    metrics,
    logger,
    pingIntervalMs: settings.pingIntervalMs,
    pingPrecision: settings.pingPrecision,
    nativePings: settings.nativePings,
    maxPendingBytes: settings.maxPendingBytes,
    writeTimeoutMs: settings.writeTimeoutMs,
    disconnectMode: settings.disconnectMode,
    cancellableCalls: settings.rpc.impl !== "none",
  });

  // One Hono app per port, like anycable-go's one HTTP server per port.
  const apps = new Map<number, Hono>();
  const appFor = (port: number): Hono => {
    let app = apps.get(port);
    if (!app) {
      app = new Hono();
      apps.set(port, app);
    }
    return app;
  };
  const scheme = settings.tls ? "https" : "http";
  const address = (port: number, host = settings.host) => `${scheme}://${host}:${port}`;

  appFor(settings.port).all(settings.healthPath, (c) => c.text(HEALTH_BODY));

  if (settings.broadcast.enabled) {
    const handler = createBroadcastHandler(node, settings.broadcast.key, logger);
    appFor(settings.broadcast.port).all(settings.broadcast.path, (c) => handler(c.req.raw));
    const auth = settings.broadcast.key ? "authorization required" : "no authorization";
    log.info(
      `Accept broadcast requests at ${address(settings.broadcast.port)}${settings.broadcast.path} (${auth})`,
    );
  }

  // REST API: on its port's app, or on a listener of its own when api.host differs (as anycable-go).
  const apiApp = settings.api.enabled ? createApiApp(node, settings.api, logger) : undefined;
  const separateApiHost = settings.api.host !== "" && settings.api.host !== settings.host;
  if (apiApp && !separateApiHost) appFor(settings.api.port).route("/", apiApp);
  if (!apiApp) log.info(API_DISABLED_LINE);

  let redisBroadcaster: RedisBroadcaster | undefined;
  if (settings.broadcast.redis) {
    // Loaded only when configured: the Redis client alone adds ~13 MiB to an idle server.
    const { RedisBroadcaster } = await import("./broadcast/redis.ts");
    redisBroadcaster = new RedisBroadcaster(settings.broadcast.redis, node, logger, (err) => {
      log.error(`broadcasting stopped: ${err.message}`);
      runtime.exit(1);
    });
    redisBroadcaster.start();
    log.info(`Accept broadcasts from Redis channel ${settings.broadcast.redis.channel}`);
  }

  let metricsServer: RunningServer | undefined;
  const metricsApp = settings.metrics.path ? new Hono() : undefined;
  if (metricsApp) {
    metricsApp.get(settings.metrics.path, (c) => c.text(prometheusText(metrics)));
  }
  const separateMetricsHost = settings.metrics.host !== "" && settings.metrics.host !== settings.host;
  if (metricsApp && !separateMetricsHost) appFor(settings.metrics.port).route("/", metricsApp);

  // With JWT on, a token sent as X-<param> or as an anycable-token.<jwt> sub-protocol travels in
  // the env headers under x-<param>, where anycable-go's headers extractor puts it too.
  const jwtHeader = settings.identity.jwtSecret ? jwtHeaderName(settings.identity.jwtParam) : "";

  const isWsPath = pathMatcher(settings.paths);
  const originAllowed = originChecker(settings.allowedOrigins);

  const handleWs = (req: Request, url: URL, remote: string): Response | Upgrade<SocketContext> => {
    if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return new Response("Bad Request\n", { status: 400 });
    }
    if (!originAllowed(req.headers.get("origin"))) return new Response("Forbidden\n", { status: 403 });
    if (node.isShuttingDown) return new Response("Service Unavailable\n", { status: 503 });
    if (settings.maxConn > 0 && node.size >= settings.maxConn) {
      return new Response("Too many connections\n", { status: 503 });
    }
    const protocol = selectProtocol(req.headers.get("sec-websocket-protocol"));
    const pi = url.searchParams.get("pi");
    let pingIntervalSec: number | undefined;
    if (pi !== null && pi !== "") {
      if (/^-?\d+$/.test(pi)) pingIntervalSec = Number(pi);
      else log.warn("invalid ping interval value, must be integer", { val: pi });
    }
    const ptp = url.searchParams.get("ptp");
    const request: ConnectionRequest = {
      sid: req.headers.get("x-request-id") || nanoid(),
      url: req.url,
      headers: extractHeaders(req.headers, settings.proxyHeaders, settings.proxyCookies, remote),
      protocol,
      pingIntervalSec,
      pingPrecision: ptp ? ptp : undefined,
    };
    if (jwtHeader) {
      const token = tokenFromUpgrade(req.headers, jwtHeader);
      if (token) request.headers[jwtHeader] = token;
    }
    return {
      kind: "upgrade",
      data: { request },
      protocol,
      headers: { "X-AnyCable-Version": VERSION_STRING },
    };
  };

  const servers: RunningServer[] = [];
  const mainApp = appFor(settings.port);
  const main = await runtime.serve<SocketContext>({
    hostname: settings.host,
    port: settings.port,
    tls: settings.tls,
    maxMessageSize: settings.maxMessageSize,
    nativePingIntervalMs: settings.nativePings ? settings.pingIntervalMs : undefined,
    handle: (req, remote) => {
      const url = new URL(req.url);
      if (isWsPath(url.pathname)) return handleWs(req, url, remote);
      return mainApp.fetch(req);
    },
    websocket: {
      open(socket, ctx) {
        ctx.session = node.open(ctx.request, socket);
      },
      message(ctx, frame, size) {
        if (ctx.session) node.message(ctx.session, frame, size);
      },
      close(ctx) {
        if (ctx.session) node.closed(ctx.session);
      },
      drain(ctx) {
        if (ctx.session) node.drained(ctx.session);
      },
    },
  });
  servers.push(main);
  const publish = main.publish;
  if (publish) hub.setNativeFanout({ publish });
  const mainPort = main.port;
  for (const path of settings.paths) log.info(`Handle WebSocket connections at ${address(mainPort)}${path}`);
  log.info(`Handle health requests at ${address(mainPort)}${settings.healthPath}`);

  for (const [port, app] of apps) {
    if (port === settings.port) continue;
    servers.push(
      await runtime.serve({
        hostname: settings.host,
        port,
        tls: settings.tls,
        maxMessageSize: 0,
        handle: (r) => app.fetch(r),
      }),
    );
  }
  if (metricsApp) {
    const host = separateMetricsHost ? settings.metrics.host : settings.host;
    if (separateMetricsHost) {
      metricsServer = await runtime.serve({
        hostname: host,
        port: settings.metrics.port,
        maxMessageSize: 0,
        handle: (r) => metricsApp.fetch(r),
      });
      servers.push(metricsServer);
    }
    log.info(
      `Serve metrics at ${address(settings.metrics.port === settings.port ? mainPort : settings.metrics.port, host)}${settings.metrics.path}`,
    );
  }
  if (apiApp) {
    const api = settings.api;
    const host = separateApiHost ? api.host : settings.host;
    if (separateApiHost) {
      servers.push(
        await runtime.serve({
          hostname: host,
          port: api.port,
          tls: settings.tls,
          maxMessageSize: 0,
          handle: (r) => apiApp.fetch(r),
        }),
      );
    }
    const port = api.port === settings.port ? mainPort : api.port;
    for (const line of apiStartupLines(api, address(port, host))) log.info(line);
  }

  const ticker = setInterval(() => node.tick(Date.now()), TICK_MS);

  let shutdownPromise: Promise<void> | undefined;
  const shutdown = (): Promise<void> => {
    shutdownPromise ??= (async () => {
      if (settings.shutdownDelayMs > 0) {
        log.info(`Waiting ${settings.shutdownDelayMs / 1000}s before shutting down`);
        await new Promise((r) => setTimeout(r, settings.shutdownDelayMs));
      }
      await redisBroadcaster?.shutdown();
      await node.shutdown();
      clearInterval(ticker);
      await Promise.all(servers.map((s) => s.stop().catch(() => {})));
    })();
    return shutdownPromise;
  };

  return { node, metrics, port: mainPort, shutdown };
}
