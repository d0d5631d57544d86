// Stamps a release version into the sources before the release workflow builds anything, so every
// channel carries it: `-v` of the Bun and Deno executables (src/version.ts), the npm packages
// (package.json's version, which release/npm/pack.ts gives the launcher and platform packages)
// and the lockfile's own entry.
// Usage: bun release/version.ts <version|vX.Y.Z> [--root <dir>]   (prints the stamped version)
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** SemVer 2.0 (with pre-release and build parts), as npm requires for package versions. */
const SEMVER =
  /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$/;

/** `v1.2.3` or `1.2.3` -> `1.2.3`; throws on anything that is not a SemVer version. */
export function parseVersion(raw: string): string {
  const v = raw.trim().replace(/^v/, "");
  if (!SEMVER.test(v)) throw new Error(`not a release version (SemVer, e.g. 1.2.3 or v1.2.3): ${raw}`);
  return v;
}

const VERSION_LINE = /^export const VERSION = "[^"]*";$/m;

/** src/version.ts with `VERSION` set to `version`. */
export function stampVersionTs(source: string, version: string): string {
  if (!VERSION_LINE.test(source))
    throw new Error('src/version.ts has no `export const VERSION = "...";` line');
  return source.replace(VERSION_LINE, `export const VERSION = ${JSON.stringify(version)};`);
}

/** package.json / package-lock.json text with the package's own version set (formatting kept). */
export function stampManifest(text: string, version: string, lockfile: boolean): string {
  const json = JSON.parse(text) as { version?: string; packages?: Record<string, { version?: string }> };
  json.version = version;
  if (lockfile) {
    const self = json.packages?.[""];
    if (!self) throw new Error('package-lock.json has no packages[""] entry');
    self.version = version;
  }
  return `${JSON.stringify(json, null, 2)}\n`;
}

export function stamp(root: string, raw: string): string {
  const version = parseVersion(raw);
  const file = (...p: string[]) => join(root, ...p);
  writeFileSync(
    file("src", "version.ts"),
    stampVersionTs(readFileSync(file("src", "version.ts"), "utf8"), version),
  );
  writeFileSync(
    file("package.json"),
    stampManifest(readFileSync(file("package.json"), "utf8"), version, false),
  );
  writeFileSync(
    file("package-lock.json"),
    stampManifest(readFileSync(file("package-lock.json"), "utf8"), version, true),
  );
  return version;
}

if (import.meta.main) {
  const args = process.argv.slice(2);
  const i = args.indexOf("--root");
  const root = i >= 0 ? args.splice(i, 2)[1] : join(dirname(fileURLToPath(import.meta.url)), "..");
  if (args.length !== 1) {
    console.error("usage: bun release/version.ts <version|vX.Y.Z> [--root <dir>]");
    process.exit(2);
  }
  try {
    console.log(stamp(root, args[0]));
  } catch (err) {
    console.error(`release/version.ts: ${(err as Error).message}`);
    process.exit(1);
  }
}
