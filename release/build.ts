// `npm run build`: single-file executables for every supported OS/arch with `bun build --compile`.
// Cross targets fetch their Bun runtime from the npm registry once (cached in ~/.bun/install/cache).
// Usage: bun release/build.ts [--host]   (--host builds only this machine's target)
import { mkdirSync } from "node:fs";
import { join } from "node:path";

export const TARGETS = [
  { os: "linux", arch: "x64", bunTarget: "bun-linux-x64" },
  { os: "linux", arch: "arm64", bunTarget: "bun-linux-arm64" },
  { os: "darwin", arch: "x64", bunTarget: "bun-darwin-x64" },
  { os: "darwin", arch: "arm64", bunTarget: "bun-darwin-arm64" },
  { os: "windows", arch: "x64", bunTarget: "bun-windows-x64" },
] as const;

export function outputName(os: string, arch: string): string {
  return `anycable-ts-${os}-${arch}${os === "windows" ? ".exe" : ""}`;
}

const root = join(import.meta.dir, "..");
const dist = join(root, "dist");

if (import.meta.main) {
  const hostOnly = process.argv.includes("--host");
  const hostOs = process.platform === "win32" ? "windows" : process.platform;
  const hostArch = process.arch === "arm64" ? "arm64" : "x64";
  mkdirSync(dist, { recursive: true });
  const targets = hostOnly ? TARGETS.filter((t) => t.os === hostOs && t.arch === hostArch) : TARGETS;
  for (const t of targets) {
    const outfile = join(dist, outputName(t.os, t.arch));
    const started = performance.now();
    const proc = Bun.spawnSync(
      [
        process.execPath,
        "build",
        "--compile",
        `--target=${t.bunTarget}`,
        join(root, "src", "main.ts"),
        "--outfile",
        outfile,
      ],
      { cwd: root, stdout: "pipe", stderr: "pipe" },
    );
    if (proc.exitCode !== 0) {
      console.error(`build ${t.bunTarget} failed:\n${proc.stderr.toString()}${proc.stdout.toString()}`);
      process.exit(1);
    }
    const size = Bun.file(outfile).size;
    console.log(
      `built ${outputName(t.os, t.arch)} (${(size / 1024 / 1024).toFixed(1)} MiB) in ${Math.round(performance.now() - started)} ms`,
    );
  }
}
