// Value parsing with Go semantics: anycable-go parses flags with Go's `flag`
// package and env vars with strconv, so "0x1f90", "1_000" and "010" (octal)
// must mean what they mean there.
import type { OptionSpec, OptionValue } from "./schema.ts";

export type NumberFailure = "parse error" | "value out of range";

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

function underscoreOk(s: string): boolean {
  let saw = "^";
  let i = 0;
  let body = s;
  if (body.startsWith("-") || body.startsWith("+")) body = body.slice(1);
  let hex = false;
  if (body.length >= 2 && body[0] === "0" && "bBoOxX".includes(body[1])) {
    i = 2;
    saw = "0";
    hex = body[1] === "x" || body[1] === "X";
  }
  for (; i < body.length; i++) {
    const ch = body[i];
    if ((ch >= "0" && ch <= "9") || (hex && /[a-fA-F]/.test(ch))) {
      saw = "0";
      continue;
    }
    if (ch === "_") {
      if (saw !== "0") return false;
      saw = "_";
      continue;
    }
    if (saw === "_") return false;
    saw = "!";
  }
  return saw !== "_";
}

/** strconv.ParseInt(s, 0, 64) / ParseUint(s, 0, 64), additionally capped at 2^53 - 1. */
export function parseGoInt(input: string, unsigned = false): number | NumberFailure {
  let s = input;
  let negative = false;
  if (!unsigned && (s.startsWith("-") || s.startsWith("+"))) {
    negative = s[0] === "-";
    s = s.slice(1);
  }
  if (s === "") return "parse error";
  let base = 10;
  if (s[0] === "0") {
    const prefix = s.length >= 3 ? s[1].toLowerCase() : "";
    base = prefix === "b" ? 2 : prefix === "x" ? 16 : 8;
    s = prefix === "b" || prefix === "o" || prefix === "x" ? s.slice(2) : s.slice(1);
  }
  let sawUnderscore = false;
  let n = 0n;
  const b = BigInt(base);
  for (const ch of s) {
    if (ch === "_") {
      sawUnderscore = true;
      continue;
    }
    const d = Number.parseInt(ch, 36);
    if (Number.isNaN(d) || d >= base) return "parse error";
    n = n * b + BigInt(d);
  }
  if (sawUnderscore && !underscoreOk(input)) return "parse error";
  if (n > MAX_SAFE) return "value out of range";
  return negative ? -Number(n) : Number(n);
}

/** strconv.ParseBool. */
export function parseGoBool(s: string): boolean | undefined {
  if (["1", "t", "T", "TRUE", "true", "True"].includes(s)) return true;
  if (["0", "f", "F", "FALSE", "false", "False"].includes(s)) return false;
  return undefined;
}

export function splitList(row: OptionSpec, s: string): string[] {
  return s.split(row.separator ?? ",");
}

/** Reason why the value is not allowed (a choice, a minimum), or null when it is fine. */
export function valueProblem(row: OptionSpec, value: OptionValue): string | null {
  if (row.min !== undefined && typeof value === "number" && value < row.min) {
    return `must be at least ${row.min}`;
  }
  if (row.max !== undefined && typeof value === "number" && value > row.max) {
    return `must be at most ${row.max}`;
  }
  const checked = row.check?.(value);
  if (checked) return checked;
  const choices = row.choices;
  if (!choices) return null;
  const items = typeof value === "string" ? [value] : Array.isArray(value) ? (value as string[]) : [];
  for (const item of items) {
    // The default (often "") stays acceptable even when it is not a named choice.
    if (choices.includes(item) || item === row.default) continue;
    return `must be one of ${choices.join(", ")}`;
  }
  return null;
}

export function sameValue(a: OptionValue, b: OptionValue): boolean {
  if (Array.isArray(a) && Array.isArray(b)) {
    return a.length === b.length && a.every((v, i) => v === b[i]);
  }
  return a === b;
}

export type Converted =
  | { kind: "value"; value: OptionValue }
  | { kind: "skip" }
  | { kind: "error"; reason: string };

/**
 * Turns a flag or env string into the row's value. "skip" reproduces anycable-go
 * list flags that only take effect when non-empty (they write to a temporary
 * that is copied into the config only if it is not "").
 */
export function convert(row: OptionSpec, raw: string): Converted {
  let value: OptionValue;
  switch (row.type) {
    case "string":
      value = raw;
      break;
    case "int": {
      const n = parseGoInt(raw, row.unsigned === true);
      if (typeof n === "string") return { kind: "error", reason: n };
      value = n;
      break;
    }
    case "float": {
      const n = raw.trim() === "" ? Number.NaN : Number(raw);
      if (!Number.isFinite(n)) return { kind: "error", reason: "parse error" };
      value = n;
      break;
    }
    case "bool": {
      const b = parseGoBool(raw);
      if (b === undefined) return { kind: "error", reason: "parse error" };
      value = b;
      break;
    }
    case "list":
      // anycable-go always splits --headers, even when empty; the other list flags are ignored when "".
      if (raw === "") return row.key === "headers" ? { kind: "value", value: [] } : { kind: "skip" };
      value = splitList(row, raw);
      break;
  }
  const problem = valueProblem(row, value);
  return problem ? { kind: "error", reason: problem } : { kind: "value", value };
}
