import type { ConnectResult, Controller } from "../node/controller.ts";
import { welcomeMessage } from "../protocols/actioncable.ts";
import { IdentifiableController, type Identifier } from "./identifier.ts";

/**
 * `--noauth` / `--public`: every connection is accepted and identified by its session id, which is
 * what a remote disconnect then targets (`{"sid":"..."}`), as in anycable-go.
 */
export function publicIdentifiers(sid: string): string {
  return JSON.stringify({ sid });
}

export class PublicIdentifier implements Identifier {
  async identify(sid: string): Promise<ConnectResult> {
    return {
      status: "success",
      identifiers: publicIdentifiers(sid),
      transmissions: [welcomeMessage(sid)],
    };
  }
}

/** Wraps a controller so that authentication is answered locally; commands still go to `inner`. */
export class PublicIdentityController extends IdentifiableController {
  constructor(inner: Controller) {
    super(inner, new PublicIdentifier());
  }
}
