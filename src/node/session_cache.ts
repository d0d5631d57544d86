// A session's restorable state as the broker keeps it, in anycable-go's cache entry format
// (node/session.go cacheEntry: ids, subs, cstate, istate, Disconnectable), so a snapshot reads
// the same whichever node wrote it.
import type { Session } from "./session.ts";

export interface SessionSnapshot {
  ids: string;
  /** identifier -> streams */
  subs: Record<string, string[]>;
  cstate: Record<string, string>;
  istate: Record<string, Record<string, string>>;
  Disconnectable: boolean;
}

export function snapshotOf(session: Session): string {
  // fromEntries defines own properties: a client's identifier "__proto__" stays a key.
  const subs = Object.fromEntries([...session.subscriptions].map(([id, streams]) => [id, [...streams]]));
  const snapshot: SessionSnapshot = {
    ids: session.identifiers,
    subs,
    cstate: session.env.cstate,
    istate: session.env.istate,
    Disconnectable: session.disconnectable,
  };
  return JSON.stringify(snapshot);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function stringMap(v: unknown): Record<string, string> | undefined {
  if (v === undefined || v === null) return {};
  if (!isRecord(v)) return undefined;
  for (const k of Object.keys(v)) if (typeof v[k] !== "string") return undefined;
  return v as Record<string, string>;
}

/**
 * A snapshot read back from the broker, checked field by field (it crossed a network and may come
 * from another version): an error text instead of a half-restored session.
 */
export function parseSnapshot(text: string): SessionSnapshot | string {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    return `invalid session snapshot: ${(e as Error).message}`;
  }
  if (!isRecord(v)) return "invalid session snapshot: not an object";
  if (typeof v.ids !== "string") return "invalid session snapshot: ids";
  const subs: Array<[string, string[]]> = [];
  if (v.subs !== undefined && v.subs !== null) {
    if (!isRecord(v.subs)) return "invalid session snapshot: subs";
    for (const [id, streams] of Object.entries(v.subs)) {
      const list = streams ?? [];
      if (!Array.isArray(list) || !list.every((s) => typeof s === "string")) {
        return "invalid session snapshot: subs";
      }
      subs.push([id, list as string[]]);
    }
  }
  const cstate = stringMap(v.cstate);
  if (!cstate) return "invalid session snapshot: cstate";
  const istate: Array<[string, Record<string, string>]> = [];
  if (v.istate !== undefined && v.istate !== null) {
    if (!isRecord(v.istate)) return "invalid session snapshot: istate";
    for (const [id, value] of Object.entries(v.istate)) {
      const state = stringMap(value);
      if (!state) return "invalid session snapshot: istate";
      istate.push([id, state]);
    }
  }
  return {
    ids: v.ids,
    subs: Object.fromEntries(subs),
    cstate,
    istate: Object.fromEntries(istate),
    Disconnectable: v.Disconnectable === true,
  };
}
