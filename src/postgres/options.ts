// Option rows: the PostgreSQL connection and schema shared by the postgres broadcaster, pub/sub
// and broker. Names, TOML keys ([postgres] section) and defaults are those of
// anycable's open "Postgres signalling" pull request (anycable/anycable#306); anycable-go 1.6 has
// none of them, so they are marked as extensions. DATABASE_URL as a fallback is ours.
import type { Config, OptionSpec } from "../config/schema.ts";

export const POSTGRES_OPTIONS = [
  {
    name: "postgres_url",
    key: "postgres_url",
    type: "string",
    default: "postgres://localhost:5432/postgres?sslmode=disable",
    env: ["ANYCABLE_POSTGRES_URL", "DATABASE_URL"],
    toml: "postgres.url",
    category: "POSTGRES:",
    description:
      "PostgreSQL URL of the postgres broadcaster, pub/sub and broker (DATABASE_URL is read when ANYCABLE_POSTGRES_URL is not set)",
    hidden: false,
    deprecated: null,
    served: true,
    extension: true,
  },
  {
    name: "postgres_ensure_schema",
    key: "postgres_ensure_schema",
    type: "bool",
    default: true,
    env: ["ANYCABLE_POSTGRES_ENSURE_SCHEMA"],
    toml: "postgres.ensure_schema",
    category: "POSTGRES:",
    description:
      "Create or update the signalling tables, triggers and functions at startup (false: only check them)",
    hidden: false,
    deprecated: null,
    served: true,
    extension: true,
  },
  {
    name: "postgres_broadcasts_table",
    key: "postgres_broadcasts_table",
    type: "string",
    default: "anycable_broadcasts",
    env: ["ANYCABLE_POSTGRES_BROADCASTS_TABLE"],
    toml: "postgres.broadcasts_table",
    category: "POSTGRES:",
    description: "Table the application's publications wait in (table or schema.table)",
    hidden: false,
    deprecated: null,
    served: true,
    extension: true,
  },
  {
    name: "postgres_pubsub_table",
    key: "postgres_pubsub_table",
    type: "string",
    default: "anycable_pubsub",
    env: ["ANYCABLE_POSTGRES_PUBSUB_TABLE"],
    toml: "postgres.pubsub_table",
    category: "POSTGRES:",
    description: "Table of node-to-node messages (table or schema.table)",
    hidden: false,
    deprecated: null,
    served: true,
    extension: true,
  },
  {
    name: "postgres_stream_offsets_table",
    key: "postgres_stream_offsets_table",
    type: "string",
    default: "anycable_stream_offsets",
    env: ["ANYCABLE_POSTGRES_STREAM_OFFSETS_TABLE"],
    toml: "postgres.stream_offsets_table",
    category: "POSTGRES:",
    description: "Table of the last offset given out per stream (table or schema.table)",
    hidden: false,
    deprecated: null,
    served: true,
    extension: true,
  },
  {
    name: "postgres_broadcast_notify_channel",
    key: "postgres_broadcast_notify_channel",
    type: "string",
    default: "anycable_broadcasts",
    env: ["ANYCABLE_POSTGRES_BROADCAST_NOTIFY_CHANNEL"],
    toml: "postgres.broadcast_notify_channel",
    category: "POSTGRES:",
    description: "NOTIFY channel that wakes the broadcast readers",
    hidden: false,
    deprecated: null,
    served: true,
    extension: true,
  },
  {
    name: "postgres_pubsub_notify_channel",
    key: "postgres_pubsub_notify_channel",
    type: "string",
    default: "anycable_pubsub",
    env: ["ANYCABLE_POSTGRES_PUBSUB_NOTIFY_CHANNEL"],
    toml: "postgres.pubsub_notify_channel",
    category: "POSTGRES:",
    description: "NOTIFY channel that wakes the pub/sub readers",
    hidden: false,
    deprecated: null,
    served: true,
    extension: true,
  },
  {
    name: "postgres_internal_stream",
    key: "postgres_internal_stream",
    type: "string",
    default: "__anycable_internal__",
    env: ["ANYCABLE_POSTGRES_INTERNAL_STREAM"],
    toml: "postgres.internal_stream",
    category: "POSTGRES:",
    description: "Stream name that carries remote commands in the broadcasts and pub/sub tables",
    hidden: false,
    deprecated: null,
    served: true,
    extension: true,
  },
  {
    name: "postgres_poll_interval_milliseconds",
    key: "postgres_poll_interval_milliseconds",
    type: "int",
    default: 500,
    env: ["ANYCABLE_POSTGRES_POLL_INTERVAL_MILLISECONDS"],
    toml: "postgres.poll_interval_milliseconds",
    category: "POSTGRES:",
    description: "How often the tables are read without a NOTIFY (milliseconds)",
    hidden: false,
    deprecated: null,
    served: true,
    min: 1,
    extension: true,
  },
  {
    name: "postgres_batch_size",
    key: "postgres_batch_size",
    type: "int",
    default: 100,
    env: ["ANYCABLE_POSTGRES_BATCH_SIZE"],
    toml: "postgres.batch_size",
    category: "POSTGRES:",
    description: "Rows read per query",
    hidden: false,
    deprecated: null,
    served: true,
    min: 1,
    extension: true,
  },
  {
    name: "postgres_claim_timeout_seconds",
    key: "postgres_claim_timeout_seconds",
    type: "int",
    default: 30,
    env: ["ANYCABLE_POSTGRES_CLAIM_TIMEOUT_SECONDS"],
    toml: "postgres.claim_timeout_seconds",
    category: "POSTGRES:",
    description:
      "Seconds after which a broadcast claimed by a node that did not finish it can be claimed again",
    hidden: false,
    deprecated: null,
    served: true,
    min: 1,
    extension: true,
  },
  {
    name: "postgres_max_attempts",
    key: "postgres_max_attempts",
    type: "int",
    default: 5,
    env: ["ANYCABLE_POSTGRES_MAX_ATTEMPTS"],
    toml: "postgres.max_attempts",
    category: "POSTGRES:",
    description: "Attempts at handling one broadcast before it is marked exhausted",
    hidden: false,
    deprecated: null,
    served: true,
    min: 1,
    extension: true,
  },
  {
    name: "postgres_exhausted_broadcast_policy",
    key: "postgres_exhausted_broadcast_policy",
    type: "string",
    default: "skip",
    env: ["ANYCABLE_POSTGRES_EXHAUSTED_BROADCAST_POLICY"],
    toml: "postgres.exhausted_broadcast_policy",
    category: "POSTGRES:",
    description:
      "What an exhausted broadcast does to the later ones of its stream: skip (they go on) or block (they wait until the row is removed)",
    hidden: false,
    deprecated: null,
    served: true,
    choices: ["skip", "block"],
    extension: true,
  },
  {
    name: "postgres_retention_ttl",
    key: "postgres_retention_ttl",
    type: "int",
    default: 300,
    env: ["ANYCABLE_POSTGRES_RETENTION_TTL"],
    toml: "postgres.retention_ttl",
    category: "POSTGRES:",
    description: "Seconds pub/sub rows and exhausted broadcasts are kept",
    hidden: false,
    deprecated: null,
    served: true,
    min: 1,
    extension: true,
  },
  {
    name: "postgres_cleanup_interval",
    key: "postgres_cleanup_interval",
    type: "int",
    default: 60,
    env: ["ANYCABLE_POSTGRES_CLEANUP_INTERVAL"],
    toml: "postgres.cleanup_interval",
    category: "POSTGRES:",
    description: "Seconds between two deletions of expired rows",
    hidden: false,
    deprecated: null,
    served: true,
    min: 1,
    extension: true,
  },
  {
    name: "postgres_broker_table_prefix",
    key: "postgres_broker_table_prefix",
    type: "string",
    default: "anycable_broker",
    env: ["ANYCABLE_POSTGRES_BROKER_TABLE_PREFIX"],
    toml: "postgres.broker_table_prefix",
    category: "POSTGRES:",
    description:
      "Prefix of the --broker=postgres tables (<prefix>_history, _sessions, ...; prefix or schema.prefix)",
    hidden: false,
    deprecated: null,
    served: true,
    extension: true,
  },
  {
    name: "postgres_startup_max_attempts",
    key: "postgres_startup_max_attempts",
    type: "int",
    default: 5,
    env: ["ANYCABLE_POSTGRES_STARTUP_MAX_ATTEMPTS"],
    toml: "postgres.startup_max_attempts",
    category: "POSTGRES:",
    description: "Attempts at connecting and checking the schema at startup",
    hidden: false,
    deprecated: null,
    served: true,
    min: 1,
    extension: true,
  },
] as const satisfies readonly OptionSpec[];

