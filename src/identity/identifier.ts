// Connection identification answered by the server itself (JWT, public mode) in front of the
// application's controller: anycable-go's Identifier pipeline and IdentifiableController.

import type { ConnectionContext, ConnectResult, Controller, SessionEnv } from "../node/controller.ts";
import { ForwardingController } from "../node/forwarding_controller.ts";

/** A resolved `null` means "no opinion": the next identifier (or the application) decides. */
export interface Identifier {
  identify(sid: string, env: SessionEnv): Promise<ConnectResult | null>;
}

/** Asks each identifier in turn; the first answer wins. */
export class IdentifierPipeline implements Identifier {
  constructor(private readonly identifiers: readonly Identifier[]) {}

  async identify(sid: string, env: SessionEnv): Promise<ConnectResult | null> {
    for (const identifier of this.identifiers) {
      const res = await identifier.identify(sid, env);
      if (res) return res;
    }
    return null;
  }
}

/**
 * Authentication goes to the identifier first and falls through to `inner` (RPC Connect, or the
 * NullController's refusal under --norpc) only when it has no opinion. Everything else is `inner`'s.
 */
export class IdentifiableController extends ForwardingController {
  constructor(
    inner: Controller,
    private readonly identifier: Identifier,
  ) {
    super(inner);
  }

  override async authenticate(ctx: ConnectionContext): Promise<ConnectResult | null> {
    const res = await this.identifier.identify(ctx.sid, ctx.env);
    if (!res) return this.inner.authenticate(ctx);
    // Identified locally: there is nothing for the application's Disconnect to clean up.
    return { ...res, cstate: res.cstate ?? {}, disconnectInterest: -1 };
  }
}
