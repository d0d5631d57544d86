// `npm run pack:npm`: installable tarballs of the `anycable-ts` launcher package and of this
// machine's platform package (@anycable-ts/<platform>, the binary inside) in dist/npm/.
// Usage: bun release/npm/pack.ts [--all] [--dist <dir>] [--out <dir>]
//   --all         every platform package whose binary is in the dist dir (the release workflow)
//   --dist <dir>  where the release binaries are (default dist/); the host one is built when missing
//   --out <dir>   where the tarballs go (default dist/npm/)
// Prints one JSON line per tarball: {"name","version","file"}.
import { spawnSync } from "node:child_process";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  linkSync,
  mkdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export interface NpmPlatform {
  /** `<process.platform>-<process.arch>[-musl]`, as the launcher computes it */
  key: string;
  os: string;
  cpu: string;
  libc?: "glibc" | "musl";
  /** the release asset (release/build.ts naming) */
  asset: string;
}

export const NPM_PLATFORMS: readonly NpmPlatform[] = [
  { key: "linux-x64", os: "linux", cpu: "x64", libc: "glibc", asset: "anycable-ts-linux-x64" },
  { key: "linux-arm64", os: "linux", cpu: "arm64", libc: "glibc", asset: "anycable-ts-linux-arm64" },
  { key: "linux-x64-musl", os: "linux", cpu: "x64", libc: "musl", asset: "anycable-ts-linux-x64-musl" },
  { key: "darwin-x64", os: "darwin", cpu: "x64", asset: "anycable-ts-darwin-x64" },
  { key: "darwin-arm64", os: "darwin", cpu: "arm64", asset: "anycable-ts-darwin-arm64" },
  { key: "win32-x64", os: "win32", cpu: "x64", asset: "anycable-ts-windows-x64.exe" },
];

export const SCOPE = "@anycable-ts";
const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const rootPkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
  version: string;
  license: string;
};
const common = {
  version: rootPkg.version,
  license: rootPkg.license,
  homepage: "https://github.com/anycable-ts/anycable-ts",
  repository: { type: "git", url: "git+https://github.com/anycable-ts/anycable-ts.git" },
};

/** This machine's platform key, with the launcher's own musl detection. */
export function hostKey(): string {
  const launcher = createRequire(import.meta.url)(join(root, "release", "npm", "launcher.cjs"));
  return (launcher as { platformKey(): string }).platformKey();
}

export function launcherManifest(): Record<string, unknown> {
  return {
    name: "anycable-ts",
    ...common,
    description: "AnyCable-compatible real-time server (drop-in for anycable-go): npx launcher",
    bin: { "anycable-ts": "bin/anycable-ts" },
    files: ["bin/anycable-ts", "README.md"],
    engines: { node: ">=18" },
    optionalDependencies: Object.fromEntries(
      NPM_PLATFORMS.map((p) => [`${SCOPE}/${p.key}`, rootPkg.version]),
    ),
  };
}

export function platformManifest(p: NpmPlatform): Record<string, unknown> {
  return {
    name: `${SCOPE}/${p.key}`,
    ...common,
    description: `The anycable-ts binary for ${p.key} (installed by the anycable-ts package)`,
    os: [p.os],
    cpu: [p.cpu],
    ...(p.libc ? { libc: [p.libc] } : {}),
    files: [binaryFile(p)],
    preferUnplugged: true,
  };
}

export function binaryFile(p: NpmPlatform): string {
  return p.os === "win32" ? "bin/anycable-ts.exe" : "bin/anycable-ts";
}

const LAUNCHER_README = `# anycable-ts

An [AnyCable](https://docs.anycable.io)-compatible real-time server (a drop-in for anycable-go),
as a single binary. \`npx anycable-ts --port=8080\` runs it; the binary for this platform comes
with the install (an optional dependency, \`${SCOPE}/<platform>\`), nothing is downloaded at first run.

- \`ANYCABLE_TS_BINARY=/path/to/anycable-ts\` runs that binary instead.
- "not installed" errors: reinstall with \`npm install --include=optional\`.

Documentation: https://github.com/anycable-ts/anycable-ts
`;

