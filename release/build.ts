// `npm run build`: single-file executables for every supported OS/arch with `bun build --compile`.
// Cross targets fetch their Bun runtime from the npm registry once (cached in ~/.bun/install/cache).
//
// Usage: bun release/build.ts [--host] [--cached] [--deno [--print]]
//   --host    only this machine's target
//   --cached  skip a target whose binary in dist/ was built from the same input: the JavaScript
//             bundle of src/main.ts (Bun.build, ~0.1 s), the Bun version and the target, hashed
//             (dist/.build-inputs.json); what `npm test` uses, so an unchanged tree rebuilds nothing
//   --deno    the Deno executables with `deno compile` instead (the release workflow: deno compile
//             downloads its runtime from Deno's own host); --print only prints the commands
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export const TARGETS = [
  { os: "linux", arch: "x64", bunTarget: "bun-linux-x64" },
  { os: "linux", arch: "arm64", bunTarget: "bun-linux-arm64" },
  { os: "linux", arch: "x64-musl", bunTarget: "bun-linux-x64-musl" },
  { os: "darwin", arch: "x64", bunTarget: "bun-darwin-x64" },
  { os: "darwin", arch: "arm64", bunTarget: "bun-darwin-arm64" },
  { os: "windows", arch: "x64", bunTarget: "bun-windows-x64" },
] as const;

/**
 * The Deno builds: `deno compile` has no musl target. Their assets are named
 * `anycable-ts-deno-<os>-<arch>[.exe]`, so the Bun builds keep the plain names every channel
 * (install.sh, the buildpack, npm, the image, Homebrew) downloads.
 */
export const DENO_TARGETS = [
  { os: "linux", arch: "x64", denoTarget: "x86_64-unknown-linux-gnu" },
  { os: "linux", arch: "arm64", denoTarget: "aarch64-unknown-linux-gnu" },
  { os: "darwin", arch: "x64", denoTarget: "x86_64-apple-darwin" },
  { os: "darwin", arch: "arm64", denoTarget: "aarch64-apple-darwin" },
  { os: "windows", arch: "x64", denoTarget: "x86_64-pc-windows-msvc" },
] as const;

export function outputName(os: string, arch: string): string {
  return `anycable-ts-${os}-${arch}${os === "windows" ? ".exe" : ""}`;
}

export function denoOutputName(os: string, arch: string): string {
  return `anycable-ts-deno-${os}-${arch}${os === "windows" ? ".exe" : ""}`;
}

/** This machine's Bun target (musl Linux gets the musl build). */
export function hostTarget(): (typeof TARGETS)[number] | undefined {
  const os = process.platform === "win32" ? "windows" : process.platform;
  let arch: string = process.arch;
  if (os === "linux" && arch === "x64" && isMusl()) arch = "x64-musl";
  return TARGETS.find((t) => t.os === os && t.arch === arch);
}

function isMusl(): boolean {
  const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined;
  return report?.header ? !report.header.glibcVersionRuntime : false;
}

const root = join(import.meta.dir, "..");
const dist = join(root, "dist");
const inputsFile = join(dist, ".build-inputs.json");

/**
 * `deno compile` for one target. `--include` adds the Deno adapter, which src/main.ts imports
 * through a computed specifier (deno compile follows only static ones); -A because the server
 * needs net, env, read, sys and run (embedded NATS) and a compiled binary cannot ask.
 */
export function denoCompileArgs(t: (typeof DENO_TARGETS)[number], outDir = "dist"): string[] {
  return [
    "compile",
    "-A",
    "--no-check", // `npm run check` type-checks; the Bun-typed files would not check under Deno
    "--target",
    t.denoTarget,
    "--include",
    "src/runtime/deno.ts",
    "--output",
    join(outDir, denoOutputName(t.os, t.arch)),
    "src/main.ts",
  ];
}

interface Inputs {
  [asset: string]: { hash: string; size: number; mtimeMs: number };
}

async function bundleHash(): Promise<string> {
  const res = await Bun.build({ entrypoints: [join(root, "src", "main.ts")], target: "bun" });
  if (!res.success) throw new Error(`bundling src/main.ts failed:\n${res.logs.join("\n")}`);
  const h = new Bun.CryptoHasher("sha256");
  for (const o of res.outputs) h.update(await o.arrayBuffer());
  return h.digest("hex");
}

function readInputs(): Inputs {
  try {
    return JSON.parse(readFileSync(inputsFile, "utf8")) as Inputs;
  } catch {
    return {};
  }
}

async function buildBun(targets: readonly (typeof TARGETS)[number][], cached: boolean): Promise<void> {
  const inputs = readInputs();
  const bundle = cached ? await bundleHash() : "";
  for (const t of targets) {
    const name = outputName(t.os, t.arch);
    const outfile = join(dist, name);
    const hash = new Bun.CryptoHasher("sha256")
      .update(`${bundle}\0${Bun.version}\0${t.bunTarget}`)
      .digest("hex");
    const prev = inputs[name];
    if (cached && prev?.hash === hash && existsSync(outfile)) {
      const st = statSync(outfile);
      if (st.size === prev.size && st.mtimeMs === prev.mtimeMs) {
        console.log(`up to date ${name} (same bundle, bun ${Bun.version})`);
        continue;
      }
    }
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
    const st = statSync(outfile);
    if (cached) inputs[name] = { hash, size: st.size, mtimeMs: st.mtimeMs };
    else delete inputs[name];
    console.log(
      `built ${name} (${(st.size / 1024 / 1024).toFixed(1)} MiB) in ${Math.round(performance.now() - started)} ms`,
    );
  }
  writeFileSync(inputsFile, `${JSON.stringify(inputs, null, 2)}\n`);
}

function buildDeno(print: boolean): void {
  const deno = join(root, "node_modules", ".bin", "deno");
  for (const t of DENO_TARGETS) {
    const args = denoCompileArgs(t);
    if (print) {
      console.log(["deno", ...args].join(" "));
      continue;
    }
    const res = spawnSync(deno, args, { cwd: root, stdio: "inherit" });
    if (res.status !== 0) {
      console.error(`deno compile --target ${t.denoTarget} failed`);
      process.exit(1);
    }
    console.log(`built ${denoOutputName(t.os, t.arch)}`);
  }
}

if (import.meta.main) {
  const args = new Set(process.argv.slice(2));
  mkdirSync(dist, { recursive: true });
  if (args.has("--deno")) buildDeno(args.has("--print"));
  else {
    const host = hostTarget();
    if (args.has("--host") && !host) {
      console.error(`no build target for this machine (${process.platform}-${process.arch})`);
      process.exit(1);
    }
    await buildBun(args.has("--host") && host ? [host] : TARGETS, args.has("--cached"));
  }
}
