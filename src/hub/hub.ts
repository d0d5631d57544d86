// stream -> (identifier, encoding) -> subscribers. A publication is encoded once per (stream,
// identifier, encoding) and the same frame is handed to every subscriber of that group (or to
// the runtime's native topic fan-out, one topic per group).
import type { BroadcastMeta, Encoder, Frame } from "../protocols/encoder.ts";

export interface HubSubscriber {
  readonly sid: string;
  /** The subscriber's wire format: subscribers are grouped by it. */
  readonly encoder: Encoder;
  /** Queues one frame, already in the subscriber's format (a no-op once it is closed). */
  send(frame: Frame): void;
  /**
   * The connection can join the runtime's topics (a WebSocket on Bun): only then is it fanned out
   * to natively. Connections that cannot (SSE streams) are sent to one by one.
   */
  readonly joinsTopics?: boolean;
  /** Native topic membership (Bun); absent when the runtime has no native fan-out. */
  joinTopic?(topic: string): void;
  leaveTopic?(topic: string): void;
}

/** The runtime's own publish-to-topic (Bun's server.publish); every member gets identical bytes. */
export interface NativeFanout {
  publish(topic: string, frame: Frame): void;
}

export interface Publication {
  stream: string;
  /** JSON text of the message (see publicationDataJson). */
  dataJson: string;
  excludeSocket?: string;
  broadcastType?: string;
  /** Stream position assigned by the broker (absent with no broker). */
  offset?: number;
  epoch?: string;
}

/**
 * Told when this node gets its first subscriber of a stream and loses its last one, so pub/sub
 * subscribes the node only to the streams it serves (anycable-go keeps this count in its broker;
 * the hub already holds the streams, so it costs no second map here).
 */
export interface StreamsListener {
  streamAdded(stream: string): void;
  streamRemoved(stream: string): void;
}

/** What went through native fan-out (those frames never pass a subscriber's send()). */
export interface FanoutStats {
  native?: { messages: number; bytes: number };
  /** Groups whose encoder could not carry the payload (nothing was sent to them). */
  unencodable?: number;
}

/** Subscribers of one stream with one identifier and one encoding. */
interface Group {
  readonly identifier: string;
  readonly encoder: Encoder;
  readonly topic: string;
  /**
   * Published through the runtime's topic: its members join topics (WebSockets on Bun). Members
   * that cannot (SSE streams) have encoders of their own, so a group is one kind or the other.
   */
  readonly native: boolean;
  readonly subs: Set<HubSubscriber>;
}

/** JSON groups are keyed by the identifier alone (the common case); others add the encoder id. */
function groupKey(identifier: string, encoder: Encoder): string {
  return encoder.id === "json" ? identifier : `${identifier}\u0000${encoder.id}`;
}

export class Hub {
  private readonly streams = new Map<string, Map<string, Group>>();

  private native?: NativeFanout;
  private listener?: StreamsListener;
  /**
   * Subscriber sets that got a native publication since the node last looked: native fan-out
   * bypasses send(), so these sockets may hold unsent data the node has not seen.
   */
  private readonly nativelyPublished = new Set<Set<HubSubscriber>>();

  /** Must be set before the first subscription: topic membership is recorded at subscribe time. */
  setNativeFanout(native: NativeFanout | undefined): void {
    this.native = native;
  }

  setStreamsListener(listener: StreamsListener | undefined): void {
    this.listener = listener;
  }

  get streamsCount(): number {
    return this.streams.size;
  }

  subscribersCount(stream: string): number {
    const groups = this.streams.get(stream);
    if (!groups) return 0;
    let n = 0;
    for (const g of groups.values()) n += g.subs.size;
    return n;
  }

  subscribe(sub: HubSubscriber, stream: string, identifier: string): void {
    let groups = this.streams.get(stream);
    if (!groups) {
      groups = new Map();
      this.streams.set(stream, groups);
      this.listener?.streamAdded(stream);
    }
    const encoder = sub.encoder;
    const key = groupKey(identifier, encoder);
    let group = groups.get(key);
    if (!group) {
      // NUL cannot occur in a stream name sent as JSON text unescaped and keeps topics unique.
      const native = this.native !== undefined && sub.joinsTopics === true;
      group = { identifier, encoder, topic: `${stream}\u0000${key}`, native, subs: new Set() };
      groups.set(key, group);
    }
    if (group.subs.has(sub)) return;
    group.subs.add(sub);
    if (group.native) sub.joinTopic?.(group.topic);
  }

  unsubscribe(sub: HubSubscriber, stream: string, identifier: string): void {
    const groups = this.streams.get(stream);
    const key = groupKey(identifier, sub.encoder);
    const group = groups?.get(key);
    if (!groups || !group) return;
    if (!group.subs.delete(sub)) return;
    if (group.native) sub.leaveTopic?.(group.topic);
    if (group.subs.size === 0) {
      groups.delete(key);
      if (groups.size === 0) {
        this.streams.delete(stream);
        this.listener?.streamRemoved(stream);
      }
    }
  }

  /** Hands every subscriber that got a native publication since the last call to `fn`, once per set. */
  takeNativelyPublished(fn: (sub: HubSubscriber) => void): void {
    if (this.nativelyPublished.size === 0) return;
    for (const set of this.nativelyPublished) for (const sub of set) fn(sub);
    this.nativelyPublished.clear();
  }

  broadcast(pub: Publication): FanoutStats {
    const stats: FanoutStats = {};
    const groups = this.streams.get(pub.stream);
    if (!groups) return stats;
    // One meta object per publication, shared by every group (nothing allocated per group).
    const meta: BroadcastMeta | undefined =
      pub.broadcastType || pub.offset !== undefined
        ? {
            type: pub.broadcastType,
            offset: pub.offset,
            epoch: pub.epoch,
            stream_id: pub.offset !== undefined ? pub.stream : undefined,
          }
        : undefined;
    for (const group of groups.values()) {
      const frame = group.encoder.encodeBroadcast(group.identifier, pub.dataJson, meta);
      if (frame === undefined) {
        stats.unencodable = (stats.unencodable ?? 0) + 1;
        continue;
      }
      if (frame === null) continue; // nothing to send in this format
      const set = group.subs;
      const excluded = pub.excludeSocket ? findBySid(set, pub.excludeSocket) : undefined;
      if (this.native && group.native && !excluded) {
        this.native.publish(group.topic, frame);
        this.nativelyPublished.add(set);
        stats.native ??= { messages: 0, bytes: 0 };
        stats.native.messages += set.size;
        stats.native.bytes += set.size * frame.length;
        continue;
      }
      for (const sub of set) if (sub !== excluded) sub.send(frame);
    }
    return stats;
  }
}

function findBySid(set: Set<HubSubscriber>, sid: string): HubSubscriber | undefined {
  for (const sub of set) if (sub.sid === sid) return sub;
  return undefined;
}
