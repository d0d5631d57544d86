// Merges the sources in anycable-go's order of precedence:
// defaults < TOML file < env vars < flags, then derives and applies presets.

import { configProblem as rpcConfigProblem } from "../rpc/options.ts";
import { configProblem as dsConfigProblem } from "../transports/ds/options.ts";
import { VERSION_STRING } from "../version.ts";
import { parseArgv } from "./argv.ts";
import { deriveState, resolveRpcImpl, type Values } from "./derive.ts";
import { readTomlConfig } from "./file.ts";
import { helpText } from "./help.ts";
import { applyPresets } from "./presets.ts";
import { printToml } from "./print.ts";
import { type Config, OPTIONS, type OptionSpec, type OptionValue } from "./schema.ts";
import { convert } from "./values.ts";

export interface LoadInput {
  argv: string[];
  /**
   * Options given in code (the embeddable library): option names as flags spell them (`_` or
   * `-`), any row of the table including TOML-only ones, with the precedence of flags.
   */
  values?: Readonly<Record<string, unknown>>;
  env: Record<string, string | undefined>;
  /** File contents, or undefined when the file does not exist. */
  readFile(path: string): string | undefined;
}

export type LoadResult =
  | { kind: "run"; config: Config; warnings: string[] }
  | { kind: "exit"; code: 0; output: string }
  | { kind: "error"; message: string };

const ROWS = OPTIONS as readonly OptionSpec[];
const LOCAL_CONFIG = "./anycable.toml";
const SYSTEM_CONFIG = "/etc/anycable/anycable.toml";

const copy = (value: OptionValue): OptionValue => (Array.isArray(value) ? [...value] : value);

type Sourced = Map<string, OptionValue>;
type EnvResult = { ok: true; values: Sourced } | { ok: false; message: string };

function readEnv(env: LoadInput["env"]): EnvResult {
  const values: Sourced = new Map();
  for (const row of ROWS) {
    const name = row.env.find((n) => env[n] !== undefined);
    if (name === undefined) continue;
    const raw = env[name]!;
    // urfave/cli ignores an empty numeric env var but treats an empty boolean one as false.
    if (raw === "" && (row.type === "int" || row.type === "float")) continue;
    const converted = convert(row, raw === "" && row.type === "bool" ? "false" : raw);
    if (converted.kind === "error") {
      const what = row.type === "list" ? "" : ` as ${row.type}`;
      return {
        ok: false,
        message: `could not parse "${raw}"${what} value from environment variable "${name}" for flag ${row.name}: ${converted.reason}`,
      };
    }
    if (converted.kind === "value") values.set(row.key, converted.value);
  }
  return { ok: true, values };
}

const BY_NAME = new Map<string, OptionSpec>();
for (const row of ROWS) {
  BY_NAME.set(row.name.replaceAll("-", "_"), row);
  BY_NAME.set(row.key, row);
}

type ValuesResult = { ok: true; values: Sourced } | { ok: false; message: string };

/** Validates options given in code with the same conversions as flags; errors name the option. */
function readValues(given: Readonly<Record<string, unknown>>): ValuesResult {
  const values: Sourced = new Map();
  for (const [name, value] of Object.entries(given)) {
    if (value === undefined) continue;
    const row = BY_NAME.get(name.replaceAll("-", "_"));
    if (!row) return { ok: false, message: `unknown option "${name}"` };
    let raw: string;
    if (Array.isArray(value) && value.every((v) => typeof v === "string")) {
      raw = value.join(row.separator ?? ",");
    } else if (typeof value === "string" || typeof value === "number" || typeof value === "boolean") {
      raw = String(value);
    } else {
      return { ok: false, message: `invalid value for option "${name}": expected a ${row.type}` };
    }
    if (row.type === "list" && typeof value !== "string" && !Array.isArray(value)) {
      return { ok: false, message: `invalid value for option "${name}": expected a list of strings` };
    }
    const converted = convert(row, raw);
    if (converted.kind === "error") {
      return {
        ok: false,
        message: `invalid value ${JSON.stringify(value)} for option "${name}": ${converted.reason}`,
      };
    }
    if (converted.kind === "value") values.set(row.key, converted.value);
  }
  return { ok: true, values };
}

export function loadConfig(input: LoadInput): LoadResult {
  // urfave/cli reads env vars while building the flag set, before parsing
  // argv, so a bad env var is reported first — even with --help.
  const env = readEnv(input.env);
  if (!env.ok) return { kind: "error", message: env.message };
  const args = parseArgv(input.argv);
  if (!args.ok) return { kind: "error", message: args.message };
  if (args.help) return { kind: "exit", code: 0, output: helpText() };
  if (args.version) return { kind: "exit", code: 0, output: `${VERSION_STRING}\n` };

  const flags: Sourced = new Map();
  for (const f of args.flags) flags.set(f.row.key, f.value);
  if (input.values) {
    const given = readValues(input.values);
    if (!given.ok) return { kind: "error", message: given.message };
    for (const [key, value] of given.values) flags.set(key, value);
  }

  let configPath: string | null = null;
  let file: Sourced = new Map();
  if (flags.get("ignore_config_path") !== true) {
    let text: string | undefined;
    if (flags.has("config_path")) {
      configPath = String(flags.get("config_path"));
      if (configPath === "") configPath = null;
      else {
        text = input.readFile(configPath);
        if (text === undefined) {
          return {
            kind: "error",
            message: `failed to read config file: open ${configPath}: no such file or directory`,
          };
        }
      }
    } else {
      for (const candidate of [LOCAL_CONFIG, SYSTEM_CONFIG]) {
        text = input.readFile(candidate);
        if (text !== undefined) {
          configPath = candidate;
          break;
        }
      }
    }
    if (configPath !== null && text !== undefined) {
      const parsed = readTomlConfig(configPath, text);
      if (!parsed.ok) return { kind: "error", message: parsed.message };
      file = parsed.values;
    }
  }

  const values: Record<string, OptionValue> = {};
  const provided = new Set<string>();
  for (const row of ROWS) values[row.key] = copy(row.default);
  for (const source of [file, env.values, flags]) {
    for (const [key, value] of source) {
      values[key] = copy(value);
      provided.add(key);
    }
  }

  const state = deriveState({ v: values as Values, provided, configPath });
  if (args.rest.length > 0) {
    state.warnings.push(`WARNING: ignoring arguments after the options: ${args.rest.join(" ")}`);
  }
  if (state.v.print_config) return { kind: "exit", code: 0, output: printToml(state) };

  const presetError = applyPresets(state, input.env);
  if (presetError) return { kind: "error", message: presetError };
  state.d.rpcImpl = resolveRpcImpl(state.rpcImplementation, state.v.rpc_host);

  const config = { ...state.v, derived: state.d } as Config;
  const problem = rpcConfigProblem(config) ?? dsConfigProblem(config);
  if (problem) return { kind: "error", message: problem };
  return { kind: "run", config, warnings: [...state.warnings] };
}
