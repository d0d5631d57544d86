/**
 * A session's subscriptions: identifier -> the streams it is subscribed to, in subscription order.
 * One flat array [id, streams, id, streams, ...] instead of a Map: a session holds one to a few
 * subscriptions, and a Map's hash table costs ~300 bytes per connection (heap snapshot, Bun).
 */
export class Subscriptions {
  private readonly entries: Array<string | string[]> = [];

  get size(): number {
    return this.entries.length / 2;
  }

  private indexOf(identifier: string): number {
    const entries = this.entries;
    for (let i = 0; i < entries.length; i += 2) if (entries[i] === identifier) return i;
    return -1;
  }

  has(identifier: string): boolean {
    return this.indexOf(identifier) >= 0;
  }

  get(identifier: string): string[] | undefined {
    const i = this.indexOf(identifier);
    return i >= 0 ? (this.entries[i + 1] as string[]) : undefined;
  }

  set(identifier: string, streams: string[]): void {
    const i = this.indexOf(identifier);
    if (i >= 0) this.entries[i + 1] = streams;
    else this.entries.push(identifier, streams);
  }

  delete(identifier: string): boolean {
    const i = this.indexOf(identifier);
    if (i < 0) return false;
    this.entries.splice(i, 2);
    return true;
  }

  identifiers(): string[] {
    const ids: string[] = [];
    for (let i = 0; i < this.entries.length; i += 2) ids.push(this.entries[i] as string);
    return ids;
  }

  *[Symbol.iterator](): IterableIterator<[string, string[]]> {
    for (let i = 0; i < this.entries.length; i += 2) {
      yield [this.entries[i] as string, this.entries[i + 1] as string[]];
    }
  }
}
