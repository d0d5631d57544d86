/**
 * Up to this many subscriptions (and streams per subscription) stay in a flat array, scanned
 * linearly; beyond it a session switches to a Map (streams to a Set), so that a session with
 * thousands of subscriptions does not pay O(N) per command, O(N²) for N subscribes.
 * `bench/subscriptions_threshold.ts` (2026-12): a Map lookup wins from ~4 entries (at 8: flat
 * 28 ns vs Map 8 ns on Bun, 100 vs 8 ns on Deno, against ~15 µs for a whole subscribe), while the
 * flat layout keeps a session with 1-8 subscriptions 190-740 B smaller on Bun (on Deno, V8's
 * small Maps cost about the same as the array). 8 keeps the scan negligible and the memory win
 * for the common case of a few subscriptions.
 */
export const FLAT_LIMIT = 8;
/** A Map that shrinks to this size goes back to the flat array (hysteresis: no flapping). */
const FLAT_AGAIN = FLAT_LIMIT / 2;

/** The streams of one subscription: an array, a Set once it holds more than FLAT_LIMIT. */
type Streams = string[] | Set<string>;

/**
 * A session's subscriptions: identifier -> the streams it is subscribed to, in subscription order.
 * A session holds one to a few subscriptions, kept in one flat array [id, streams, id, streams,
 * ...] instead of a Map: a Map's hash table costs ~300 bytes per connection (heap snapshot, Bun).
 * Past FLAT_LIMIT subscriptions the array becomes a Map (constant-time lookup), and back when it
 * shrinks to FLAT_LIMIT / 2.
 */
export class Subscriptions {
  private entries: Array<string | Streams> | Map<string, Streams> = [];

  get size(): number {
    const e = this.entries;
    return e instanceof Map ? e.size : e.length / 2;
  }

  /**
   * Whether the flat (small) representation is in use; for tests and diagnostics. A method, not a
   * getter: JSC sizes instances by the prototype's non-function properties, and each accessor
   * there added 16 bytes to every session's Subscriptions (measured with bun:jsc heapStats).
   */
  isFlat(): boolean {
    return !(this.entries instanceof Map);
  }

  has(identifier: string): boolean {
    const e = this.entries;
    return e instanceof Map ? e.has(identifier) : indexOf(e, identifier) >= 0;
  }

  /** A copy of the subscription's streams in subscription order, or undefined when not subscribed. */
  get(identifier: string): string[] | undefined {
    const streams = this.streamsOf(identifier);
    return streams === undefined ? undefined : [...streams];
  }

  /** Adds a subscription without streams; an existing one is kept as it is. */
  add(identifier: string): void {
    if (this.streamsOf(identifier) === undefined) this.insert(identifier, []);
  }

  /** Records a stream of a subscription (creating it); false when it was recorded already. */
  addStream(identifier: string, stream: string): boolean {
    const streams = this.streamsOf(identifier);
    if (streams === undefined) {
      this.insert(identifier, [stream]);
      return true;
    }
    if (streams instanceof Set) {
      if (streams.has(stream)) return false;
      streams.add(stream);
      return true;
    }
    if (streams.includes(stream)) return false;
    if (streams.length < FLAT_LIMIT) streams.push(stream);
    else this.replace(identifier, new Set(streams).add(stream));
    return true;
  }

  /** Forgets one stream of a subscription; false when it was not recorded. */
  removeStream(identifier: string, stream: string): boolean {
    const streams = this.streamsOf(identifier);
    if (streams === undefined) return false;
    if (streams instanceof Set) return streams.delete(stream);
    const i = streams.indexOf(stream);
    if (i < 0) return false;
    streams.splice(i, 1);
    return true;
  }

  /** Empties a subscription's streams and returns what it held (nothing for an unknown one). */
  takeStreams(identifier: string): Iterable<string> {
    const streams = this.streamsOf(identifier);
    if (streams === undefined) return [];
    if (streams instanceof Set || streams.length > 0) this.replace(identifier, []);
    return streams;
  }

  delete(identifier: string): boolean {
    const e = this.entries;
    if (e instanceof Map) {
      if (!e.delete(identifier)) return false;
      if (e.size <= FLAT_AGAIN) this.entries = flatten(e);
      return true;
    }
    const i = indexOf(e, identifier);
    if (i < 0) return false;
    e.splice(i, 2);
    return true;
  }

  identifiers(): string[] {
    const e = this.entries;
    if (e instanceof Map) return [...e.keys()];
    const ids: string[] = [];
    for (let i = 0; i < e.length; i += 2) ids.push(e[i] as string);
    return ids;
  }

  *[Symbol.iterator](): IterableIterator<[string, Iterable<string>]> {
    const e = this.entries;
    if (e instanceof Map) {
      yield* e.entries();
      return;
    }
    for (let i = 0; i < e.length; i += 2) yield [e[i] as string, e[i + 1] as Streams];
  }

  private streamsOf(identifier: string): Streams | undefined {
    const e = this.entries;
    if (e instanceof Map) return e.get(identifier);
    const i = indexOf(e, identifier);
    return i >= 0 ? (e[i + 1] as Streams) : undefined;
  }

  /** Adds a subscription known to be absent, switching to a Map past FLAT_LIMIT. */
  private insert(identifier: string, streams: Streams): void {
    const e = this.entries;
    if (e instanceof Map) e.set(identifier, streams);
    else if (e.length < FLAT_LIMIT * 2) e.push(identifier, streams);
    else {
      const map = new Map<string, Streams>();
      for (let i = 0; i < e.length; i += 2) map.set(e[i] as string, e[i + 1] as Streams);
      this.entries = map.set(identifier, streams);
    }
  }

  /** Replaces the streams of a present subscription, keeping its place in the order. */
  private replace(identifier: string, streams: Streams): void {
    const e = this.entries;
    if (e instanceof Map) e.set(identifier, streams);
    else e[indexOf(e, identifier) + 1] = streams;
  }
}

function indexOf(entries: Array<string | Streams>, identifier: string): number {
  for (let i = 0; i < entries.length; i += 2) if (entries[i] === identifier) return i;
  return -1;
}

function flatten(map: Map<string, Streams>): Array<string | Streams> {
  const entries: Array<string | Streams> = [];
  for (const [id, streams] of map) entries.push(id, streams);
  return entries;
}
