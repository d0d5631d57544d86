import type { Controller } from "./controller.ts";
import { ForwardingController } from "./forwarding_controller.ts";

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
export class ChannelRouter extends ForwardingController {
  private readonly routes = new Map<string, Controller>();

  route(channel: string, controller: Controller): void {
    this.routes.set(channel, controller);
  }

  routeNames(): string[] {
    return [...this.routes.keys()];
  }

  protected override targetFor(identifier: string): Controller {
    if (this.routes.size === 0) return this.inner;
    return this.routes.get(channelOf(identifier)) ?? this.inner;
  }
}
