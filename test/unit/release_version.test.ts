import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { parseVersion, stampManifest, stampVersionTs } from "../../release/version.ts";
import { VERSION } from "../../src/version.ts";

const read = (p: string) => readFileSync(new URL(`../../${p}`, import.meta.url), "utf8");

describe("release/version.ts (the release workflow's version stamp)", () => {
  it("src/version.ts, package.json and the lockfile carry one version", () => {
    const lock = JSON.parse(read("package-lock.json"));
    assert.deepEqual(
      [JSON.parse(read("package.json")).version, lock.version, lock.packages[""].version],
      [VERSION, VERSION, VERSION],
    );
  });

  it("takes a tag or a version; refuses what npm would not publish", () => {
    assert.equal(parseVersion("v1.2.3"), "1.2.3");
    assert.equal(parseVersion("1.2.3-rc.1+build.5"), "1.2.3-rc.1+build.5");
    for (const bad of ["1.2", "v01.2.3", "latest", "1.2.3-", "", "1.2.3 extra"]) {
      assert.throws(() => parseVersion(bad), /not a release version/, bad);
    }
  });

  it("stamps only the version: the rest of each file stays byte for byte", () => {
    const ts = read("src/version.ts");
    assert.equal(stampVersionTs(ts, VERSION), ts);
    const stamped = stampVersionTs(ts, "2.0.0");
    assert.match(stamped, /^export const VERSION = "2\.0\.0";$/m);
    assert.equal(stamped.replace('"2.0.0"', JSON.stringify(VERSION)), ts);
    for (const [file, lockfile] of [
      ["package.json", false],
      ["package-lock.json", true],
    ] as const) {
      const text = read(file);
      assert.equal(stampManifest(text, VERSION, lockfile), text, file);
      const json = JSON.parse(stampManifest(text, "2.0.0", lockfile));
      assert.equal(json.version, "2.0.0");
      if (lockfile) assert.equal(json.packages[""].version, "2.0.0");
    }
    assert.throws(() => stampVersionTs("export const VERSION = 1;\n", "2.0.0"), /no `export const VERSION/);
  });
});
