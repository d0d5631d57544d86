import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { renderOptionsDoc, replaceBetweenMarkers } from "../../release/options-doc.ts";

describe("README", () => {
  it("option reference matches the schema (regenerate: bun release/options-doc.ts --write README.md)", () => {
    const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
    assert.equal(replaceBetweenMarkers(readme, renderOptionsDoc()), readme);
  });
  it("starts with the two commands", () => {
    const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
    assert.match(readme, /npm install && npm start/);
    assert.match(readme, /npm test/);
  });
});