export type ExhaustedPolicy = "skip" | "block";

export interface Options {
  url: string;
  ensureSchema: boolean;
  broadcastsTable: string;
  pubsubTable: string;
  offsetsTable: string;
  broadcastChannel: string;
  pubsubChannel: string;
  internalStream: string;
  pollIntervalMs: number;
  batchSize: number;
  claimTimeoutSec: number;
  maxAttempts: number;
  exhaustedPolicy: ExhaustedPolicy;
  retentionSec: number;
  cleanupIntervalSec: number;
  startupAttempts: number;
  /** The broker's tables are `<brokerTablePrefix>_meta`, `_history`, ... */
  brokerTablePrefix: string;
  /** Stored as claimed_by on the broadcasts this node claims: the node id (as the PR does). */
  claimId: string;
}

export function fromConfig(c: Config): Options {
  return {
    url: c.postgres_url,
    ensureSchema: c.postgres_ensure_schema,
    broadcastsTable: c.postgres_broadcasts_table,
    pubsubTable: c.postgres_pubsub_table,
    offsetsTable: c.postgres_stream_offsets_table,
    broadcastChannel: c.postgres_broadcast_notify_channel,
    pubsubChannel: c.postgres_pubsub_notify_channel,
    internalStream: c.postgres_internal_stream,
    pollIntervalMs: c.postgres_poll_interval_milliseconds,
    batchSize: c.postgres_batch_size,
    claimTimeoutSec: c.postgres_claim_timeout_seconds,
    maxAttempts: c.postgres_max_attempts,
    exhaustedPolicy: c.postgres_exhausted_broadcast_policy === "block" ? "block" : "skip",
    retentionSec: c.postgres_retention_ttl,
    cleanupIntervalSec: c.postgres_cleanup_interval,
    startupAttempts: c.postgres_startup_max_attempts,
    brokerTablePrefix: c.postgres_broker_table_prefix,
    claimId: c.derived.nodeId,
  };
}

/** The defaults, for tests and the embeddable library: a complete Options from a URL. */
export function defaults(url: string, overrides: Partial<Options> = {}): Options {
  const row = (name: string) => POSTGRES_OPTIONS.find((r) => r.name === name)?.default;
  return {
    url,
    ensureSchema: true,
    broadcastsTable: row("postgres_broadcasts_table") as string,
    pubsubTable: row("postgres_pubsub_table") as string,
    offsetsTable: row("postgres_stream_offsets_table") as string,
    broadcastChannel: row("postgres_broadcast_notify_channel") as string,
    pubsubChannel: row("postgres_pubsub_notify_channel") as string,
    internalStream: row("postgres_internal_stream") as string,
    pollIntervalMs: 500,
    batchSize: 100,
    claimTimeoutSec: 30,
    maxAttempts: 5,
    exhaustedPolicy: "skip",
    retentionSec: 300,
    cleanupIntervalSec: 60,
    startupAttempts: 5,
    brokerTablePrefix: row("postgres_broker_table_prefix") as string,
    claimId: "anycable-ts",
    ...overrides,
  };
}
