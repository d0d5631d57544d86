// Connection identification answered by the server itself (JWT, public mode) in front of the
// application's controller: anycable-go's Identifier pipeline and IdentifiableController.
import type { CommandResult, ConnectResult, Controller, SessionEnv } from "../node/controller.ts";

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
export class IdentifiableController implements Controller {
  constructor(
    private readonly inner: Controller,
    private readonly identifier: Identifier,
  ) {}

  async authenticate(sid: string, env: SessionEnv, signal?: AbortSignal): Promise<ConnectResult | null> {
    const res = await this.identifier.identify(sid, env);
    if (!res) return this.inner.authenticate(sid, env, signal);
    // Identified locally: there is nothing for the application's Disconnect to clean up.
    return { ...res, cstate: res.cstate ?? {}, disconnectInterest: -1 };
  }
  subscribe(
    sid: string,
    env: SessionEnv,
    ids: string,
    identifier: string,
    signal?: AbortSignal,
  ): Promise<CommandResult | null> {
    return this.inner.subscribe(sid, env, ids, identifier, signal);
  }
  unsubscribe(
    sid: string,
    env: SessionEnv,
    ids: string,
    identifier: string,
    signal?: AbortSignal,
  ): Promise<CommandResult | null> {
    return this.inner.unsubscribe(sid, env, ids, identifier, signal);
  }
  perform(
    sid: string,
    env: SessionEnv,
    ids: string,
    identifier: string,
    data: string,
    signal?: AbortSignal,
  ): Promise<CommandResult | null> {
    return this.inner.perform(sid, env, ids, identifier, data, signal);
  }
  disconnect(sid: string, env: SessionEnv, ids: string, subscriptions: string[]): Promise<void> {
    return this.inner.disconnect(sid, env, ids, subscriptions);
  }
  start(): Promise<void> {
    return this.inner.start?.() ?? Promise.resolve();
  }
  shutdown(): Promise<void> {
    return this.inner.shutdown?.() ?? Promise.resolve();
  }
}
