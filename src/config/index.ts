import { loadConfig } from "./load.ts";
import { type Config, OPTIONS, type OptionSpec } from "./schema.ts";
import { sameValue } from "./values.ts";

export { helpText } from "./help.ts";
export type { LoadInput, LoadResult } from "./load.ts";
export { loadConfig } from "./load.ts";
export type { Config, Derived, OptionKey, OptionSpec, OptionType, OptionValue } from "./schema.ts";
export { OPTIONS } from "./schema.ts";
export { deriveKey } from "./secrets.ts";

/** The configuration anycable-go would run with given no flags, no env vars and no file. */
export function defaultConfig(): Config {
  const result = loadConfig({ argv: [], env: {}, readFile: () => undefined });
  if (result.kind !== "run") throw new Error("default configuration failed to load");
  return result.config;
}

/** Keys of options that are set to a non-default value but not implemented yet. */
export function unservedOptions(config: Config): string[] {
  const values = config as unknown as Record<string, OptionSpec["default"]>;
  return (OPTIONS as readonly OptionSpec[])
    .filter((row) => !row.served && !sameValue(values[row.key], row.default))
    .map((row) => row.key);
}

const SERVED_ADAPTERS = new Set(["http", "redis", "redisx", "nats", "postgres"]);

/** Enabled broadcast adapters that are not implemented yet. */
export function unservedAdapters(config: Config): string[] {
  return config.derived.broadcastAdapters.filter((a) => !SERVED_ADAPTERS.has(a));
}
