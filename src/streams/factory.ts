import type { Logger } from "../log/logger.ts";
import type { Controller } from "../node/controller.ts";
import { ChannelRouter } from "../node/router.ts";
import {
  CABLE_READY_CHANNEL,
  CableReadyController,
  StreamsController,
  TURBO_CHANNEL,
  TurboStreamsController,
} from "./controller.ts";
import type { Options } from "./options.ts";

/**
 * Channels answered without RPC in front of the application's controller, as anycable-go's default
 * router: pub/sub streams always (unless the channel name is emptied), Turbo Streams and CableReady
 * only when their key resolves.
 */
export function buildChannelRouter(app: Controller, s: Options, log: Logger): Controller {
  const router = new ChannelRouter(app);
  if (s.pubsubChannel !== "") {
    router.route(
      s.pubsubChannel,
      new StreamsController({
        secret: s.secret,
        publicStreams: s.publicStreams,
        whisper: s.whisper,
        presence: s.presence,
      }),
    );
  }
  if (s.turboSecret !== "") router.route(TURBO_CHANNEL, new TurboStreamsController(s.turboSecret));
  if (s.cableReadySecret !== "") {
    router.route(CABLE_READY_CHANNEL, new CableReadyController(s.cableReadySecret));
  }
  if (router.routeNames().length === 0) return app;
  log.info(`Using channels router: ${router.routeNames().join(", ")}`);
  return router;
}
