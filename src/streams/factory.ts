import type { Logger } from "../log/logger.ts";
import type { Controller } from "../node/controller.ts";
import { ChannelRouter } from "../node/router.ts";
import type { ServerSettings } from "../settings.ts";
import { PUBSUB_CHANNEL, StreamsController } from "./controller.ts";

/** Channels answered without RPC ($pubsub, ...) in front of the application's controller. */
export function buildChannelRouter(app: Controller, settings: ServerSettings, log: Logger): Controller {
  const router = new ChannelRouter(app);
  router.route(PUBSUB_CHANNEL, new StreamsController({ publicStreams: settings.publicStreams }));
  log.info(`Using channels router: ${router.routeNames().join(", ")}`);
  return router;
}
