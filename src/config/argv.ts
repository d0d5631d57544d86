// Command-line parsing with the semantics of Go's `flag` package as driven by
// urfave/cli v2 (what anycable-go uses): one or two dashes, `--flag value` or
// `--flag=value`, booleans only take `=value`, parsing stops at the first
// non-flag argument or after "--". On top of that, `-` and `_` are
// interchangeable in names so `--rpc-host` and `--max_conn` both work.
import { OPTIONS, type OptionSpec, type OptionValue } from "./schema.ts";
import { convert, parseGoBool } from "./values.ts";

export interface ParsedFlag {
  readonly row: OptionSpec;
  readonly value: OptionValue;
}

export type ArgvResult =
  | {
      readonly ok: true;
      /** Flags in command-line order; later ones win. */
      readonly flags: ParsedFlag[];
      readonly help: boolean;
      readonly version: boolean;
      /** Arguments after the flags; anycable-go ignores them. */
      readonly rest: string[];
    }
  | { readonly ok: false; readonly message: string };

const normalize = (name: string): string => name.replaceAll("-", "_");

const BY_NAME = new Map<string, OptionSpec>();
for (const row of OPTIONS as readonly OptionSpec[]) {
  if (row.flag !== false) BY_NAME.set(normalize(row.name), row);
}

type Special = "help" | "version";
const SPECIAL = new Map<string, Special>([
  ["help", "help"],
  ["h", "help"],
  ["version", "version"],
  ["v", "version"],
]);

export function parseArgv(argv: readonly string[]): ArgvResult {
  const flags: ParsedFlag[] = [];
  let help = false;
  let version = false;
  let i = 0;
  while (i < argv.length) {
    const arg = argv[i];
    if (arg.length < 2 || arg[0] !== "-") break;
    const dashes = arg[1] === "-" ? 2 : 1;
    if (dashes === 2 && arg.length === 2) {
      i++;
      break;
    }
    let name = arg.slice(dashes);
    if (name.length === 0 || name[0] === "-" || name[0] === "=") {
      return { ok: false, message: `bad flag syntax: ${arg}` };
    }
    i++;
    let inline: string | undefined;
    const eq = name.indexOf("=", 1);
    if (eq > 0) {
      inline = name.slice(eq + 1);
      name = name.slice(0, eq);
    }
    const key = normalize(name);
    const special = SPECIAL.get(key);
    const row = BY_NAME.get(key);
    if (!special && !row) return { ok: false, message: `flag provided but not defined: -${name}` };

    if (special || row?.type === "bool") {
      let on = true;
      if (inline !== undefined) {
        const parsed = parseGoBool(inline);
        if (parsed === undefined) {
          return { ok: false, message: `invalid boolean value "${inline}" for -${name}: parse error` };
        }
        on = parsed;
      }
      if (special === "help") help = on;
      else if (special === "version") version = on;
      else if (row) {
        const converted = convert(row, String(on));
        if (converted.kind === "value") flags.push({ row, value: converted.value });
      }
      continue;
    }

    let raw = inline;
    if (raw === undefined) {
      if (i >= argv.length) return { ok: false, message: `flag needs an argument: -${name}` };
      raw = argv[i++];
    }
    const converted = convert(row!, raw);
    if (converted.kind === "error") {
      return { ok: false, message: `invalid value "${raw}" for flag -${name}: ${converted.reason}` };
    }
    if (converted.kind === "value") flags.push({ row: row!, value: converted.value });
  }
  return { ok: true, flags, help, version, rest: argv.slice(i) };
}
