// What test/run.mjs reads from the runners' output, as pure functions (unit-tested in
// test/unit/accounting.test.ts): Bun's and Deno's totals, and whether every e2e file ran under
// every runtime it declares.

export const RUNTIMES = ["bun", "deno", "binary"];

function count(re, text) {
  const m = text.match(re);
  return m ? Number(m[1]) : 0;
}

/** Bun's closing totals (` 12 pass`, ` 1 fail`, ` 2 skip`, ` 1 todo`); a todo counts as skipped. */
export function bunCounts(out) {
  return {
    passed: count(/^\s*(\d+) pass$/m, out),
    failed: count(/^\s*(\d+) fail$/m, out),
    skipped: count(/^\s*(\d+) skip$/m, out) + count(/^\s*(\d+) todo$/m, out),
  };
}

/**
 * Deno's summary line, `ok | 2 passed (5 steps) | 0 failed | 2 ignored (1 step) (8ms)`. node:test
 * describes are tests and their its are steps, so passes and failures are counted by steps when
 * there are any. Ignored ones are counted both ways: an ignored describe (or top-level it) is a
 * test whose steps never ran, an ignored it inside a running describe is only a step, so a skip
 * that only happens under Deno (`0 ignored (1 step)`) is never lost.
 */
export function denoCounts(out) {
  // Deno colours its summary even with NO_COLOR in some versions: strip ANSI codes first.
  const plain = out.replace(/\x1b\[[0-9;]*m/g, "");
  const line = plain.split("\n").findLast((l) => /^(ok|FAILED) \|/.test(l.trim())) ?? "";
  const passedSteps = line.match(/(\d+) passed \((\d+) steps?\)/);
  const failedSteps = line.match(/(\d+) failed \((\d+) steps?\)/);
  const ignoredSteps = line.match(/(\d+) ignored \((\d+) steps?\)/);
  return {
    passed: passedSteps ? Number(passedSteps[2]) : count(/(\d+) passed/, line),
    failed: failedSteps ? Number(failedSteps[2]) : count(/(\d+) failed/, line),
    skipped: ignoredSteps ? Number(ignoredSteps[1]) + Number(ignoredSteps[2]) : count(/(\d+) ignored/, line),
  };
}

/** E2E_RUNTIMES as a list; an unknown name is an error (a typo must not drop a runtime). */
export function parseRuntimes(raw) {
  const list = raw
    .split(",")
    .map((r) => r.trim())
    .filter(Boolean);
  const unknown = list.filter((r) => !RUNTIMES.includes(r));
  if (unknown.length > 0) throw new Error(`E2E_RUNTIMES: unknown runtime(s) ${unknown.join(", ")}`);
  if (list.length === 0) throw new Error("E2E_RUNTIMES names no runtime");
  return list;
}

/**
 * The runtimes an e2e file declares: the literal lists of its `e2eRuntimes([...])` calls
 * (test/support/server.ts). A call without a literal list cannot be checked and is an error.
 */
export function declaredRuntimes(source) {
  const declared = new Set();
  const calls = [...source.matchAll(/\be2eRuntimes\(([^)]*)\)/g)];
  if (calls.length === 0) return { error: 'declares no runtimes: call e2eRuntimes(["bun", ...])' };
  for (const [call, arg] of calls) {
    const list = arg.trim().match(/^\[([^\]]*)\]$/);
    const names = list ? [...list[1].matchAll(/"([^"]*)"/g)].map((m) => m[1]) : [];
    const known = names.filter((n) => RUNTIMES.includes(n));
    if (!list || names.length === 0 || known.length !== names.length) {
      return { error: `cannot read the runtimes of ${call}: pass a literal list of ${RUNTIMES.join("/")}` };
    }
    for (const n of known) declared.add(n);
  }
  return { runtimes: RUNTIMES.filter((r) => declared.has(r)) };
}

/**
 * Which runtimes produced results, per test file, from Bun's report: a `path/to/file.test.ts:`
 * header, then `(pass|fail|skip|todo) [runtime] describe > test` lines. Parse each output stream
 * on its own (Bun writes the report to stderr; the tests' own output may interleave on stdout).
 */
export function bunResultsByFile(report) {
  const seen = new Map();
  let file;
  for (const raw of report.split("\n")) {
    const line = raw.replace(/\x1b\[[0-9;]*m/g, "").trimEnd();
    const header = line.match(/^(\S+\.test\.[cm]?[jt]sx?):$/);
    if (header) {
      file = basename(header[1]);
      if (!seen.has(file)) seen.set(file, new Set());
      continue;
    }
    // the closing lists ("2 tests failed:") repeat results of earlier files: not this file's
    if (/^\s*\d+ tests? (failed|skipped|todo)/.test(line) || /^Ran \d+ tests?/.test(line)) {
      file = undefined;
      continue;
    }
    const result = line.match(/^\((?:pass|fail|skip|todo)\) \[(\w+)\] /);
    if (result && file) seen.get(file).add(result[1]);
  }
  return seen;
}

function basename(path) {
  return path.split(/[\\/]/).pop();
}

/**
 * Compares each e2e file's declared runtimes with what ran. `files`: [{ name, source }];
 * `reports`: the runner's output streams; `enabled`: E2E_RUNTIMES as a list. Returns
 * `missing` (declared and enabled but no result: tests that vanished; each one a failure) and
 * `omitted` (declared but left out by E2E_RUNTIMES: counted as skipped, so CI fails on them).
 */
export function runtimeCoverage(files, reports, enabled) {
  const seen = new Map();
  for (const report of reports) {
    for (const [file, runtimes] of bunResultsByFile(report)) {
      const set = seen.get(file) ?? new Set();
      for (const r of runtimes) set.add(r);
      seen.set(file, set);
    }
  }
  const missing = [];
  const omitted = [];
  for (const { name, source } of files) {
    const declared = declaredRuntimes(source);
    if (declared.error) {
      missing.push(`${name}: ${declared.error}`);
      continue;
    }
    const ran = seen.get(basename(name)) ?? new Set();
    for (const runtime of declared.runtimes) {
      if (!enabled.includes(runtime)) omitted.push(`${name} [${runtime}]`);
      else if (!ran.has(runtime)) {
        missing.push(`${name}: declares ${runtime} but reported no [${runtime}] test`);
      }
    }
  }
  return { missing, omitted };
}
