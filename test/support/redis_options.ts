// Redis settings for unit tests: anycable-go's defaults with the given URL and overrides.
import type { Options } from "../../src/redis/options.ts";

export function redisOptions(url: string, overrides: Partial<Options> = {}): Options {
  return {
    url,
    sentinels: "",
    sentinelDiscoveryIntervalSec: 30,
    keepaliveIntervalSec: 30,
    tlsVerify: false,
    tlsCaCertPath: "",
    tlsClientCertPath: "",
    tlsClientKeyPath: "",
    disableCache: false,
    maxReconnectAttempts: 5,
    ...overrides,
  };
}
