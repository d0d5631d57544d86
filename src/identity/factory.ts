import type { Logger } from "../log/logger.ts";
import type { Controller } from "../node/controller.ts";
import { IdentifiableController, type Identifier, IdentifierPipeline } from "./identifier.ts";
import { JwtIdentifier } from "./jwt.ts";
import type { Options } from "./options.ts";
import { PublicIdentifier } from "./public.ts";

/**
 * Connection identification answered locally before the application is asked, in anycable-go's
 * order: a JWT first (a bad token is refused even under --noauth), then public mode for tokenless
 * clients, then `inner` (RPC Connect, or the NullController's refusal under --norpc).
 */
export function wrapIdentity(inner: Controller, opts: Options, log: Logger): Controller {
  const identifiers: Identifier[] = [];
  const { jwtSecret, jwtParam, enforceJwt } = opts;
  if (jwtSecret !== "") {
    identifiers.push(new JwtIdentifier({ secret: jwtSecret, param: jwtParam, enforce: enforceJwt }, log));
    log.info(`JWT authentication is enabled (param: ${jwtParam}, enforced: ${enforceJwt})`);
  }
  if (opts.skipAuth) {
    identifiers.push(new PublicIdentifier());
    log.info("connection authentication is disabled");
  }
  if (identifiers.length === 0) return inner;
  const identifier = identifiers.length === 1 ? identifiers[0]! : new IdentifierPipeline(identifiers);
  return new IdentifiableController(inner, identifier);
}
