import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { BEGIN_MARKER, END_MARKER, main, renderOptionsDoc } from "../../release/options-doc.ts";
import { helpText, OPTIONS, type OptionSpec } from "../../src/config/index.ts";

const ROWS = OPTIONS as readonly OptionSpec[];
const flagRows = ROWS.filter((r) => r.flag !== false);
const visible = flagRows.filter((r) => !r.hidden);
const hidden = flagRows.filter((r) => r.hidden);
const flagPattern = (name: string): RegExp => new RegExp(`^\\s+--${name}(\\s|,|$)`, "m");

describe("--help", () => {
  const help = helpText();

  test("lists every non-hidden flag with its env vars", () => {
    assert.ok(visible.length > 80);
    for (const row of visible) {
      assert.match(help, flagPattern(row.name), row.name);
      for (const env of row.env) assert.ok(help.includes(`$${env}`), env);
    }
    assert.match(help, /--help, -h/);
    assert.match(help, /--version, -v/);
  });

  test("omits hidden flags and TOML-only settings", () => {
    assert.ok(hidden.length > 30);
    for (const row of hidden) assert.doesNotMatch(help, flagPattern(row.name), row.name);
    for (const name of ["node_id", "jwt_id_key", "http_broadcast_secret", "disable_disconnect", "rpc_impl"]) {
      assert.doesNotMatch(help, flagPattern(name));
    }
  });

  test("groups flags under urfave-style category headings, sorted", () => {
    const headings = help.split("\n").filter((l) => /^ {3}[A-Z][A-Z -]+:$/.test(l));
    assert.ok(headings.includes("   ANYCABLE-GO SERVER:"));
    assert.ok(headings.includes("   SIGNED STREAMS:"));
    assert.deepEqual(headings, [...headings].sort());
    const server = help.indexOf("   ANYCABLE-GO SERVER:");
    const next = help.indexOf("   API:");
    assert.ok(help.slice(server, next).includes("--port value"));
    assert.match(help, /--port value +Port to listen on \(default: 8080\) \[\$ANYCABLE_PORT, \$PORT\]/);
  });
});

describe("options-doc", () => {
  const doc = renderOptionsDoc();

  test("documents every flag (hidden ones marked) and every TOML-only key", () => {
    for (const row of flagRows) {
      const line = doc.split("\n").find((l) => l.startsWith(`| \`--${row.name}\` |`));
      assert.ok(line, row.name);
      for (const env of row.env) assert.ok(line.includes(`\`${env}\``), `${row.name} ${env}`);
      if (row.toml) assert.ok(line.includes(`\`${row.toml}\``), `${row.name} toml`);
      if (row.hidden) assert.ok(line.includes("Hidden"), `${row.name} hidden mark`);
      if (row.deprecated) assert.ok(line.includes(`use \`${row.deprecated}\``), `${row.name} replacement`);
    }
    for (const row of ROWS.filter((r) => r.flag === false))
      assert.ok(doc.includes(`| \`${row.toml}\` |`), row.key);
    assert.match(doc, /### ANYCABLE-GO SERVER\n/);
  });

  test("--write replaces the text between the markers", () => {
    const dir = mkdtempSync(join(tmpdir(), "options-doc-"));
    try {
      const file = join(dir, "README.md");
      writeFileSync(file, `# Title\n\n${BEGIN_MARKER}\nold text\n${END_MARKER}\n\nFooter\n`);
      assert.equal(main(["--write", file]), 0);
      const updated = readFileSync(file, "utf8");
      assert.ok(updated.startsWith(`# Title\n\n${BEGIN_MARKER}\n`));
      assert.ok(updated.endsWith(`${END_MARKER}\n\nFooter\n`));
      assert.ok(!updated.includes("old text"));
      assert.ok(updated.includes("| `--port` |"));
      // Idempotent: a second run leaves the file as it is.
      assert.equal(main(["--write", file]), 0);
      assert.equal(readFileSync(file, "utf8"), updated);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("--write leaves a file without markers alone and fails", () => {
    const dir = mkdtempSync(join(tmpdir(), "options-doc-"));
    try {
      const file = join(dir, "README.md");
      writeFileSync(file, "# No markers here\n");
      const originalWrite = process.stderr.write;
      process.stderr.write = (() => true) as typeof process.stderr.write;
      let code: number;
      try {
        code = main(["--write", file]);
      } finally {
        process.stderr.write = originalWrite;
      }
      assert.equal(code, 1);
      assert.equal(readFileSync(file, "utf8"), "# No markers here\n");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
