// Option rows: Logging.
import type { Config, OptionSpec } from "../config/schema.ts";
import type { LogFormat, LogLevel } from "./logger.ts";

export const LOG_OPTIONS = [
  {
    name: "log_level",
    key: "log_level",
    type: "string",
    default: "info",
    env: ["ANYCABLE_LOG_LEVEL"],
    toml: "logging.level",
    category: "LOG:",
    description: "Log verbosity (debug, info, warn, error)",
    hidden: false,
    deprecated: null,
    served: true,
    choices: ["debug", "info", "warn", "error"],
  },
  {
    name: "log_format",
    key: "log_format",
    type: "string",
    default: "text",
    env: ["ANYCABLE_LOG_FORMAT"],
    toml: "logging.format",
    category: "LOG:",
    description: "Log output format (text, json)",
    hidden: false,
    deprecated: null,
    served: true,
    choices: ["text", "json"],
  },
  {
    name: "debug",
    key: "debug",
    type: "bool",
    default: false,
    env: ["ANYCABLE_DEBUG"],
    toml: "logging.debug",
    category: "LOG:",
    description: "Debug mode: sets the log level to debug",
    hidden: false,
    deprecated: null,
    served: true,
  },
] as const satisfies readonly OptionSpec[];

export interface Options {
  level: LogLevel;
  format: LogFormat;
}

export function fromConfig(c: Config): Options {
  return { level: c.derived.logLevel as LogLevel, format: c.log_format as LogFormat };
}
