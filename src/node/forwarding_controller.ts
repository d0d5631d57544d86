import type { CommandResult, ConnectResult, Controller, SessionEnv } from "./controller.ts";

/**
 * Base for controllers that sit in front of another one (identity, channel router, disconnect
 * queue): every call goes to `targetFor(identifier)` unless a subclass overrides it, so each
 * wrapper only spells out what it changes.
 */
export abstract class ForwardingController implements Controller {
  constructor(protected readonly inner: Controller) {}

  /** Which controller handles commands for this subscription identifier. */
  protected targetFor(_identifier: string): Controller {
    return this.inner;
  }

  authenticate(sid: string, env: SessionEnv, signal?: AbortSignal): Promise<ConnectResult | null> {
    return this.inner.authenticate(sid, env, signal);
  }
  subscribe(
    sid: string,
    env: SessionEnv,
    ids: string,
    identifier: string,
    signal?: AbortSignal,
  ): Promise<CommandResult | null> {
    return this.targetFor(identifier).subscribe(sid, env, ids, identifier, signal);
  }
  unsubscribe(
    sid: string,
    env: SessionEnv,
    ids: string,
    identifier: string,
    signal?: AbortSignal,
  ): Promise<CommandResult | null> {
    return this.targetFor(identifier).unsubscribe(sid, env, ids, identifier, signal);
  }
  perform(
    sid: string,
    env: SessionEnv,
    ids: string,
    identifier: string,
    data: string,
    signal?: AbortSignal,
  ): Promise<CommandResult | null> {
    return this.targetFor(identifier).perform(sid, env, ids, identifier, data, signal);
  }
  disconnect(sid: string, env: SessionEnv, ids: string, subscriptions: string[]): Promise<void> {
    return this.inner.disconnect(sid, env, ids, subscriptions);
  }
  async start(): Promise<void> {
    await this.inner.start?.();
  }
  async shutdown(): Promise<void> {
    await this.inner.shutdown?.();
  }
}
