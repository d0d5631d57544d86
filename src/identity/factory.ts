import type { Logger } from "../log/logger.ts";
import type { Controller } from "../node/controller.ts";
import type { ServerSettings } from "../settings.ts";
import { PublicIdentityController } from "./public.ts";

/** Connection identification answered locally (public mode) before the application is asked. */
export function wrapIdentity(inner: Controller, settings: ServerSettings, log: Logger): Controller {
  if (!settings.skipAuth) return inner;
  log.info("connection authentication is disabled");
  return new PublicIdentityController(inner);
}
