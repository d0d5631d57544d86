import type { CommandResult, ConnectResult, Controller, SessionEnv } from "./controller.ts";

/** The `channel` of a subscription identifier, or "" when the identifier is not a JSON object. */
export function channelOf(identifier: string): string {
  try {
    const parsed = JSON.parse(identifier) as unknown;
    if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) {
      const channel = (parsed as Record<string, unknown>).channel;
      return typeof channel === "string" ? channel : "";
    }
  } catch {
    // not JSON: no channel, goes to the default controller
  }
  return "";
}

/**
 * Routes channel commands to built-in controllers (`$pubsub`, Turbo, CableReady) by channel name,
 * everything else (and authentication) to the default controller — anycable-go's channels router.
 */
export class ChannelRouter implements Controller {
  private readonly routes = new Map<string, Controller>();

  constructor(private readonly fallback: Controller) {}

  route(channel: string, controller: Controller): void {
    this.routes.set(channel, controller);
  }

  routeNames(): string[] {
    return [...this.routes.keys()];
  }

  private pick(identifier: string): Controller {
    if (this.routes.size === 0) return this.fallback;
    return this.routes.get(channelOf(identifier)) ?? this.fallback;
  }

  authenticate(sid: string, env: SessionEnv, signal?: AbortSignal): Promise<ConnectResult | null> {
    return this.fallback.authenticate(sid, env, signal);
  }
  subscribe(
    sid: string,
    env: SessionEnv,
    ids: string,
    identifier: string,
    signal?: AbortSignal,
  ): Promise<CommandResult | null> {
    return this.pick(identifier).subscribe(sid, env, ids, identifier, signal);
  }
  unsubscribe(
    sid: string,
    env: SessionEnv,
    ids: string,
    identifier: string,
    signal?: AbortSignal,
  ): Promise<CommandResult | null> {
    return this.pick(identifier).unsubscribe(sid, env, ids, identifier, signal);
  }
  perform(
    sid: string,
    env: SessionEnv,
    ids: string,
    identifier: string,
    data: string,
    signal?: AbortSignal,
  ): Promise<CommandResult | null> {
    return this.pick(identifier).perform(sid, env, ids, identifier, data, signal);
  }
  disconnect(sid: string, env: SessionEnv, ids: string, subscriptions: string[]): Promise<void> {
    return this.fallback.disconnect(sid, env, ids, subscriptions);
  }
  async start(): Promise<void> {
    await this.fallback.start?.();
  }
  async shutdown(): Promise<void> {
    await this.fallback.shutdown?.();
  }
}
