#!/usr/bin/env node
// The whole test suite: unit tests under Bun and Deno, the release binaries, then the e2e suite
// driving real server processes (Bun, Deno, compiled binary). Ends with one summary line.
import { spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const bin = (name) => join(root, "node_modules", ".bin", name);
const args = new Set(process.argv.slice(2));
const unitOnly = args.has("--unit");

const totals = { passed: 0, failed: 0, skipped: 0 };
const failedSteps = [];

function run(label, cmd, cmdArgs, env = {}) {
  console.log(`\n=== ${label}: ${[cmd.replace(`${root}/`, ""), ...cmdArgs].join(" ")}`);
  return new Promise((resolve) => {
    const child = spawn(cmd, cmdArgs, {
      cwd: root,
      env: { ...process.env, NO_COLOR: "1", FORCE_COLOR: "0", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    const onData = (stream) => (d) => {
      out += d.toString();
      stream.write(d);
    };
    child.stdout.on("data", onData(process.stdout));
    child.stderr.on("data", onData(process.stderr));
    child.on("exit", (code) => resolve({ code, out }));
  });
}

function count(re, text) {
  const m = text.match(re);
  return m ? Number(m[1]) : 0;
}

function tallyBun(label, { code, out }) {
  const passed = count(/^\s*(\d+) pass$/m, out);
  const failed = count(/^\s*(\d+) fail$/m, out);
  const skipped = count(/^\s*(\d+) skip$/m, out) + count(/^\s*(\d+) todo$/m, out);
  record(label, code, passed, failed, skipped);
}

function tallyDeno(label, { code, out }) {
  // Deno colours its summary even with NO_COLOR in some versions: strip ANSI codes first.
  const plain = out.replace(/\x1b\[[0-9;]*m/g, "");
  const line = plain.split("\n").findLast((l) => /^(ok|FAILED) \|/.test(l.trim())) ?? "";
  const passedSteps = line.match(/(\d+) passed \((\d+) steps?\)/);
  const failedSteps = line.match(/(\d+) failed \((\d+) steps?\)/);
  const passed = passedSteps ? Number(passedSteps[2]) : count(/(\d+) passed/, line);
  const failed = failedSteps ? Number(failedSteps[2]) : count(/(\d+) failed/, line);
  const ignoredSteps = line.match(/(\d+) ignored \((\d+) steps?\)/);
  const skipped = ignoredSteps ? Number(ignoredSteps[2]) : count(/(\d+) ignored/, line);
  record(label, code, passed, failed, skipped);
}

function record(label, code, passed, failed, skipped) {
  // A runner that crashed before reporting counts as one failure, never as a silent pass.
  if (code !== 0 && failed === 0) failed = 1;
  totals.passed += passed;
  totals.failed += failed;
  totals.skipped += skipped;
  if (failed > 0) failedSteps.push(label);
}

const steps = [
  [
    "unit (bun)",
    () => run("unit (bun)", bin("bun"), ["test", "--timeout", "20000", "./test/unit"]),
    tallyBun,
  ],
  ["unit (deno)", () => run("unit (deno)", bin("deno"), ["test", "-A", "test/unit/"]), tallyDeno],
];
if (!unitOnly) {
  steps.push(
    [
      "release binaries",
      () => run("release binaries", bin("bun"), ["release/build.ts"]),
      (label, r) => record(label, r.code, r.code === 0 ? 1 : 0, 0, 0),
    ],
    [
      "e2e",
      () =>
        run(
          "e2e (servers under bun, deno, compiled binary)",
          bin("bun"),
          ["test", "--timeout", "60000", "./test/e2e"],
          {
            E2E_RUNTIMES: process.env.E2E_RUNTIMES ?? "bun,deno,binary",
          },
        ),
      tallyBun,
    ],
  );
}

for (const [label, exec, tally] of steps) tally(label, await exec());

if (failedSteps.length) console.log(`\nfailed in: ${failedSteps.join(", ")}`);
const skippedPart = totals.skipped ? `, ${totals.skipped} skipped` : "";
console.log(`${totals.passed} passed, ${totals.failed} failed${skippedPart}`);
process.exit(totals.failed > 0 ? 1 : 0);
