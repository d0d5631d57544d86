import type { CommandResult, ConnectResult, Controller, SessionEnv } from "../node/controller.ts";
import { welcomeMessage } from "../protocols/actioncable.ts";

/**
 * `--noauth` / `--public`: every connection is accepted and identified by its session id, which is
 * what a remote disconnect then targets (`{"sid":"..."}`), as in anycable-go.
 */
export function publicIdentifiers(sid: string): string {
  return JSON.stringify({ sid });
}

/** Wraps a controller so that authentication is answered locally; commands still go to `inner`. */
export class PublicIdentityController implements Controller {
  constructor(private readonly inner: Controller) {}

  async authenticate(sid: string): Promise<ConnectResult> {
    return {
      status: "success",
      identifiers: publicIdentifiers(sid),
      transmissions: [welcomeMessage(sid)],
      cstate: {},
      disconnectInterest: -1,
    };
  }
  subscribe(sid: string, env: SessionEnv, ids: string, identifier: string): Promise<CommandResult | null> {
    return this.inner.subscribe(sid, env, ids, identifier);
  }
  unsubscribe(sid: string, env: SessionEnv, ids: string, identifier: string): Promise<CommandResult | null> {
    return this.inner.unsubscribe(sid, env, ids, identifier);
  }
  perform(
    sid: string,
    env: SessionEnv,
    ids: string,
    identifier: string,
    data: string,
  ): Promise<CommandResult | null> {
    return this.inner.perform(sid, env, ids, identifier, data);
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
