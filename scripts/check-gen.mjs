#!/usr/bin/env node
// Fails when gen/ is not what `npm run gen` makes of proto/: lints the schema, regenerates into a
// temporary directory and compares file by file (CI runs this through `npm run check`).
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const bin = join(root, "node_modules", ".bin");
const env = { ...process.env, PATH: `${bin}:${process.env.PATH ?? ""}` };
const run = (args) => execFileSync(join(bin, "buf"), args, { cwd: root, env, stdio: "inherit" });

function files(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...files(p));
    else out.push(p);
  }
  return out;
}

run(["lint"]);
const tmp = mkdtempSync(join(tmpdir(), "anycable-gen-"));
try {
  run(["generate", "--output", tmp]);
  const fresh = join(tmp, "gen");
  const committed = join(root, "gen");
  const want = new Map(files(fresh).map((f) => [relative(fresh, f), readFileSync(f, "utf8")]));
  const have = new Map(files(committed).map((f) => [relative(committed, f), readFileSync(f, "utf8")]));
  const problems = [];
  for (const [name, text] of want) {
    if (!have.has(name)) problems.push(`missing: gen/${name}`);
    else if (have.get(name) !== text) problems.push(`stale: gen/${name}`);
  }
  for (const name of have.keys()) if (!want.has(name)) problems.push(`not generated from proto/: gen/${name}`);
  if (problems.length > 0) {
    console.error(`gen/ is out of date with proto/ (run \`npm run gen\`):\n  ${problems.join("\n  ")}`);
    process.exit(1);
  }
  console.log(`gen/ is up to date (${want.size} file${want.size === 1 ? "" : "s"})`);
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
