import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { renderOptionsDoc, replaceBetweenMarkers } from "../../release/options-doc.ts";

describe("README", () => {
  it("option reference matches the schema (regenerate: bun release/options-doc.ts --write README.md)", () => {
    const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
    assert.equal(replaceBetweenMarkers(readme, renderOptionsDoc()), readme);
  });
  it("shows each embedding example exactly as examples/ has it (the e2e suite runs those)", () => {
    const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
    for (const name of ["bun.ts", "deno.ts", "hono.ts"]) {
      const example = readFileSync(new URL(`../../examples/${name}`, import.meta.url), "utf8");
      assert.ok(readme.includes(`\`\`\`ts\n${example}\`\`\``), `README shows examples/${name}`);
    }
  });
  it("starts with the two commands", () => {
    const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
    assert.match(readme, /npm install && npm start/);
    assert.match(readme, /npm test/);
  });
});
