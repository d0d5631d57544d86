// Lints what the distribution is made of (part of `npm run check`, run with bun):
// - every GitHub workflow in .github/workflows/ with @action-validator/cli (the workflow schema);
//   the scripts a workflow runs (`bun|node|sh <file>`) must exist;
// - shellcheck on every shell script of the repository (files named *.sh and files whose shebang
//   names sh, bash or dash: install.sh, .ci/run, the buildpack's bin/*, stage.sh, bench/*.sh) and
//   on every workflow step's `run:` script that runs under bash (all but Windows' default pwsh).
// The lists are found, not written down, so a new script, workflow or step is linted without
// editing this file. One line per check; exits 1 when any fails.
// Usage: bun release/lint.ts [--root <dir>]   (another git work tree: the tests lint bad examples)
import { execFileSync, spawnSync } from "node:child_process";
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readSync } from "node:fs";
import { join } from "node:path";

const self = join(import.meta.dir, "..");
const rootAt = process.argv.indexOf("--root");
const root = rootAt >= 0 ? process.argv[rootAt + 1] : self;
const failures: string[] = [];

/** Tracked and untracked (not ignored) files, relative to the root. */
function repoFiles(): string[] {
  const out = execFileSync("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], {
    cwd: root,
    encoding: "utf8",
  });
  return [...new Set(out.split("\0").filter(Boolean))].filter((f) => existsSync(join(root, f))).sort();
}

function firstLine(file: string): string {
  const fd = openSync(join(root, file), "r");
  try {
    const buf = Buffer.alloc(128);
    const n = readSync(fd, buf, 0, buf.length, 0);
    return buf.subarray(0, n).toString("latin1").split("\n")[0];
  } finally {
    closeSync(fd);
  }
}

function isShellScript(file: string, shebang: string): boolean {
  return file.endsWith(".sh") || /^#!\s*\S*(\/|env\s+)(sh|bash|dash)(\s|$)/.test(shebang);
}

interface Step {
  name?: string;
  run?: string;
  shell?: string;
}
interface Job {
  "runs-on"?: string | string[];
  defaults?: { run?: { shell?: string } };
  steps?: Step[];
}
interface Workflow {
  defaults?: { run?: { shell?: string } };
  jobs?: Record<string, Job>;
}

/** The bash `run:` scripts of a workflow: [label, script]; `${{ }}` expressions made one word. */
function bashSteps(wf: Workflow, file: string): [string, string][] {
  const out: [string, string][] = [];
  for (const [id, job] of Object.entries(wf.jobs ?? {})) {
    const runsOn = JSON.stringify(job["runs-on"] ?? "");
    for (const [i, step] of (job.steps ?? []).entries()) {
      if (step.run === undefined) continue;
      const shell = step.shell ?? job.defaults?.run?.shell ?? wf.defaults?.run?.shell;
      // without a shell: bash on Linux and macOS runners, pwsh on Windows ones (and a matrix
      // runner may be Windows: those steps must name their shell to be linted)
      if (shell === undefined && /windows|matrix/.test(runsOn)) continue;
      if (shell !== undefined && shell !== "bash" && shell !== "sh") continue;
      // GitHub runs it as `bash --noprofile --norc -eo pipefail {0}`
      const script = `set -eo pipefail\n${step.run.replace(/\$\{\{[^}]*\}\}/g, "GHA_EXPRESSION")}`;
      out.push([`${file} jobs.${id}.steps[${i}] (${step.name ?? step.run.split("\n")[0]})`, script]);
    }
  }
  return out;
}

// --- workflows -----------------------------------------------------------------------------------
const workflowDir = join(root, ".github", "workflows");
const workflows = existsSync(workflowDir)
  ? readdirSync(workflowDir)
      .filter((f) => /\.ya?ml$/.test(f))
      .sort()
  : [];
if (workflows.length === 0) failures.push("no workflows in .github/workflows");
const validator = join(self, "node_modules", ".bin", "action-validator");
const steps: [string, string][] = [];
for (const name of workflows) {
  const file = `.github/workflows/${name}`;
  const res = spawnSync(validator, [join(root, file)], { encoding: "utf8" });
  if (res.error) {
    failures.push(`action-validator cannot run (${res.error.message}): npm install`);
    break;
  }
  if (res.status !== 0) {
    console.error(`action-validator: ${file}\n${res.stderr}${res.stdout}`);
    failures.push(file);
    continue;
  }
  console.log(`action-validator ok: ${file}`);
  const text = readFileSync(join(root, file), "utf8");
  for (const m of text.matchAll(
    /(?:^|[\s;&|(])(?:bun|node|sh|bash)\s+((?:\.ci|release|scripts|test|bench)\/[\w./-]+|install\.sh)/gm,
  )) {
    if (!existsSync(join(root, m[1]))) failures.push(`${file} runs ${m[1]}, which does not exist`);
  }
  if (/(?:^|\s)\.ci\/run(?:\s|$)/m.test(text) && !existsSync(join(root, ".ci", "run"))) {
    failures.push(`${file} runs .ci/run, which does not exist`);
  }
  steps.push(...bashSteps(Bun.YAML.parse(text) as Workflow, file));
}

// --- shell scripts -------------------------------------------------------------------------------
const scripts = repoFiles().filter((f) => isShellScript(f, firstLine(f)));
const lint = spawnSync("shellcheck", ["--format=gcc", ...scripts], { cwd: root, encoding: "utf8" });
if (lint.error) {
  failures.push(`shellcheck is not installed (${lint.error.message}): apt-get install shellcheck`);
} else {
  if (lint.status !== 0) {
    console.error(lint.stdout + lint.stderr);
    failures.push(`shellcheck (${scripts.length} scripts)`);
  } else console.log(`shellcheck ok: ${scripts.join(" ")}`);
  let bad = 0;
  for (const [label, script] of steps) {
    const res = spawnSync("shellcheck", ["--shell=bash", "--format=gcc", "-"], {
      input: script,
      encoding: "utf8",
    });
    if (res.status !== 0) {
      bad++;
      console.error(
        `shellcheck: ${label}\n${res.stdout.replace(/^-:(\d+)/gm, (_, n) => `  line ${Number(n) - 1}`)}`,
      );
      failures.push(`shellcheck: ${label}`);
    }
  }
  if (bad === 0) console.log(`shellcheck ok: ${steps.length} workflow run: scripts`);
}

if (failures.length) {
  console.error(`release/lint.ts failed: ${failures.join("; ")}`);
  process.exit(1);
}
