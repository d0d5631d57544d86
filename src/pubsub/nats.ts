// NATS pub/sub, as anycable-go's (pubsub/nats.go): each stream is a NATS subject of the same
// name, subscribed to only while this node has local subscribers of it; remote commands travel on
// one internal subject (nats_pubsub.channel, `__anycable_internal__`) every node subscribes to.
// A node's own publications come back to it through its subscriptions, so each node delivers a
// publication once. Payloads are anycable-go's JSON (pubsub_json.ts), so anycable-go and
// anycable-ts nodes can share a cluster.
import { createHash } from "node:crypto";
import type { Subscription } from "@nats-io/transport-node";
import type { RemoteCommand, StreamMessage } from "../broadcast/publication.ts";
import { compact, type Logger } from "../log/logger.ts";
import { NatsLink } from "../nats/connection.ts";
import type { Options as NatsOptions } from "../nats/options.ts";
import type { PubSub, PubSubHandler } from "./pubsub.ts";
import { decodePubSubMessage, encodeRemoteCommand, encodeStreamMessage } from "./wire.ts";

export interface NatsPubSubOptions {
  nats: NatsOptions;
  /** The internal subject for remote commands. */
  channel: string;
}

/** Below the NATS server's default max_control_line (4 KiB) with room for `PUB <subject> <size>`. */
const MAX_SUBJECT_BYTES = 2048;
const HASHED_PREFIX = "__anycable_stream__.";
const UTF8 = new TextEncoder();

/**
 * The subject of a stream: the name itself, as anycable-go uses it, when NATS can carry it as a
 * literal subject. Names it cannot (whitespace, empty tokens, a `*` or `>` token that would
 * subscribe as a wildcard, longer than MAX_SUBJECT_BYTES) get a hashed subject; anycable-go could
 * not route those at all. The payload still names the stream.
 */
export function streamSubject(stream: string): string {
  if (isLiteralSubject(stream)) return stream;
  return HASHED_PREFIX + createHash("sha256").update(stream).digest("base64url");
}

function isLiteralSubject(s: string): boolean {
  if (s === "") return false;
  if (s.length * 3 > MAX_SUBJECT_BYTES && UTF8.encode(s).length > MAX_SUBJECT_BYTES) return false;
  if (/[\s\u0000-\u001f\u007f]/u.test(s)) return false;
  for (const token of s.split(".")) {
    if (token === "" || token === "*" || token === ">") return false;
  }
  return true;
}

export class NatsPubSub implements PubSub {
  readonly name = "pubsub (nats)";
  readonly multiNode = true;
  private readonly link: NatsLink;
  private readonly log: Logger;
  /** Streams this node has local subscribers for. */
  private readonly wanted = new Set<string>();
  /** NATS subscriptions made, by stream (while the connection is down they may lag `wanted`). */
  private readonly subs = new Map<string, Subscription>();
  private internal?: Subscription;

  constructor(
    private readonly opts: NatsPubSubOptions,
    private readonly handler: PubSubHandler,
    logger: Logger,
  ) {
    this.log = logger.with({ context: "pubsub" });
    this.link = new NatsLink(opts.nats, this.log, { connected: () => this.sync() });
  }

  async start(fatal: (err: Error) => void): Promise<void> {
    this.log.info(`Starting NATS pub/sub: ${this.link.serversText}`);
    this.link.start(fatal);
  }

  async shutdown(): Promise<void> {
    this.wanted.clear();
    this.subs.clear();
    this.internal = undefined;
    await this.link.shutdown();
  }

  subscribe(stream: string): void {
    if (this.wanted.has(stream)) return;
    this.wanted.add(stream);
    if (this.link.up) this.add(stream);
  }

  unsubscribe(stream: string): void {
    if (!this.wanted.delete(stream)) return;
    if (this.link.up) this.remove(stream);
  }

  /**
   * Through NATS to every node subscribed, this one included. While NATS is down it goes to this
   * node's clients only, at once: nothing is queued for later.
   */
  broadcast(message: StreamMessage): void {
    if (!this.publish(streamSubject(message.stream), encodeStreamMessage(message))) {
      this.handler.broadcast(message);
    }
  }

  broadcastCommand(command: RemoteCommand): void {
    if (!this.publish(this.opts.channel, encodeRemoteCommand(command))) this.handler.executeCommand(command);
  }

  /** Connected to NATS right now. */
  get connected(): boolean {
    return this.link.up;
  }

  /** Resolves once the subscriptions and publications made so far have reached the NATS server. */
  flush(): Promise<void> {
    return this.link.flush();
  }

  /** false when NATS is not connected (nothing was sent). */
  private publish(subject: string, payload: string): boolean {
    if (!this.link.up) {
      this.log.debug("NATS is not connected: delivering to this node only", { channel: subject });
      return false;
    }
    // refused by NATS (e.g. over max_payload): logged by the link, and not delivered anywhere
    this.link.publish(subject, payload);
    return true;
  }

  /** After (re)connecting: the NATS subscriptions become exactly the streams wanted now. */
  private sync(): void {
    const nc = this.link.connection;
    if (!nc) return;
    if (!this.internal) {
      this.internal = nc.subscribe(this.opts.channel, { callback: (_e, m) => this.receive(m.string()) });
    }
    for (const stream of this.subs.keys()) if (!this.wanted.has(stream)) this.remove(stream);
    for (const stream of this.wanted) if (!this.subs.has(stream)) this.add(stream);
  }

  private add(stream: string): void {
    const nc = this.link.connection;
    if (!nc || this.subs.has(stream)) return;
    try {
      const sub = nc.subscribe(streamSubject(stream), { callback: (_e, m) => this.receive(m.string()) });
      this.subs.set(stream, sub);
    } catch (err) {
      this.log.error("failed to subscribe", { stream, error: (err as Error).message });
    }
  }

  private remove(stream: string): void {
    const sub = this.subs.get(stream);
    if (!sub) return;
    this.subs.delete(stream);
    try {
      sub.unsubscribe();
    } catch {
      // the connection closed meanwhile: nothing left to unsubscribe
    }
  }

  private receive(raw: string): void {
    const msg = decodePubSubMessage(raw);
    switch (msg.kind) {
      case "broadcast":
        this.handler.broadcast(msg.message);
        break;
      case "command":
        this.handler.executeCommand(msg.command);
        break;
      case "ignored":
        this.log.debug("ignored pubsub message", { reason: msg.reason });
        break;
      default:
        this.log.warn("failed to parse pubsub message", { data: compact(raw), error: msg.error });
    }
  }
}
