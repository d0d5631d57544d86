import type {
  ChannelContext,
  CommandResult,
  ConnectionContext,
  ConnectResult,
  Controller,
} from "./controller.ts";

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

  authenticate(ctx: ConnectionContext): Promise<ConnectResult | null> {
    return this.inner.authenticate(ctx);
  }
  subscribe(ctx: ChannelContext): Promise<CommandResult | null> {
    return this.targetFor(ctx.identifier).subscribe(ctx);
  }
  unsubscribe(ctx: ChannelContext): Promise<CommandResult | null> {
    return this.targetFor(ctx.identifier).unsubscribe(ctx);
  }
  perform(ctx: ChannelContext, data: string): Promise<CommandResult | null> {
    return this.targetFor(ctx.identifier).perform(ctx, data);
  }
  disconnect(ctx: ConnectionContext, subscriptions: string[]): Promise<void> {
    return this.inner.disconnect(ctx, subscriptions);
  }
  async start(): Promise<void> {
    await this.inner.start?.();
  }
  async shutdown(): Promise<void> {
    await this.inner.shutdown?.();
  }
}
