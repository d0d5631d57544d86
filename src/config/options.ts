// Option rows: Where the configuration itself comes from.
import type { OptionSpec } from "../config/schema.ts";

export const CONFIG_OPTIONS = [
  {
    name: "ignore-config-path",
    key: "ignore_config_path",
    type: "bool",
    default: false,
    env: [],
    toml: null,
    category: "",
    description: "Do not load any TOML configuration file",
    hidden: false,
    deprecated: null,
    served: true,
  },
  {
    name: "config-path",
    key: "config_path",
    type: "string",
    default: "",
    env: [],
    toml: null,
    category: "",
    description:
      "TOML configuration file to load; without it ./anycable.toml or else /etc/anycable/anycable.toml is used if present",
    hidden: false,
    deprecated: null,
    served: true,
  },
  {
    name: "print-config",
    key: "print_config",
    type: "bool",
    default: false,
    env: [],
    toml: null,
    category: "",
    description: "Print the effective configuration as TOML and exit",
    hidden: false,
    deprecated: null,
    served: true,
  },
  {
    name: "presets",
    key: "presets",
    type: "list",
    default: [],
    env: ["ANYCABLE_PRESETS"],
    toml: "presets",
    category: "MISC:",
    description:
      "Comma-separated configuration presets (none, fly, heroku, broker); detected from the environment when not given",
    hidden: false,
    deprecated: null,
    served: true,
  },
] as const satisfies readonly OptionSpec[];
