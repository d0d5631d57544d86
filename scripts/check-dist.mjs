#!/usr/bin/env node
// Lints what the distribution is made of (part of `npm run check`):
// - every GitHub workflow in .github/workflows/ with @action-validator/cli (the workflow schema);
// - every shell script of the repository with shellcheck: files named *.sh and files whose
//   shebang names sh, bash or dash (install.sh, .ci/run, the buildpack's bin/*, stage.sh, bench/*.sh).
// The file lists are found, not written down, so a new script or workflow is linted without
// editing this file. Prints one line per file and fails when any of them fails.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, openSync, readdirSync, readSync, closeSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

/** Tracked and untracked (not ignored) files, relative to the root. */
function repoFiles() {
  const out = execFileSync("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], {
    cwd: root,
    encoding: "utf8",
  });
  return [...new Set(out.split("\0").filter(Boolean))].filter((f) => existsSync(join(root, f))).sort();
}

function firstLine(file) {
  const fd = openSync(join(root, file), "r");
  try {
    const buf = Buffer.alloc(128);
    const n = readSync(fd, buf, 0, buf.length, 0);
    return buf.subarray(0, n).toString("latin1").split("\n")[0];
  } finally {
    closeSync(fd);
  }
}

function isShellScript(file, shebang) {
  if (file.endsWith(".sh")) return true;
  return /^#!\s*\S*(\/|env\s+)(sh|bash|dash)(\s|$)/.test(shebang);
}

const failures = [];

const workflowDir = join(root, ".github", "workflows");
const workflows = existsSync(workflowDir)
  ? readdirSync(workflowDir)
      .filter((f) => /\.ya?ml$/.test(f))
      .sort()
  : [];
if (workflows.length === 0) failures.push("no workflows in .github/workflows");
const validator = join(root, "node_modules", ".bin", "action-validator");
for (const wf of workflows) {
  const res = spawnSync(validator, [join(workflowDir, wf)], { encoding: "utf8" });
  if (res.error) {
    failures.push(`action-validator cannot run (${res.error.message}): npm install`);
    break;
  }
  if (res.status === 0) console.log(`action-validator ok: .github/workflows/${wf}`);
  else {
    console.error(`action-validator: .github/workflows/${wf}\n${res.stderr}${res.stdout}`);
    failures.push(`.github/workflows/${wf}`);
  }
}

const scripts = repoFiles().filter((f) => isShellScript(f, firstLine(f)));
const lint = spawnSync("shellcheck", ["--format=gcc", ...scripts], { cwd: root, encoding: "utf8" });
if (lint.error) {
  failures.push(`shellcheck is not installed (${lint.error.message}): apt-get install shellcheck`);
} else if (lint.status !== 0) {
  console.error(lint.stdout + lint.stderr);
  failures.push(`shellcheck (${scripts.length} scripts)`);
} else {
  console.log(`shellcheck ok: ${scripts.join(" ")}`);
}

if (failures.length) {
  console.error(`check-dist failed: ${failures.join("; ")}`);
  process.exit(1);
}
