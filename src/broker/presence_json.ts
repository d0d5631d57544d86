// Presence on the wire: events and info replies as anycable-go's JSON encodes them (Go struct
// field order, omitempty), shared by the `presence` messages and the REST API.
import type { PresenceEvent, PresenceInfo, PresenceRecord } from "./broker.ts";

/** `"info":…,` or nothing: Go's omitempty drops a missing info. */
function infoPart(info: unknown): string {
  return info === undefined || info === null ? "" : `"info":${JSON.stringify(info)},`;
}

/** The JSON of a presence event in anycable-go's field order (type, info, id). */
export function presenceEventJson(event: PresenceEvent): string {
  return `{"type":${JSON.stringify(event.type)},${infoPart(event.info)}"id":${JSON.stringify(event.id)}}`;
}

function recordJson(r: PresenceRecord): string {
  return `{${infoPart(r.info)}"id":${JSON.stringify(r.id)}}`;
}

/** A presence info reply's `message` (or the error one, for undefined), in anycable-go's field order. */
export function presenceInfoJson(info: PresenceInfo | undefined): string {
  if (!info) return `{"type":"error","total":0}`;
  let records = "";
  if (info.records && info.records.length > 0) {
    records = `,"records":[${info.records.map(recordJson).join(",")}]`;
  }
  return `{"type":"info","total":${info.total}${records}}`;
}