/** One `npm pack` for all staged package dirs (one npm start-up, not one per package). */
function npmPack(dirs: string[], out: string): Map<string, string> {
  const res = spawnSync("npm", ["pack", "--json", "--pack-destination", out, ...dirs], {
    encoding: "utf8",
    env: { ...process.env, npm_config_loglevel: "error" },
    maxBuffer: 1 << 26,
  });
  if (res.status !== 0) throw new Error(`npm pack failed:\n${res.stderr}${res.stdout}`);
  const infos = JSON.parse(res.stdout) as { name: string; filename: string }[];
  return new Map(infos.map((i) => [i.name, join(out, i.filename)]));
}

function stage(dir: string, manifest: Record<string, unknown>): void {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, "bin"), { recursive: true });
  writeFileSync(join(dir, "package.json"), `${JSON.stringify(manifest, null, 2)}\n`);
}

/** Hard link when possible (the binaries are ~100 MB), copy otherwise. */
function place(from: string, to: string): void {
  try {
    linkSync(from, to);
  } catch {
    copyFileSync(from, to);
  }
  chmodSync(to, 0o755);
}

export interface Packed {
  name: string;
  version: string;
  file: string;
}

export function pack(opts: { all?: boolean; dist?: string; out?: string } = {}): Packed[] {
  const dist = resolve(opts.dist ?? join(root, "dist"));
  const out = resolve(opts.out ?? join(dist, "npm"));
  const work = join(out, ".stage");
  mkdirSync(out, { recursive: true });
  const host = hostKey();
  const platforms = opts.all
    ? NPM_PLATFORMS.filter((p) => existsSync(join(dist, p.asset)))
    : NPM_PLATFORMS.filter((p) => p.key === host);
  if (!opts.all && platforms.length === 0)
    throw new Error(`no npm platform package for this machine (${host})`);
  if (!opts.all && !existsSync(join(dist, platforms[0].asset)) && dist === join(root, "dist")) {
    const build = spawnSync(process.execPath, [join(root, "release", "build.ts"), "--host"], {
      stdio: "inherit",
    });
    if (build.status !== 0) throw new Error("building the host binary failed");
  }
  const dirs: string[] = [];
  const launcherDir = join(work, "anycable-ts");
  stage(launcherDir, launcherManifest());
  copyFileSync(join(root, "release", "npm", "launcher.cjs"), join(launcherDir, "bin", "anycable-ts"));
  chmodSync(join(launcherDir, "bin", "anycable-ts"), 0o755);
  writeFileSync(join(launcherDir, "README.md"), LAUNCHER_README);
  dirs.push(launcherDir);
  for (const p of platforms) {
    const binary = join(dist, p.asset);
    if (!existsSync(binary)) throw new Error(`${binary} is missing: build it first (npm run build)`);
    const dir = join(work, p.key);
    stage(dir, platformManifest(p));
    place(binary, join(dir, binaryFile(p)));
    writeFileSync(join(dir, "README.md"), `# ${SCOPE}/${p.key}\n\nThe ${p.key} binary of anycable-ts.\n`);
    dirs.push(dir);
  }
  const files = npmPack(dirs, out);
  const names = ["anycable-ts", ...platforms.map((p) => `${SCOPE}/${p.key}`)];
  const packed = names.map((name) => {
    const file = files.get(name);
    if (!file) throw new Error(`npm pack made no tarball for ${name}`);
    return { name, version: rootPkg.version, file };
  });
  rmSync(work, { recursive: true, force: true });
  return packed;
}

if (import.meta.main) {
  const args = process.argv.slice(2);
  const value = (flag: string) => {
    const i = args.indexOf(flag);
    return i >= 0 ? args[i + 1] : undefined;
  };
  try {
    for (const p of pack({ all: args.includes("--all"), dist: value("--dist"), out: value("--out") })) {
      console.log(JSON.stringify(p));
    }
  } catch (err) {
    console.error((err as Error).message);
    process.exit(1);
  }
}
