#!/usr/bin/env node
// The whole test suite: unit tests under Bun and Deno, the release binaries, then the e2e suite
// driving real server processes (Bun, Deno, compiled binary). Ends with one summary line.
// After the e2e run it checks that every e2e file reported tests under every runtime it declares
// (its e2eRuntimes([...]) call): a runtime whose tests vanished is a failure, not a silent pass.
import { spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { bunCounts, denoCounts, parseRuntimes, runtimeCoverage } from "./accounting.mjs";

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
    // each stream also on its own: a report parsed line by line must not be cut by the other
    const streams = { stdout: "", stderr: "" };
    const onData = (name, stream) => (d) => {
      out += d.toString();
      streams[name] += d.toString();
      stream.write(d);
    };
    child.stdout.on("data", onData("stdout", process.stdout));
    child.stderr.on("data", onData("stderr", process.stderr));
    // the output is complete at "close"; a leaked grandchild holding the pipes must not hang the
    // run, so "exit" waits for it at most 2 s
    let done = false;
    const finish = (code) => {
      if (done) return;
      done = true;
      resolve({ code, out, streams });
    };
    child.on("close", finish);
    child.on("exit", (code) => setTimeout(() => finish(code), 2000).unref());
  });
}

function tallyBun(label, { code, out }) {
  const { passed, failed, skipped } = bunCounts(out);
  record(label, code, passed, failed, skipped);
}

function tallyDeno(label, { code, out }) {
  const { passed, failed, skipped } = denoCounts(out);
  record(label, code, passed, failed, skipped);
}

// The runtimes the e2e step drives: all three unless E2E_RUNTIMES narrows them (.ci/run sets it
// explicitly). A declared runtime left out is counted as skipped, so it shows in the summary.
let e2eRuntimes;
try {
  e2eRuntimes = parseRuntimes(process.env.E2E_RUNTIMES ?? "bun,deno,binary");
} catch (err) {
  console.error(err.message);
  console.log("0 passed, 1 failed");
  process.exit(1);
}

function tallyE2e(label, result) {
  tallyBun(label, result);
  const dir = join(root, "test", "e2e");
  const files = readdirSync(dir)
    .filter((f) => f.endsWith(".test.ts"))
    .sort()
    .map((f) => ({ name: `test/e2e/${f}`, source: readFileSync(join(dir, f), "utf8") }));
  const { missing, omitted } = runtimeCoverage(
    files,
    [result.streams.stderr, result.streams.stdout],
    e2eRuntimes,
  );
  console.log(`\n=== e2e runtime coverage (${files.length} files; E2E_RUNTIMES=${e2eRuntimes.join(",")})`);
  for (const m of missing) console.log(`MISSING ${m}`);
  for (const o of omitted) console.log(`skipped ${o} (not in E2E_RUNTIMES)`);
  if (missing.length === 0) console.log("every e2e file reported tests under each runtime it declares");
  record("e2e runtime coverage", 0, 0, missing.length, omitted.length);
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
      // --cached: a binary built from the same bundle, Bun version and target is not built again,
      // so an unchanged tree writes none of the ~600 MB of executables
      () => run("release binaries", bin("bun"), ["release/build.ts", "--cached"]),
      (label, r) => record(label, r.code, r.code === 0 ? 1 : 0, 0, 0),
    ],
    [
      "e2e",
      () =>
        run(
          "e2e (servers under bun, deno, compiled binary)",
          bin("bun"),
          ["test", "--timeout", "60000", "./test/e2e"],
          { E2E_RUNTIMES: e2eRuntimes.join(",") },
        ),
      tallyE2e,
    ],
  );
}

for (const [label, exec, tally] of steps) tally(label, await exec());

if (failedSteps.length) console.log(`\nfailed in: ${failedSteps.join(", ")}`);
const skippedPart = totals.skipped ? `, ${totals.skipped} skipped` : "";
console.log(`${totals.passed} passed, ${totals.failed} failed${skippedPart}`);
process.exit(totals.failed > 0 ? 1 : 0);
