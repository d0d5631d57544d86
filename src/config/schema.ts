// The single table of every anycable-go 1.6 option (and the few anycable-ts adds, marked
// `extension`): CLI flag, env vars, TOML key, default, help text. Loader, help, print-config and the docs generator are all driven by it. The rows live
// beside the modules that own them (each `<module>/options.ts`); this file only joins them.

import { API_OPTIONS } from "../api/options.ts";
import { APP_OPTIONS } from "../app/options.ts";
import { BROADCAST_OPTIONS } from "../broadcast/options.ts";
import { BROKER_OPTIONS } from "../broker/options.ts";
import { ENATS_OPTIONS } from "../enats/options.ts";
import { LISTENER_OPTIONS } from "../http/options.ts";
import { IDENTITY_OPTIONS } from "../identity/options.ts";
import { LOG_OPTIONS } from "../log/options.ts";
import { METRICS_OPTIONS } from "../metrics/options.ts";
import { NATS_OPTIONS } from "../nats/options.ts";
import { NODE_OPTIONS } from "../node/options.ts";
import { POSTGRES_OPTIONS } from "../postgres/options.ts";
import { GRAPHQL_OPTIONS } from "../protocols/graphql/options.ts";
import { OCPP_OPTIONS } from "../protocols/ocpp/options.ts";
import { PUSHER_OPTIONS } from "../protocols/pusher/options.ts";
import { PUBSUB_OPTIONS } from "../pubsub/options.ts";
import { REDIS_OPTIONS } from "../redis/options.ts";
import { RPC_OPTIONS } from "../rpc/options.ts";
import { STATUS_OPTIONS } from "../status/options.ts";
import { STREAMS_OPTIONS } from "../streams/options.ts";
import { DS_OPTIONS } from "../transports/ds/options.ts";
import { LP_OPTIONS } from "../transports/lp/options.ts";
import { TRANSPORT_OPTIONS } from "../transports/options.ts";
import { SSE_OPTIONS } from "../transports/sse/options.ts";
import { WS_OPTIONS } from "../transports/ws/options.ts";
import { CONFIG_OPTIONS } from "./options.ts";

export type OptionType = "string" | "int" | "bool" | "float" | "list";
export type OptionValue = string | number | boolean | readonly string[];

export interface OptionSpec {
  /** Canonical flag name, spelled as anycable-go spells it. */
  readonly name: string;
  /** Property name in Config. */
  readonly key: string;
  readonly type: OptionType;
  readonly default: OptionValue;
  /** Env vars in lookup order (the first one that is set wins). */
  readonly env: readonly string[];
  /** Dotted path in anycable-go's TOML layout; null when the file cannot set it. */
  readonly toml: string | null;
  /** urfave/cli help category ("" = uncategorised). */
  readonly category: string;
  readonly description: string;
  readonly hidden: boolean;
  /** Name of the option that replaces this one, or null. */
  readonly deprecated: string | null;
  /** Whether anycable-ts implements the behaviour behind the option. */
  readonly served: boolean;
  readonly choices?: readonly string[];
  /** List separator in flag and env values (default ","). */
  readonly separator?: string;
  /** Backed by an unsigned integer in anycable-go: negative values are rejected. */
  readonly unsigned?: boolean;
  /** Smallest accepted int (anycable-ts validation: anycable-go takes values it then misbehaves on). */
  readonly min?: number;
  /** Largest accepted int (ports: 65535), checked before anything starts. */
  readonly max?: number;
  /** A value check of the owning module (from any source); returns the problem, or null. */
  readonly check?: (value: OptionValue) => string | null;
  /** false for settings that only the TOML file can set (no flag, no env var). */
  readonly flag?: false;
  /**
   * An anycable-ts option anycable-go does not have: documented as such, and printed by
   * --print-config only where anycable-go ignores it (an unknown TOML key).
   */
  readonly extension?: true;
}

export const OPTIONS = [
  ...CONFIG_OPTIONS,
  ...APP_OPTIONS,
  ...LISTENER_OPTIONS,
  ...TRANSPORT_OPTIONS,
  ...WS_OPTIONS,
  ...BROADCAST_OPTIONS,
  ...BROKER_OPTIONS,
  ...PUBSUB_OPTIONS,
  ...REDIS_OPTIONS,
  ...NATS_OPTIONS,
  ...POSTGRES_OPTIONS,
  ...RPC_OPTIONS,
  ...LOG_OPTIONS,
  ...METRICS_OPTIONS,
  ...STATUS_OPTIONS,
  ...NODE_OPTIONS,
  ...IDENTITY_OPTIONS,
  ...STREAMS_OPTIONS,
  ...PUSHER_OPTIONS,
  ...GRAPHQL_OPTIONS,
  ...OCPP_OPTIONS,
  ...ENATS_OPTIONS,
  ...SSE_OPTIONS,
  ...LP_OPTIONS,
  ...DS_OPTIONS,
  ...API_OPTIONS,
] as const satisfies readonly OptionSpec[];

type Row = (typeof OPTIONS)[number];
type ValueOf<T extends OptionType> = T extends "string"
  ? string
  : T extends "int" | "float"
    ? number
    : T extends "bool"
      ? boolean
      : string[];

export type OptionKey = Row["key"];
export type OptionValues = { readonly [R in Row as R["key"]]: ValueOf<R["type"]> };

/** Values anycable-go computes after parsing (tail of NewConfigFromCLI, presets, runtime helpers). */
export interface Derived {
  readonly paths: string[];
  readonly broadcastAdapters: string[];
  readonly pubsubAdapter: string;
  readonly natsServers: string;
  readonly redisPubsubChannel: string;
  readonly proxyHeaders: string[];
  readonly proxyCookies: string[];
  readonly logLevel: string;
  readonly metricsPort: number;
  readonly metricsRotateInterval: number;
  readonly metricsTags: Readonly<Record<string, string>>;
  readonly disconnectMode: string;
  /** "grpc" | "http" | "none" (anything else is an invalid rpc_host, reported by the RPC module). */
  readonly rpcImpl: string;
  readonly allowedOrigins: string;
  /** The application secret with "none" mapped to "". */
  readonly secret: string;
  /** Effective HTTP broadcast key; "" means broadcasts are not authenticated. */
  readonly broadcastKey: string;
  readonly broadcastPort: number;
  readonly rpcSecret: string;
  readonly apiSecret: string;
  readonly apiPort: number;
  readonly apiEnabled: boolean;
  readonly streamsSecret: string;
  readonly jwtSecret: string;
  readonly jwtParam: string;
  readonly enforceJwt: boolean;
  readonly pusherSecret: string;
  /** Key for the Turbo Streams controller; "" when that controller is off. */
  readonly turboSecret: string;
  /** Key for the CableReady controller; "" when that controller is off. */
  readonly cableReadySecret: string;
  readonly skipAuth: boolean;
  readonly publicStreams: boolean;
  readonly nodeId: string;
  readonly nodeIdUserProvided: boolean;
  /** Presets that were applied, in order. */
  readonly presets: string[];
  /** The TOML file that was loaded, or null. */
  readonly configPath: string | null;
}

export type Config = OptionValues & { readonly derived: Derived };
