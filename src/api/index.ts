// The REST API's routes and startup lines; src/server.ts decides which listener serves them.
import { Hono } from "hono";
import type { PublicationHandler } from "../broadcast/broadcaster.ts";
import type { Broker } from "../broker/broker.ts";
import type { Logger } from "../log/logger.ts";
import type { Options } from "./options.ts";
import { createPresenceHandler } from "./presence.ts";
import { createPublishHandler } from "./publish.ts";

export type ApiSettings = Options;

export const API_DISABLED_LINE =
  "REST API is not served: it would be unprotected (set --secret or --api_secret, a dedicated --api_port, or --public)";

export function createApiApp(
  handler: PublicationHandler,
  broker: Broker,
  api: ApiSettings,
  logger: Logger,
  maxBodyBytes?: number,
): Hono {
  const app = new Hono();
  const publish = createPublishHandler(handler, { secret: api.secret, cors: api.cors, maxBodyBytes }, logger);
  // Exact path and every method: the handler answers non-POST with 422, as anycable-go does.
  app.all(`${api.path}/publish`, (c) => publish(c.req.raw));
  const presence = createPresenceHandler(broker, api.secret, logger);
  app.all(`${api.path}/presence/*`, (c) => presence(c.req.raw));
  return app;
}

/** anycable-go's announcement, `address` being scheme://host:port of the serving listener. */
export function apiStartupLines(api: ApiSettings, address: string): string[] {
  let via = api.secret ? "authorization required" : "no authorization";
  if (api.cors) via += ", CORS enabled";
  const lines = [`Handle API requests at ${address}${api.path} (${via})`];
  if (!api.secret) lines.push("API server is running without authentication");
  return lines;
}
