// A benchmark child process (load generator, backend) that reads commands as lines on stdin and
// reports JSON lines on stdout; next(type) waits for the next report of that type.
import { type ChildProcess, spawn } from "node:child_process";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface JsonChild {
  proc: ChildProcess;
  /** Reports not taken by next() yet. */
  lines: Array<Record<string, unknown>>;
  /** The next report of `type` (any type when undefined), taken off `lines`. */
  next(type?: string, timeoutMs?: number): Promise<Record<string, unknown>>;
  send(line: string): void;
}

export function jsonChild(cmd: string, args: string[]): JsonChild {
  const proc = spawn(cmd, args, { stdio: ["pipe", "pipe", "inherit"] });
  const lines: Array<Record<string, unknown>> = [];
  let buf = "";
  proc.stdout!.on("data", (d) => {
    buf += d.toString();
    for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
      lines.push(JSON.parse(buf.slice(0, nl)));
      buf = buf.slice(nl + 1);
    }
  });
  return {
    proc,
    lines,
    async next(type, timeoutMs = 120_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const i = lines.findIndex((l) => type === undefined || l.type === type);
        if (i >= 0) return lines.splice(i, 1)[0]!;
        if (Date.now() > deadline) throw new Error(`${cmd}: no ${type ?? "report"} within ${timeoutMs}ms`);
        await sleep(10);
      }
    },
    send(line) {
      proc.stdin!.write(`${line}\n`);
    },
  };
}
