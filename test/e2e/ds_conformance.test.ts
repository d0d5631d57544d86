// The read-side tests of @durable-streams/server-conformance-tests against the real server, per
// runtime: runs `npm run test:ds-conformance` (vitest, the suite's own runner, with the server
// under DS_CONFORMANCE_RUNTIME behind the write adapter of test/conformance/) as a child process
// and checks that it exits 0 and that exactly the selected tests ran, and passed
// (test/conformance/selection.ts says which and why the others do not apply); then that the read
// checks anycable-ts answers otherwise by design (NOT_SERVED, in README) still fail.

import { describe, it } from "bun:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { NOT_SERVED, SELECTED } from "../conformance/selection.ts";
import { e2eRuntimes, ROOT } from "../support/server.ts";

const runtimes = e2eRuntimes(["bun", "deno"]);
/** The suite's size in 0.3.6 (338 tests; 6 are skipped by the suite itself). */
const SUITE_TESTS = 338;

interface Run {
  code: number | null;
  out: string;
}

function runConformance(runtime: string, set: "selected" | "not-served" = "selected"): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn("npm", ["run", "--silent", "test:ds-conformance", "--", "--reporter=verbose"], {
      cwd: ROOT,
      env: {
        ...process.env,
        DS_CONFORMANCE_RUNTIME: runtime,
        DS_CONFORMANCE_SET: set,
        NO_COLOR: "1",
        FORCE_COLOR: "0",
        CI: "true",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (d) => {
      out += d.toString();
    });
    child.stderr.on("data", (d) => {
      out += d.toString();
    });
    const killer = setTimeout(() => child.kill("SIGKILL"), 80_000);
    child.on("close", (code) => {
      clearTimeout(killer);
      resolve({ code, out: out.replace(/\x1b\[[0-9;]*m/g, "") });
    });
  });
}

/** vitest's `Tests  58 passed | 280 skipped (338)` line. */
function summary(out: string): { passed: number; failed: number; skipped: number; total: number } {
  const line = out.split("\n").find((l) => /^\s*Tests\s+.*\(\d+\)\s*$/.test(l)) ?? "";
  const n = (re: RegExp) => Number(re.exec(line)?.[1] ?? 0);
  return {
    passed: n(/(\d+) passed/),
    failed: n(/(\d+) failed/),
    skipped: n(/(\d+) skipped/),
    total: n(/\((\d+)\)/),
  };
}

/** The full names (describes and title joined by " > ") of the tests vitest marks so (✓ passed, × failed). */
function reported(out: string, mark: "✓" | "×"): string[] {
  const re = new RegExp(
    `^\\s*${mark} (?:test/conformance/)?ds_read\\.conformance\\.ts > (.*?)(?: \\d+ms)?\\s*$`,
  );
  return out
    .split("\n")
    .map((l) => re.exec(l)?.[1])
    .filter((name): name is string => name !== undefined);
}

for (const runtime of runtimes) {
  describe(`[${runtime}] Durable Streams conformance (read side, @durable-streams/server-conformance-tests)`, () => {
    it(`runs the ${SELECTED.length} selected read-side tests and all pass`, async () => {
      const { code, out } = await runConformance(runtime);
      const counts = summary(out);
      const passed = reported(out, "✓");
      console.log(
        `ds-conformance [${runtime}]: ${counts.passed} of ${counts.total} conformance tests ran and passed, ` +
          `${counts.failed} failed, ${counts.skipped} not selected (writes, text/binary streams, existence)`,
      );
      for (const name of passed) console.log(`  ran: ${name}`);
      assert.equal(code, 0, out.slice(-4000));
      assert.equal(counts.failed, 0, out.slice(-4000));
      assert.equal(
        counts.total,
        SUITE_TESTS,
        "the suite's size changed: review test/conformance/selection.ts",
      );
      assert.equal(counts.passed, SELECTED.length, out.slice(-4000));
      assert.deepEqual(passed.sort(), SELECTED.map((t) => t.join(" > ")).sort());
    }, 90_000);

    it(`the ${NOT_SERVED.length} read checks answered otherwise by design still fail (README says why)`, async () => {
      const { code, out } = await runConformance(runtime, "not-served");
      const counts = summary(out);
      const failed = reported(out, "×");
      for (const name of failed) console.log(`  fails by design: ${name}`);
      assert.notEqual(code, 0, out.slice(-4000));
      assert.equal(counts.passed, 0, out.slice(-4000));
      assert.equal(counts.failed, NOT_SERVED.length, out.slice(-4000));
      assert.deepEqual(failed.sort(), NOT_SERVED.map((n) => n.test.join(" > ")).sort());
    }, 60_000);
  });
}
