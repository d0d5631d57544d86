// The engine clients (node-redis, nats.js, the PostgreSQL client) load only when a part that uses
// them is configured: no module a default server imports statically reaches them. A shared factory
// once imported every broker statically and every server carried all three (idle RSS 64.8 instead
// of 48.9 MiB under Bun); this walks the static import graph from the entry points instead.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { describe, it } from "node:test";

const ROOT = join(import.meta.dirname ?? dirname(new URL(import.meta.url).pathname), "..", "..");
const ENGINE_PACKAGES = /^(redis|postgres|@nats-io\/.*)$/;

/** Static value imports of a module (not `import type`, not dynamic `import()`). */
function staticImports(file: string): string[] {
  const text = readFileSync(file, "utf8");
  const out: string[] = [];
  const re = /^(?:import|export)\s+(?!type\b)(?:[^"';]*?\sfrom\s+)?["']([^"']+)["']/gm;
  for (const m of text.matchAll(re)) out.push(m[1]!);
  return out;
}

/** The engine packages reachable from `entry`, with the module that imports each. */
function reachableEngines(entry: string): Map<string, string> {
  const seen = new Set<string>();
  const found = new Map<string, string>();
  const stack = [resolve(ROOT, entry)];
  while (stack.length > 0) {
    const file = stack.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    for (const spec of staticImports(file)) {
      if (spec.startsWith(".")) stack.push(resolve(dirname(file), spec));
      else if (ENGINE_PACKAGES.test(spec) && !found.has(spec)) found.set(spec, file.slice(ROOT.length + 1));
    }
  }
  return found;
}

describe("engine clients", () => {
  for (const entry of ["src/main.ts", "src/lib.ts"]) {
    it(`are not imported statically from ${entry}`, () => {
      assert.deepEqual([...reachableEngines(entry)], []);
    });
  }

  it("the walk sees them where they are imported (the check can fail)", () => {
    assert.equal(reachableEngines("src/broker/redis.ts").get("redis") !== undefined, true);
    assert.ok(reachableEngines("src/pubsub/nats.ts").size > 0);
    assert.ok(reachableEngines("src/broker/postgres.ts").has("postgres"));
  });
});
