// The services of a cable that are not backends: the node with its ticker, the listeners, and
// the shutdown delay.

import type * as listenerConfig from "../http/options.ts";
import type { Hub } from "../hub/hub.ts";
import type { Logger } from "../log/logger.ts";
import type { Controller } from "../node/controller.ts";
import type { Node } from "../node/node.ts";
import type { HandlerSpec, RunningServer, Runtime } from "../runtime/types.ts";
import type { SocketContext } from "../transports/ws/handler.ts";
import type { Routes } from "./routes.ts";
import type { Service } from "./service.ts";

const TICK_MS = 250;

/** Work the one ticker does besides the node's: e.g. the broker's expiry, once a second. */
export interface TickTask {
  everyMs: number;
  run(nowMs: number): void;
}

/**
 * The node: the controller chain starts first, and the one ticker drives pings, slow-client
 * checks and the tasks of other parts (no module, and no connection, has a timer of its own).
 */
export function nodeService(
  node: Node,
  controller: Controller,
  tasks: TickTask[] = [],
  opts: { slowDrainMs?: number } = {},
): Service {
  let ticker: ReturnType<typeof setInterval> | undefined;
  const due = tasks.map(() => 0);
  return {
    name: "node",
    async start() {
      await controller.start?.();
      ticker = setInterval(() => {
        const now = Date.now();
        node.tick(now);
        tasks.forEach((task, i) => {
          if (now < due[i]!) return;
          due[i] = now + task.everyMs;
          task.run(now);
        });
      }, TICK_MS);
    },
    async shutdown(deadline) {
      // Every client gets `server_restart` first; the controller then flushes its disconnect queue.
      await node.shutdown({ drainMs: opts.slowDrainMs, signal: deadline });
      clearInterval(ticker);
    },
  };
}

/** Waits --shutdown_delay before anything else stops (it is the last service, stopped first). */
export function delayService(delayMs: number, log: Logger): Service {
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

export interface ListenersOptions {
  runtime: Runtime;
  listener: listenerConfig.Options;
  routes: Routes;
  /** The main port's handler; bound here unless an embedding application serves it. */
  main: HandlerSpec<SocketContext>;
  embedded: boolean;
  hub: Hub;
  paths: string[];
  log: Logger;
}

/** Binds the main listener (CLI only) and the extra ones, then prints the start-up lines. */
export function listenersService(o: ListenersOptions): Service {
  const servers: RunningServer[] = [];
  return {
    name: "listeners",
    async start() {
      if (!o.embedded) {
        const main = await o.runtime.serve({
          ...o.main,
          hostname: o.listener.host,
          port: o.listener.port,
          tls: o.listener.tls,
          log: o.log,
        });
        servers.push(main);
        o.routes.mainPort = main.port;
        if (main.publish) o.hub.setNativeFanout({ publish: main.publish });
        const at = o.routes.address(o.listener.port);
        for (const path of o.paths) o.log.info(`Handle WebSocket connections at ${at}${path}`);
        o.log.info(`Handle health requests at ${at}${o.listener.healthPath}`);
      } else {
        o.log.info(
          `Embedded: WebSocket connections at ${o.paths.join(", ")}, health requests at ${o.listener.healthPath}`,
        );
      }
      for (const e of o.routes.extraListeners()) {
        servers.push(
          await o.runtime.serve({
            hostname: e.host,
            port: e.port,
            tls: e.tls ? o.listener.tls : undefined,
            maxMessageSize: 0,
            handle: (r) => e.fetch(r),
            log: o.log,
          }),
        );
      }
      for (const line of o.routes.startupLines()) o.log.info(line);
    },
    async shutdown() {
      await Promise.all(servers.map((s) => s.stop().catch(() => {})));
      servers.length = 0;
    },
  };
}
