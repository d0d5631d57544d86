// The `nats` broadcast adapter: publications arrive on a NATS subject (--nats_channel,
// `__anycable__`) as anycable-rb's nats adapter publishes them, the same JSON as HTTP broadcasts.
// Every node subscribes, so each publication goes to this node's clients only (fan-out), as
// anycable-go's legacy NATS broadcaster does.
import type { Subscription } from "@nats-io/transport-node";
import { compact, type Logger } from "../log/logger.ts";
import { NatsLink } from "../nats/connection.ts";
import type { Options as NatsOptions } from "../nats/options.ts";
import type { Broadcaster, PublicationHandler } from "./broadcaster.ts";
import { parsePublication } from "./publication.ts";

export interface NatsBroadcastOptions {
  nats: NatsOptions;
  channel: string;
}

export class NatsBroadcaster implements Broadcaster {
  readonly name = "broadcaster (nats)";
  readonly fanout = true;
  private readonly link: NatsLink;
  private readonly log: Logger;
  private sub?: Subscription;
  private stopped = false;

  constructor(
    private readonly opts: NatsBroadcastOptions,
    private readonly handler: PublicationHandler,
    logger: Logger,
  ) {
    this.log = logger.with({ context: "broadcast", provider: "nats" });
    this.link = new NatsLink(opts.nats, this.log, {
      // nats.js keeps the subscription across reconnects: it is made once
      connected: (nc) => {
        if (this.sub || this.stopped) return;
        this.sub = nc.subscribe(this.opts.channel, { callback: (_e, m) => this.receive(m.string()) });
        this.log.info("subscribing for broadcasts", { channel: this.opts.channel });
      },
    });
  }

  /** Connects in the background: the server does not wait for NATS to come up. */
  async start(fatal: (err: Error) => void): Promise<void> {
    this.stopped = false;
    this.link.start(fatal);
  }

  private receive(raw: string): void {
    if (this.stopped) return;
    const parsed = parsePublication(raw);
    if (!parsed.ok) {
      this.handler.handleInvalid();
      this.log.warn("failed to parse pubsub message", { data: compact(raw), error: parsed.error });
      return;
    }
    this.handler.handle(parsed.value);
  }

  async shutdown(): Promise<void> {
    this.stopped = true;
    this.sub = undefined;
    await this.link.shutdown();
  }
}
