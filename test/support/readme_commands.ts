// The commands README.md shows (test/unit/readme.test.ts checks them; test/e2e/readme_commands.test.ts
// runs the server ones): its sh and ini code blocks, parsed the simple way a reader types them.
import { readFileSync } from "node:fs";

export const README = readFileSync(new URL("../../README.md", import.meta.url), "utf8");

/** Words of one shell command line: quotes removed, no expansion. */
export function words(line: string): string[] {
  const out: string[] = [];
  for (const m of line.matchAll(/'([^']*)'|"((?:\\.|[^"\\])*)"|(\S+)/g)) out.push(m[1] ?? m[2] ?? m[3]);
  return out;
}

export interface Command {
  block: string;
  text: string;
  env: Record<string, string>;
  argv: string[];
}

/**
 * The commands of README's sh / ini code blocks (indented ones too): continuation lines joined,
 * comments dropped, `a && b` and `a | b` split, leading VAR=value words taken as the environment.
 * A systemd unit (ini) is one command: ExecStart with its Environment= lines.
 */
export function commands(readme = README): Command[] {
  const out: Command[] = [];
  for (const m of readme.matchAll(/^( *)```(\w*)\n([\s\S]*?)^\1```$/gm)) {
    const [, indent, lang, raw] = m;
    const body = raw.replace(new RegExp(`^${indent}`, "gm"), "");
    if (lang === "ini") {
      const env = Object.fromEntries(
        [...body.matchAll(/^Environment=([A-Z_]+)=(.*)$/gm)].map((e) => [e[1], e[2]] as [string, string]),
      );
      const exec = /^ExecStart=(.*)$/m.exec(body);
      if (exec) out.push({ block: "ini", text: body, env, argv: words(exec[1]) });
      continue;
    }
    if (lang !== "sh") continue;
    for (const line of body.replace(/\\\n\s*/g, " ").split("\n")) {
      const text = line.replace(/(^|\s)#.*$/, "").trim();
      if (!text) continue;
      for (const part of text.split(/\s+(?:&&|\|)\s+/)) {
        const w = words(part);
        const env: Record<string, string> = {};
        while (w.length && /^[A-Z_][A-Z0-9_]*=/.test(w[0])) {
          const [k, ...v] = w.shift()!.split("=");
          env[k] = v.join("=");
        }
        out.push({ block: "sh", text: part, env, argv: w });
      }
    }
  }
  return out;
}

/** The server flags of a command that starts anycable-ts, or undefined for other commands. */
export function serverArgs(c: Command): string[] | undefined {
  const [cmd, ...rest] = c.argv;
  if (cmd === "npx" && rest[0] === "bun" && rest[1] === "src/main.ts") return rest.slice(2);
  if (cmd === "npx" && rest[0] === "deno" && rest[1] === "run" && rest.includes("src/main.ts"))
    return rest.slice(rest.indexOf("src/main.ts") + 1);
  if (cmd === "npx" && rest[0] === "anycable-ts") return rest.slice(1);
  if (/(^|\/)anycable-ts(-[\w-]+)?$/.test(cmd ?? "")) return rest;
  return undefined;
}
