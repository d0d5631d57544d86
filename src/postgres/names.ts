// The SQL names of the signalling schema, derived from the configured tables and channels the way
// anycable's "Postgres signalling" PR derives them (trigger functions `<table>_broadcast_notify` /
// `<table>_pubsub_notify`, fixed trigger names, indexes `<table>_<suffix>`), so a database set up
// by either server passes the other's checks. Everything put into SQL text is quoted here; values
// always travel as query parameters.
import type { Options } from "./options.ts";

export const BROADCASTS_TRIGGER = "anycable_broadcasts_notify_insert";
export const PUBSUB_TRIGGER = "anycable_pubsub_notify_insert";
export const PUBLISH_FUNCTION = "anycable_publish";
export const REMOTE_COMMAND_FUNCTION = "anycable_remote_command";

/** `"name"` with embedded quotes doubled. */
export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** `'text'` with embedded quotes doubled (standard_conforming_strings, on since PostgreSQL 9.1). */
export function quoteLiteral(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}

/** `table` or `schema.table`, each part quoted. */
export function quoteTable(name: string): string {
  return name.split(".").map(quoteIdent).join(".");
}

function identifierError(label: string, name: string): string | undefined {
  if (name === "") return `postgres ${label} cannot be empty`;
  if (/[\0\r\n]/.test(name)) return `postgres ${label} ${JSON.stringify(name)} contains a control character`;
  if (name.trim() !== name)
    return `postgres ${label} ${JSON.stringify(name)} has leading or trailing whitespace`;
  return undefined;
}

/** The first problem with the configured names, or undefined. */
export function validateNames(o: Options): string | undefined {
  const plain: Array<[string, string]> = [
    ["broadcast notify channel", o.broadcastChannel],
    ["pub/sub notify channel", o.pubsubChannel],
    ["internal stream", o.internalStream],
  ];
  for (const [label, name] of plain) {
    const err = identifierError(label, name);
    if (err) return err;
  }
  const tables: Array<[string, string]> = [
    ["broadcasts table", o.broadcastsTable],
    ["pub/sub table", o.pubsubTable],
    ["stream offsets table", o.offsetsTable],
  ];
  for (const [label, name] of tables) {
    const parts = name.split(".");
    if (parts.length > 2) return `postgres ${label} ${JSON.stringify(name)}: expected table or schema.table`;
    for (const part of parts) {
      const err = identifierError(label, part);
      if (err) return err;
    }
  }
  if (new Set([o.broadcastsTable, o.pubsubTable, o.offsetsTable]).size < 3)
    return "postgres broadcasts, pub/sub and stream offsets tables must be three different tables";
  return undefined;
}

const flat = (table: string): string => table.replaceAll(".", "_");

export interface SchemaNames {
  offsets: string;
  broadcasts: string;
  pubsub: string;
  /** Unquoted, as pg_proc.proname holds them. */
  broadcastTriggerFnName: string;
  pubsubTriggerFnName: string;
  broadcastTriggerFn: string;
  pubsubTriggerFn: string;
  broadcastTrigger: string;
  pubsubTrigger: string;
  broadcastOffsetIndex: string;
  broadcastClaimIndex: string;
  broadcastCleanupIndex: string;
  pubsubOffsetIndex: string;
  pubsubCreatedIndex: string;
  broadcastChannel: string;
  pubsubChannel: string;
  internalStream: string;
}

export function schemaNames(o: Options): SchemaNames {
  const broadcastTriggerFnName = `${flat(o.broadcastsTable)}_broadcast_notify`;
  const pubsubTriggerFnName = `${flat(o.pubsubTable)}_pubsub_notify`;
  return {
    offsets: quoteTable(o.offsetsTable),
    broadcasts: quoteTable(o.broadcastsTable),
    pubsub: quoteTable(o.pubsubTable),
    broadcastTriggerFnName,
    pubsubTriggerFnName,
    broadcastTriggerFn: quoteIdent(broadcastTriggerFnName),
    pubsubTriggerFn: quoteIdent(pubsubTriggerFnName),
    broadcastTrigger: quoteIdent(BROADCASTS_TRIGGER),
    pubsubTrigger: quoteIdent(PUBSUB_TRIGGER),
    broadcastOffsetIndex: quoteIdent(`${flat(o.broadcastsTable)}_stream_offset_idx`),
    broadcastClaimIndex: quoteIdent(`${flat(o.broadcastsTable)}_claim_idx`),
    broadcastCleanupIndex: quoteIdent(`${flat(o.broadcastsTable)}_cleanup_idx`),
    pubsubOffsetIndex: quoteIdent(`${flat(o.pubsubTable)}_stream_offset_idx`),
    pubsubCreatedIndex: quoteIdent(`${flat(o.pubsubTable)}_created_at_idx`),
    broadcastChannel: quoteLiteral(o.broadcastChannel),
    pubsubChannel: quoteLiteral(o.pubsubChannel),
    internalStream: quoteLiteral(o.internalStream),
  };
}
