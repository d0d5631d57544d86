// Reads anycable-go's TOML layout into option values. Mirrors BurntSushi/toml
// decoding into anycable-go's Config struct: keys match case-insensitively,
// unknown keys are ignored, a value of the wrong type is an error.
import { parse, TomlError } from "smol-toml";
import { OPTIONS, type OptionSpec, type OptionValue } from "./schema.ts";
import { valueProblem } from "./values.ts";

export type FileResult =
  | { readonly ok: true; readonly values: Map<string, OptionValue> }
  | { readonly ok: false; readonly message: string };

type Table = Record<string, unknown>;

const isTable = (v: unknown): v is Table =>
  typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Date);

function child(table: Table, key: string): unknown {
  if (Object.hasOwn(table, key)) return table[key];
  const lower = key.toLowerCase();
  for (const k of Object.keys(table)) if (k.toLowerCase() === lower) return table[k];
  return undefined;
}

function lookup(root: Table, path: string): unknown {
  let node: unknown = root;
  for (const part of path.split(".")) {
    if (!isTable(node)) return undefined;
    node = child(node, part);
  }
  return node;
}

function describe(v: unknown): string {
  if (typeof v === "bigint") return "an integer";
  if (typeof v === "number") return "a float";
  if (typeof v === "string") return "a string";
  if (typeof v === "boolean") return "a boolean";
  if (Array.isArray(v)) return "an array";
  if (v instanceof Date) return "a date";
  return "a table";
}

const MAX = BigInt(Number.MAX_SAFE_INTEGER);

type Coerced = { ok: true; value: OptionValue } | { ok: false; reason: string };

const ok = (value: OptionValue): Coerced => ({ ok: true, value });
const wrong = (expected: string, raw: unknown): Coerced => ({
  ok: false,
  reason: `expected ${expected}, got ${describe(raw)}`,
});

function coerce(row: OptionSpec, raw: unknown): Coerced {
  switch (row.type) {
    case "string":
      return typeof raw === "string" ? ok(raw) : wrong("a string", raw);
    case "bool":
      return typeof raw === "boolean" ? ok(raw) : wrong("a boolean", raw);
    case "float":
      if (typeof raw === "number") return ok(raw);
      return typeof raw === "bigint" ? ok(Number(raw)) : wrong("a float", raw);
    case "int":
      if (typeof raw !== "bigint") return wrong("an integer", raw);
      if (raw > MAX || raw < -MAX || (row.unsigned && raw < 0n)) {
        return { ok: false, reason: `integer ${raw} is out of range` };
      }
      return ok(Number(raw));
    case "list":
      if (row.key === "metrics_tags") {
        // A TOML table in the file, "key:value" pairs everywhere else.
        if (!isTable(raw)) return wrong("a table of strings", raw);
        const pairs: string[] = [];
        for (const [k, val] of Object.entries(raw)) {
          if (typeof val !== "string") return wrong(`a string for tag ${k}`, val);
          pairs.push(`${k}:${val}`);
        }
        return ok(pairs);
      }
      if (!Array.isArray(raw) || raw.some((x) => typeof x !== "string")) {
        return wrong("an array of strings", raw);
      }
      return ok(raw as string[]);
  }
}

export function readTomlConfig(path: string, text: string): FileResult {
  const fail = (detail: string): FileResult => ({
    ok: false,
    message: `failed to parse TOML configuration from ${path}: ${detail}`,
  });
  let root: Table;
  try {
    root = parse(text, { integersAsBigInt: true, unsafeKeyBehaviour: "drop" }) as Table;
  } catch (err) {
    if (err instanceof TomlError) {
      const first = err.message.split("\n")[0];
      return fail(`line ${err.line}, column ${err.column}: ${first}`);
    }
    return fail(String(err));
  }
  const values = new Map<string, OptionValue>();
  for (const row of OPTIONS as readonly OptionSpec[]) {
    if (row.toml === null) continue;
    let tomlKey = row.toml;
    let raw = lookup(root, tomlKey);
    // anycable-go's own print-config writes `http = ...` under [metrics] while
    // it reads `http_path`; accept both so its printed files keep the endpoint.
    if (raw === undefined && row.key === "metrics_http") {
      tomlKey = "metrics.http";
      raw = lookup(root, tomlKey);
    }
    if (raw === undefined) continue;
    const coerced = coerce(row, raw);
    if (!coerced.ok) return fail(`${tomlKey}: ${coerced.reason}`);
    const problem = valueProblem(row, coerced.value);
    if (problem) return fail(`${tomlKey}: invalid value ${JSON.stringify(coerced.value)}: ${problem}`);
    values.set(row.key, coerced.value);
  }
  return { ok: true, values };
}
