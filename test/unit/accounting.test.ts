// The test wrapper's accounting (test/accounting.mjs): totals read from Bun's and Deno's reports,
// and the check that every e2e file reported tests under every runtime it declares.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  bunCounts,
  bunResultsByFile,
  declaredRuntimes,
  denoCounts,
  parseRuntimes,
  runtimeCoverage,
} from "../accounting.mjs";

// Bun 1.4's report (stderr) for two files, one with a describe.skip and a describe.if(false).
const BUN_REPORT = `
test/e2e/a.test.ts:
(pass) [bun] outer > one
(skip) [bun] outer > skipped
(pass) [bun] outer > inner > two [0.03ms]
(skip) [deno] gone > x

test/e2e/b.test.ts:
1 | describe("[deno] b", () => { it("fails", () => { throw new Error("boom"); }); });
error: boom
(fail) [deno] b > fails [0.19ms]
(todo) [deno] b > later

2 tests failed:
(fail) [binary] a > listed again at the end
(fail) [deno] b > fails [0.19ms]

 2 pass
 2 skip
 1 todo
 1 fail
Ran 6 tests across 2 files. [22.00ms]
`;

describe("test accounting: totals", () => {
  it("reads Bun's totals, a todo counted as skipped", () => {
    assert.deepEqual(bunCounts(BUN_REPORT), { passed: 2, failed: 1, skipped: 3 });
  });

  it("counts a skip that only Deno's step count shows", () => {
    // a skipped it inside a describe: Deno reports 0 ignored tests and 1 ignored step
    assert.deepEqual(denoCounts("ok | 5 passed (9 steps) | 0 failed | 0 ignored (1 step) (2s)\n"), {
      passed: 9,
      failed: 0,
      skipped: 1,
    });
    // an ignored describe (a test whose steps never ran) and an ignored step are two skips
    assert.equal(denoCounts("ok | 2 passed (1 step) | 0 failed | 2 ignored (1 step) (8ms)").skipped, 3);
    assert.equal(denoCounts("ok | 3 passed | 0 failed | 1 ignored (4ms)").skipped, 1);
    const coloured = "\x1b[0m\x1b[32mok\x1b[0m | 4 passed (6 steps) | 0 failed | 0 ignored (2 steps)";
    assert.deepEqual(denoCounts(coloured), { passed: 6, failed: 0, skipped: 2 });
    assert.deepEqual(denoCounts("FAILED | 1 passed (3 steps) | 1 failed (1 step) (1s)"), {
      passed: 3,
      failed: 1,
      skipped: 0,
    });
  });
});

describe("test accounting: e2e runtimes", () => {
  it("refuses an unknown runtime name in E2E_RUNTIMES instead of dropping it", () => {
    assert.deepEqual(parseRuntimes("bun, deno,binary"), ["bun", "deno", "binary"]);
    assert.throws(() => parseRuntimes("bun,dneo"), /unknown runtime\(s\) dneo/);
    assert.throws(() => parseRuntimes(""), /names no runtime/);
  });

  it("reads the runtimes a file declares from its literal e2eRuntimes([...]) calls", () => {
    assert.deepEqual(declaredRuntimes('const r = e2eRuntimes(["bun", "deno"]);'), {
      runtimes: ["bun", "deno"],
    });
    const two = 'const a = e2eRuntimes(["binary"]);\nconst b = e2eRuntimes([\n  "deno",\n]);';
    assert.deepEqual(declaredRuntimes(two), { runtimes: ["deno", "binary"] });
    assert.match(declaredRuntimes('import { e2eRuntimes } from "x";').error ?? "", /declares no runtimes/);
    assert.match(declaredRuntimes("e2eRuntimes(list)").error ?? "", /cannot read/);
    assert.match(declaredRuntimes("e2eRuntimes()").error ?? "", /cannot read/);
    assert.match(declaredRuntimes('e2eRuntimes(["bun", "node"])').error ?? "", /cannot read/);
  });

  it("attributes Bun's result lines to their file, not the closing list of failures", () => {
    const seen = bunResultsByFile(BUN_REPORT);
    assert.deepEqual([...seen.keys()], ["a.test.ts", "b.test.ts"]);
    assert.deepEqual([...seen.get("a.test.ts")!].sort(), ["bun", "deno"]);
    assert.deepEqual([...seen.get("b.test.ts")!], ["deno"]);
  });

  it("fails a declared runtime that reported nothing, and counts one left out by E2E_RUNTIMES", () => {
    const files = [
      { name: "test/e2e/a.test.ts", source: 'e2eRuntimes(["bun", "deno"])' },
      { name: "test/e2e/b.test.ts", source: 'e2eRuntimes(["bun", "deno", "binary"])' },
      { name: "test/e2e/c.test.ts", source: "no declaration" },
    ];
    const { missing, omitted } = runtimeCoverage(files, [BUN_REPORT, "stdout noise\n"], ["bun", "deno"]);
    assert.deepEqual(missing, [
      "test/e2e/b.test.ts: declares bun but reported no [bun] test",
      'test/e2e/c.test.ts: declares no runtimes: call e2eRuntimes(["bun", ...])',
    ]);
    assert.deepEqual(omitted, ["test/e2e/b.test.ts [binary]"]);
    // a file whose tests all reported is fine
    assert.deepEqual(runtimeCoverage(files.slice(0, 1), [BUN_REPORT], ["bun", "deno"]), {
      missing: [],
      omitted: [],
    });
  });

  it("fails when one runtime's describes vanish from a file (no result, not even a skip)", () => {
    const file = [{ name: "test/e2e/a.test.ts", source: 'e2eRuntimes(["bun", "deno"])' }];
    const withoutDeno = BUN_REPORT.replace(/^\(skip\) \[deno\] gone > x$/m, "");
    assert.deepEqual(runtimeCoverage(file, [withoutDeno], ["bun", "deno"]).missing, [
      "test/e2e/a.test.ts: declares deno but reported no [deno] test",
    ]);
    // and a file that did not run at all reports nothing for any runtime
    assert.equal(runtimeCoverage(file, [""], ["bun", "deno"]).missing.length, 2);
  });
});
