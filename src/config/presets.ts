// Configuration presets (config/presets.go). anycable-go applies them after
// the whole parse-and-derive step, comparing each value with a fresh default
// config, so a preset only fills in what nobody set.
import type { Logger } from "../log/logger.ts";
import type { State } from "./derive.ts";
import { DEFAULT_NATS_URL, nanoid } from "./derive.ts";
import { type Config, OPTIONS } from "./schema.ts";

type Env = Record<string, string | undefined>;

const DEFAULTS: Record<string, unknown> = Object.fromEntries(OPTIONS.map((r) => [r.key, r.default]));
const isDefault = (state: State, key: keyof State["v"]): boolean => {
  const value = state.v[key];
  const def = DEFAULTS[key];
  if (Array.isArray(value) && Array.isArray(def)) {
    return value.length === def.length && value.every((x, i) => x === def[i]);
  }
  return value === def;
};
const has = (env: Env, name: string): boolean => env[name] !== undefined;

export function detectPresets(env: Env): string[] {
  const presets: string[] = [];
  if (has(env, "FLY_APP_NAME") && has(env, "FLY_ALLOC_ID") && has(env, "FLY_REGION")) presets.push("fly");
  if (has(env, "HEROKU_APP_ID") && has(env, "HEROKU_DYNO_ID")) presets.push("heroku");
  return presets;
}

function setAdapters(state: State, adapters: string[]): void {
  state.v.broadcast_adapter = adapters;
  state.d.broadcastAdapters = [...adapters];
}

function setPubsub(state: State, adapter: string): void {
  state.v.pubsub = adapter;
  state.d.pubsubAdapter = adapter;
}

/**
 * The HTTP broadcast endpoint on the port the platform routes (fly: the main port, heroku: $PORT),
 * unless --http_broadcast_port was given. anycable-go's presets.go means to do this but compares
 * a port it has already resolved from the broadcast key with its default, so there it happens only
 * in some setups; anycable-ts does what its documentation says.
 */
function broadcastOnPort(state: State, port: number): void {
  if (state.v.http_broadcast_port === 0) state.d.broadcastPort = port;
}

function fly(state: State, env: Env): string | null {
  const { v, d } = state;
  if (v.host === "localhost") v.host = "0.0.0.0";
  const region = env.FLY_REGION;
  if (region === undefined) return "FLY_REGION env is missing";
  const appName = env.FLY_APP_NAME;
  if (appName === undefined) return "FLY_APP_NAME env is missing";
  const allocId = env.FLY_ALLOC_ID ?? "";
  const redisEnabled = !isDefault(state, "redis_url");

  if (v.enats_server_name === "" && allocId !== "") {
    // Unique per deployment, or JetStream sees duplicate server names during rollouts.
    v.enats_server_name = `fly-${region}-${allocId}-${nanoid(3)}`;
  }
  if (isDefault(state, "enats_addr")) v.enats_addr = "nats://0.0.0.0:4222";
  if (isDefault(state, "enats_cluster")) v.enats_cluster = "nats://0.0.0.0:5222";
  if (isDefault(state, "enats_cluster_name")) v.enats_cluster_name = `${appName}-${region}-cluster`;
  if (v.enats_cluster_routes.length === 0) {
    v.enats_cluster_routes = [`nats://${region}.${appName}.internal:5222`];
  }
  if (isDefault(state, "enats_gateway_advertise")) {
    v.enats_gateway_advertise = `${region}.${appName}.internal:7222`;
  }

  if (d.pubsubAdapter === "") {
    if (redisEnabled) {
      setPubsub(state, "redis");
    } else {
      setPubsub(state, "nats");
      if (!v.embed_nats || d.natsServers === DEFAULT_NATS_URL) {
        v.embed_nats = true;
        v.nats_servers = v.enats_addr;
        d.natsServers = v.enats_addr;
        setAdapters(state, ["http", "nats"]);
      }
    }
  }
  if (!redisEnabled && isDefault(state, "broadcast_adapter")) setAdapters(state, ["http"]);

  broadcastOnPort(state, v.port);

  // FLY_ANYCABLE_RPC_APP_NAME is how AnyCable's Fly guide spells it (an anycable-ts extension)
  const rpcApp = env.ANYCABLE_FLY_RPC_APP_NAME ?? env.FLY_ANYCABLE_RPC_APP_NAME;
  if (rpcApp !== undefined && isDefault(state, "rpc_host")) {
    v.rpc_host = `dns:///${region}.${rpcApp}.internal:50051`;
  }
  return null;
}

function heroku(state: State, env: Env): string | null {
  if (state.v.host === "localhost") state.v.host = "0.0.0.0";
  const port = env.PORT;
  if (port !== undefined && port !== "") {
    if (!/^\d+$/.test(port) || Number(port) > 65535) return `invalid PORT env: ${JSON.stringify(port)}`;
    broadcastOnPort(state, Number(port));
  }
  return null;
}

function broker(state: State): string | null {
  const { v, d } = state;
  const redisEnabled = !isDefault(state, "redis_url");
  const enats = v.embed_nats;
  // anycable-ts only: Postgres as the one engine (a URL given, DATABASE_URL included, or Postgres
  // broadcasting / pub/sub chosen) gives the Postgres broker, broadcasting and pub/sub.
  const postgresOnly =
    !enats &&
    !redisEnabled &&
    (!isDefault(state, "postgres_url") ||
      d.broadcastAdapters.includes("postgres") ||
      d.pubsubAdapter === "postgres");
  // anycable-go OSS keeps the memory broker with Redis; Pro (whose docs we follow) picks Redis.
  if (v.broker === "") {
    v.broker = enats ? "nats" : redisEnabled ? "redis" : postgresOnly ? "postgres" : "memory";
  }
  if (isDefault(state, "broadcast_adapter")) {
    if (enats) setAdapters(state, ["http", "nats"]);
    else if (redisEnabled) setAdapters(state, ["http", "redisx", "redis"]);
    else if (postgresOnly) setAdapters(state, ["http", "postgres"]);
    else setAdapters(state, ["http"]);
  }
  if (d.pubsubAdapter === "") {
    if (enats) setPubsub(state, "nats");
    else if (redisEnabled) setPubsub(state, "redis");
    else if (postgresOnly || v.broker === "postgres") setPubsub(state, "postgres");
  }
  return null;
}

/** Applies user or detected presets; returns an error message or null. */
export function applyPresets(state: State, env: Env): string | null {
  const presets = state.userPresets ?? detectPresets(env);
  for (const preset of presets) {
    let error: string | null = null;
    if (preset === "fly") error = fly(state, env);
    else if (preset === "heroku") error = heroku(state, env);
    else if (preset === "broker") error = broker(state);
    // Unknown names (including "none") are ignored, as in anycable-go.
    if (error) return `failed to load configuration presets: ${error}`;
  }
  state.d.presets = [...presets];
  return null;
}

/** anycable-go's one start-up line naming the presets applied (nothing when there are none). */
export function logPresets(logger: Logger, config: Config): void {
  const presets = config.derived.presets;
  if (presets.length > 0)
    logger.with({ context: "config" }).info("load presets", { presets: presets.join(",") });
}
