// stream -> identifier -> subscribers. A publication is encoded once per (stream, identifier)
// and the same string is handed to every subscriber (or to the runtime's native topic fan-out).
import { broadcastMessage } from "../protocols/actioncable.ts";

export interface HubSubscriber {
  readonly sid: string;
  /** Queues one frame for the client (a no-op once the subscriber is closed). */
  deliver(frame: string): void;
  /** Native topic membership (Bun); absent when the runtime has no native fan-out. */
  joinTopic?(topic: string): void;
  leaveTopic?(topic: string): void;
}

/** The runtime's own publish-to-topic (Bun's server.publish); every member gets identical bytes. */
export interface NativeFanout {
  publish(topic: string, frame: string): void;
}

export interface Publication {
  stream: string;
  /** JSON text of the message (see publicationDataJson). */
  dataJson: string;
  excludeSocket?: string;
  broadcastType?: string;
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

/** What went through native fan-out (those frames never pass a subscriber's deliver()). */
export interface FanoutStats {
  native?: { messages: number; bytes: number };
}

function topicOf(stream: string, identifier: string): string {
  // NUL cannot occur in a JSON identifier's channel name part in practice, and keeps topics unique.
  return `${stream}\u0000${identifier}`;
}

export class Hub {
  private readonly streams = new Map<string, Map<string, Set<HubSubscriber>>>();

  private native?: NativeFanout;
  private listener?: StreamsListener;
  /**
   * Subscriber sets that got a native publication since the node last looked: native fan-out
   * bypasses deliver(), so these sockets may hold unsent data the node has not seen.
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
    const byId = this.streams.get(stream);
    if (!byId) return 0;
    let n = 0;
    for (const set of byId.values()) n += set.size;
    return n;
  }

  subscribe(sub: HubSubscriber, stream: string, identifier: string): void {
    let byId = this.streams.get(stream);
    if (!byId) {
      byId = new Map();
      this.streams.set(stream, byId);
      this.listener?.streamAdded(stream);
    }
    let set = byId.get(identifier);
    if (!set) {
      set = new Set();
      byId.set(identifier, set);
    }
    if (set.has(sub)) return;
    set.add(sub);
    if (this.native && sub.joinTopic) sub.joinTopic(topicOf(stream, identifier));
  }

  unsubscribe(sub: HubSubscriber, stream: string, identifier: string): void {
    const byId = this.streams.get(stream);
    const set = byId?.get(identifier);
    if (!byId || !set) return;
    if (!set.delete(sub)) return;
    if (this.native && sub.leaveTopic) sub.leaveTopic(topicOf(stream, identifier));
    if (set.size === 0) {
      byId.delete(identifier);
      if (byId.size === 0) {
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
    const byId = this.streams.get(pub.stream);
    if (!byId) return stats;
    for (const [identifier, set] of byId) {
      const frame = broadcastMessage(identifier, pub.dataJson, pub.broadcastType);
      const excluded = pub.excludeSocket ? findBySid(set, pub.excludeSocket) : undefined;
      if (this.native && !excluded) {
        this.native.publish(topicOf(pub.stream, identifier), frame);
        this.nativelyPublished.add(set);
        stats.native ??= { messages: 0, bytes: 0 };
        stats.native.messages += set.size;
        stats.native.bytes += set.size * frame.length;
        continue;
      }
      for (const sub of set) if (sub !== excluded) sub.deliver(frame);
    }
    return stats;
  }
}

function findBySid(set: Set<HubSubscriber>, sid: string): HubSubscriber | undefined {
  for (const sub of set) if (sub.sid === sid) return sub;
  return undefined;
}
