/** What a DeadlineHeap orders: the item keeps its slot so its deadline can move without a search. */
export interface Timed {
  deadline: number;
  /** Index in the heap; -1 when not in one. */
  slot: number;
}

/**
 * A binary min-heap by deadline with items that know their slot: the soonest deadline in O(1),
 * push / move / remove in O(log n). Expiry pops only what is due instead of scanning everything.
 */
export class DeadlineHeap<T extends Timed> {
  private readonly items: T[] = [];

  get size(): number {
    return this.items.length;
  }

  /** The item with the soonest deadline. */
  peek(): T | undefined {
    return this.items[0];
  }

  push(item: T): void {
    item.slot = this.items.length;
    this.items.push(item);
    this.up(item.slot);
  }

  /** Gives an item in the heap a new deadline. */
  move(item: T, deadline: number): void {
    item.deadline = deadline;
    this.down(this.up(item.slot));
  }

  remove(item: T): void {
    const at = item.slot;
    if (at < 0) return;
    const last = this.items.pop()!;
    item.slot = -1;
    if (last === item) return;
    this.items[at] = last;
    last.slot = at;
    this.down(this.up(at));
  }

  pop(): T | undefined {
    const top = this.items[0];
    if (top) this.remove(top);
    return top;
  }

  private up(at: number): number {
    const items = this.items;
    const item = items[at];
    while (at > 0) {
      const parent = (at - 1) >> 1;
      if (items[parent].deadline <= item.deadline) break;
      items[at] = items[parent];
      items[at].slot = at;
      at = parent;
    }
    items[at] = item;
    item.slot = at;
    return at;
  }

  private down(at: number): void {
    const items = this.items;
    const item = items[at];
    const n = items.length;
    for (;;) {
      let child = 2 * at + 1;
      if (child >= n) break;
      if (child + 1 < n && items[child + 1].deadline < items[child].deadline) child++;
      if (items[child].deadline >= item.deadline) break;
      items[at] = items[child];
      items[at].slot = at;
      at = child;
    }
    items[at] = item;
    item.slot = at;
  }
}
