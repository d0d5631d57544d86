// anycable-ts as a library: a cable mounted in an application's own Bun.serve, Deno.serve or Hono
// app, composed by the same root as the CLI (app/cable.ts) from the same option table.
//
//   const cable = createCable({ public: true, broadcast_adapter: "http" });
//   await cable.start();
//   Bun.serve({ fetch: (req, server) => cable.fetch(req, server), websocket: cable.websocket });
import { readFileSync } from "node:fs";
import { type Cable, composeCable } from "./app/cable.ts";
import * as appConfig from "./app/options.ts";
import { loadConfig } from "./config/index.ts";
import { logPresets } from "./config/presets.ts";
import type { Config } from "./config/schema.ts";
import { Logger, type LogSink } from "./log/logger.ts";
import * as logConfig from "./log/options.ts";
import * as nodeConfig from "./node/options.ts";
import { bunRuntime } from "./runtime/bun.ts";
import type { HandlerSpec, MountedHandler, Runtime } from "./runtime/types.ts";
import type { SocketContext } from "./transports/ws/handler.ts";
import * as wsConfig from "./transports/ws/options.ts";
import { ANYCABLE_GO_COMPAT, VERSION } from "./version.ts";

export type { Config } from "./config/schema.ts";

/** Option names as the CLI spells them (`max_conn` or `max-conn`), values as in the TOML file. */
export type CableOptions = Readonly<Record<string, string | number | boolean | readonly string[]>>;

export interface CreateCableExtras {
  /** Environment read for ANYCABLE_* variables (default: none; pass process.env to honour them). */
  env?: Record<string, string | undefined>;
  /** Where log lines go (default: stdout). */
  log?: LogSink;
  /** A backend failed for good (e.g. Redis reconnects exhausted). Default: log it and shut down. */
  onFatal?: (err: Error) => void;
}

export interface EmbeddedCable {
  /**
   * Answers the cable's routes on the main port: WebSocket upgrades at `path` (default /cable),
   * `health_path`, and HTTP broadcast / API / metrics when their port is the main `port`. Other
   * requests get 404. Pass Bun's server or Deno's ServeHandlerInfo as the second argument.
   */
  fetch(req: Request, server?: unknown): Response | Promise<Response>;
  /** Bun's WebSocket handler object for Bun.serve({ websocket }); undefined under Deno. */
  readonly websocket: object | undefined;
  readonly config: Config;
  /** Starts the services (and listeners for routes configured on other ports). */
  start(): Promise<void>;
  /** Disconnects clients with `server_restart` and stops everything, in reverse start order. */
  shutdown(): Promise<void>;
}

/** Throws an Error naming the offending option when an option or its value is invalid. */
export function createCable(options: CableOptions = {}, extras: CreateCableExtras = {}): EmbeddedCable {
  const explicitFile = options.config_path !== undefined || options["config-path"] !== undefined;
  const loaded = loadConfig({
    argv: explicitFile ? [] : ["--ignore-config-path"],
    values: options,
    env: extras.env ?? {},
    readFile: (path) => {
      try {
        return readFileSync(path, "utf8");
      } catch {
        return undefined;
      }
    },
  });
  if (loaded.kind === "error") throw new Error(`anycable-ts: ${loaded.message}`);
  if (loaded.kind === "exit") throw new Error("anycable-ts: print_config is for the command line");
  const config = loaded.config;
  const logOpts = logConfig.fromConfig(config);
  const logger = new Logger(logOpts.level, logOpts.format, { nodeid: config.derived.nodeId }, extras.log);
  for (const w of loaded.warnings) logger.with({ context: "main" }).warn(w);
  logPresets(logger, config);

  let cable: Cable | undefined;
  let starting: Promise<void> | undefined;
  let stopping: Promise<void> | undefined;
  const notStarted = () => new Response("anycable-ts: cable not started\n", { status: 503 });
  // Bun needs its WebSocket handler object before the application's server exists, so the spec
  // is mounted now and forwards to the cable composed in start().
  const ws = wsConfig.fromConfig(config);
  const nodeOpts = nodeConfig.fromConfig(config);
  const spec: HandlerSpec<SocketContext> = {
    maxMessageSize: ws.maxMessageSize,
    compression: ws.compression,
    nativePingIntervalMs: nodeOpts.nativePings ? nodeOpts.pingIntervalMs : undefined,
    handle: (req, remote) => (cable ? cable.main.handle(req, remote) : notStarted()),
    websocket: {
      open: (socket, ctx) => cable?.main.websocket?.open(socket, ctx),
      message: (ctx, frame, size) => cable?.main.websocket?.message(ctx, frame, size),
      close: (ctx, code, reason) => cable?.main.websocket?.close(ctx, code, reason),
      drain: (ctx) => cable?.main.websocket?.drain(ctx),
    },
  };
  const onBun = "Bun" in globalThis;
  let runtime: Runtime | undefined;
  let mounted: MountedHandler | undefined = onBun ? bunRuntime.mount(spec) : undefined;

  const shutdown = (): Promise<void> => {
    stopping ??= (async () => {
      await starting?.catch(() => {});
      const { shutdownTimeoutMs, shutdownDelayMs } = appConfig.fromConfig(config);
      await cable?.services.shutdown(AbortSignal.timeout(shutdownTimeoutMs + shutdownDelayMs));
    })();
    return stopping;
  };
  const onFatal =
    extras.onFatal ??
    ((err: Error) => {
      logger.with({ context: "main" }).error(`fatal: ${err.message}`);
      void shutdown();
    });

  return {
    config,
    websocket: mounted?.websocket,
    fetch(req, server) {
      if (!mounted || !cable) return notStarted();
      return mounted.fetch(req, server);
    },
    start() {
      starting ??= (async () => {
        logger
          .with({ context: "main" })
          .info(
            `Starting embedded AnyCable ${VERSION} (anycable-ts, anycable-go ${ANYCABLE_GO_COMPAT} compatible)`,
          );
        if (onBun) runtime = bunRuntime;
        else {
          // A computed specifier keeps Bun-typed tooling (tsc, bun build) from pulling in Deno's types.
          const denoAdapter = "./runtime/deno.ts";
          runtime = ((await import(denoAdapter)) as { denoRuntime: Runtime }).denoRuntime;
          mounted = runtime.mount(spec);
          if (ws.compression) {
            logger
              .with({ context: "main" })
              .warn(
                "--enable_ws_compression is not served in Deno.serve (Deno.upgradeWebSocket has no compression)",
              );
          }
        }
        const composed = await composeCable({ config, runtime, logger, embedded: true });
        if (mounted?.publish) composed.hub.setNativeFanout({ publish: mounted.publish });
        await composed.services.start(onFatal);
        cable = composed;
      })();
      return starting;
    },
    shutdown,
  };
}
