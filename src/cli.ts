// The command line: config -> composed cable -> listeners, signals, exit codes.
import { composeCable } from "./app/cable.ts";
import * as appConfig from "./app/options.ts";
import { loadConfig, unservedOptions } from "./config/index.ts";
import { logPresets } from "./config/presets.ts";
import { Logger } from "./log/logger.ts";
import * as logConfig from "./log/options.ts";
import type { Runtime } from "./runtime/types.ts";
import { ANYCABLE_GO_COMPAT, VERSION } from "./version.ts";

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
  const logOpts = logConfig.fromConfig(config);
  const logger = new Logger(logOpts.level, logOpts.format, { nodeid: config.derived.nodeId });
  const log = logger.with({ context: "main" });
  for (const w of loaded.warnings) log.warn(w);
  logPresets(logger, config);
  if (config.debug) log.debug("🔧 🔧 🔧 Debug mode is on 🔧 🔧 🔧");
  log.info(
    `Starting AnyCable ${VERSION} (anycable-ts, anycable-go ${ANYCABLE_GO_COMPAT} compatible; runtime: ${runtime.name}, pid: ${runtime.pid()})`,
  );
  if (config.derived.configPath) log.info(`Using configuration from file: ${config.derived.configPath}`);
  if (config.public) log.warn("Server is running in the public mode");
  for (const name of unservedOptions(config))
    log.warn(`option ${name} is accepted but not served yet by anycable-ts`);

  const { shutdownTimeoutMs, shutdownDelayMs } = appConfig.fromConfig(config);
  // A service that cannot go on (e.g. Redis unreachable past its attempts) ends the process, as
  // anycable-go's runner does with an error on its channel.
  const fatal = (err: Error) => {
    log.error(`fatal: ${err.message}`);
    runtime.exit(1);
  };
  let services: Awaited<ReturnType<typeof composeCable>>["services"];
  try {
    const cable = await composeCable({ config, runtime, logger, embedded: false });
    services = cable.services;
    await services.start(fatal);
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
    const budget = shutdownTimeoutMs + shutdownDelayMs;
    const deadline = setTimeout(() => {
      log.warn("graceful shutdown timed out");
      runtime.exit(0);
    }, budget);
    services.shutdown(AbortSignal.timeout(budget)).then(
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
