// Option rows: The Redis connection shared by the Redis broadcaster, pub/sub and broker.
import type { Config, OptionSpec } from "../config/schema.ts";

export const REDIS_OPTIONS = [
  {
    name: "redis_url",
    key: "redis_url",
    type: "string",
    default: "redis://localhost:6379",
    env: ["ANYCABLE_REDIS_URL", "REDIS_URL"],
    toml: "redis.url",
    category: "REDIS:",
    description: "Redis connection URL (or the master name when sentinels are used)",
    hidden: false,
    deprecated: null,
    served: true,
  },
  {
    name: "redis_sentinels",
    key: "redis_sentinels",
    type: "string",
    default: "",
    env: ["ANYCABLE_REDIS_SENTINELS"],
    toml: "redis.sentinels",
    category: "REDIS:",
    description:
      "Comma-separated Redis Sentinel addresses ([user:password@]host:port); --redis_url then names the master (redis://[:password@]mymaster[/db])",
    hidden: false,
    deprecated: null,
    served: true,
  },
  {
    name: "redis_sentinel_discovery_interval",
    key: "redis_sentinel_discovery_interval",
    type: "int",
    default: 30,
    env: ["ANYCABLE_REDIS_SENTINEL_DISCOVERY_INTERVAL"],
    toml: "redis.sentinel_discovery_interval",
    category: "REDIS:",
    description:
      "How often to ask the sentinels for the master's address and the other sentinels (seconds; 0: only on failures and +switch-master)",
    hidden: true,
    deprecated: null,
    served: true,
  },
  {
    name: "redis_keepalive_interval",
    key: "redis_keepalive_interval",
    type: "int",
    default: 30,
    env: ["ANYCABLE_REDIS_KEEPALIVE_INTERVAL"],
    toml: "redis.keepalive_ping_interval",
    category: "REDIS:",
    description:
      "TCP keepalive interval of the Redis connections (seconds; 0: the client default, negative: off)",
    hidden: true,
    deprecated: null,
    served: true,
  },
  {
    name: "redis_tls_verify",
    key: "redis_tls_verify",
    type: "bool",
    default: false,
    env: ["ANYCABLE_REDIS_TLS_VERIFY"],
    toml: "redis.tls_verify",
    category: "REDIS:",
    description: "Check the Redis server certificate when connecting over rediss://",
    hidden: true,
    deprecated: null,
    served: true,
  },
  {
    name: "redis_tls_ca_cert_path",
    key: "redis_tls_ca_cert_path",
    type: "string",
    default: "",
    env: ["ANYCABLE_REDIS_TLS_CA_CERT_PATH"],
    toml: "redis.tls_ca_cert_path",
    category: "REDIS:",
    description: "CA certificate file used to verify the Redis server",
    hidden: false,
    deprecated: null,
    served: true,
  },
  {
    name: "redis_tls_client_cert_path",
    key: "redis_tls_client_cert_path",
    type: "string",
    default: "",
    env: ["ANYCABLE_REDIS_TLS_CLIENT_CERT_PATH"],
    toml: "redis.tls_client_cert_path",
    category: "REDIS:",
    description: "Client certificate file for mutual TLS with Redis",
    hidden: false,
    deprecated: null,
    served: true,
  },
  {
    name: "redis_tls_client_key_path",
    key: "redis_tls_client_key_path",
    type: "string",
    default: "",
    env: ["ANYCABLE_REDIS_TLS_CLIENT_KEY_PATH"],
    toml: "redis.tls_client_key_path",
    category: "REDIS:",
    description: "Client private key file for mutual TLS with Redis",
    hidden: false,
    deprecated: null,
    served: true,
  },
  {
    name: "redis_disable_cache",
    key: "redis_disable_cache",
    type: "bool",
    default: false,
    env: ["ANYCABLE_REDIS_DISABLE_CACHE"],
    toml: "redis.disable_cache",
    category: "REDIS:",
    description:
      "Turn off Redis client-side caching (anycable-ts never caches Redis replies: accepted for compatibility)",
    hidden: true,
    deprecated: null,
    served: true,
  },
  {
    name: "redis_max_reconnect_attempts",
    key: "redis_max_reconnect_attempts",
    type: "int",
    default: 5,
    env: [],
    toml: "redis.max_reconnect_attempts",
    category: "REDIS:",
    description: "How many times to retry a lost Redis connection",
    hidden: true,
    deprecated: null,
    served: true,
    flag: false,
  },
] as const satisfies readonly OptionSpec[];

export interface Options {
  /** A redis:// or rediss:// URL (the master name as host when sentinels are used). */
  url: string;
  /** Comma-separated sentinel addresses; "" outside Sentinel mode. */
  sentinels: string;
  /** Seconds between polls of the sentinels (0: none; +switch-master and failures still ask). */
  sentinelDiscoveryIntervalSec: number;
  keepaliveIntervalSec: number;
  tlsVerify: boolean;
  tlsCaCertPath: string;
  tlsClientCertPath: string;
  tlsClientKeyPath: string;
  disableCache: boolean;
  maxReconnectAttempts: number;
}

export function fromConfig(c: Config): Options {
  return {
    url: c.redis_url,
    sentinels: c.redis_sentinels,
    sentinelDiscoveryIntervalSec: c.redis_sentinel_discovery_interval,
    keepaliveIntervalSec: c.redis_keepalive_interval,
    tlsVerify: c.redis_tls_verify,
    tlsCaCertPath: c.redis_tls_ca_cert_path,
    tlsClientCertPath: c.redis_tls_client_cert_path,
    tlsClientKeyPath: c.redis_tls_client_key_path,
    disableCache: c.redis_disable_cache,
    maxReconnectAttempts: c.redis_max_reconnect_attempts,
  };
}
