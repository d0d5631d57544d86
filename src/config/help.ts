// `--help` text in urfave/cli v2's layout: uncategorised flags first, then one
// block per category in alphabetical order, flags sorted within a block,
// columns aligned per block, hidden flags left out.

import { ANYCABLE_GO_COMPAT, VERSION_STRING } from "../version.ts";
import { OPTIONS, type OptionSpec } from "./schema.ts";

interface Line {
  readonly names: string;
  readonly usage: string;
}

const prefixed = (name: string): string => (name.length === 1 ? `-${name}` : `--${name}`);

function defaultText(row: OptionSpec): string {
  const d = row.default;
  if (row.type === "bool" || row.type === "int" || row.type === "float") return ` (default: ${String(d)})`;
  const s = Array.isArray(d) ? d.join(row.separator ?? ",") : String(d);
  return s === "" ? "" : ` (default: ${JSON.stringify(s)})`;
}

function lineFor(row: OptionSpec): Line {
  const names = row.type === "bool" ? prefixed(row.name) : `${prefixed(row.name)} value`;
  const env = row.env.length > 0 ? ` [${row.env.map((e) => `$${e}`).join(", ")}]` : "";
  return { names, usage: `${row.description}${defaultText(row)}${env}` };
}

const BUILTIN: readonly Line[] = [
  { names: "--help, -h", usage: "show help" },
  { names: "--version, -v", usage: "print the version" },
];

function block(lines: readonly Line[]): string[] {
  const sorted = [...lines].sort((a, b) => {
    const x = `${a.names}\t${a.usage}`;
    const y = `${b.names}\t${b.usage}`;
    return x < y ? -1 : x > y ? 1 : 0;
  });
  const width = Math.max(...sorted.map((l) => l.names.length)) + 2;
  return sorted.map((l) => `   ${l.names.padEnd(width)}${l.usage}`);
}

export function helpText(): string {
  const categories = new Map<string, Line[]>();
  for (const row of OPTIONS as readonly OptionSpec[]) {
    if (row.hidden || row.flag === false) continue;
    const lines = categories.get(row.category) ?? [];
    lines.push(lineFor(row));
    categories.set(row.category, lines);
  }
  categories.set("", [...(categories.get("") ?? []), ...BUILTIN]);

  const out = [
    "NAME:",
    `   anycable-ts - AnyCable-compatible real-time server (accepts anycable-go ${ANYCABLE_GO_COMPAT} options)`,
    "",
    "USAGE:",
    "   anycable-ts [global options]",
    "",
    "VERSION:",
    `   ${VERSION_STRING}`,
    "",
    "GLOBAL OPTIONS:",
  ];
  for (const name of [...categories.keys()].sort()) {
    out.push("");
    if (name) out.push(`   ${name}`, "");
    out.push(...block(categories.get(name)!));
  }
  return `${out.join("\n")}\n`;
}
