// Embedded NATS: anycable-go links nats-server in; anycable-ts runs the real `nats-server` as a
// supervised child process (node:child_process, under Bun and Deno) with the configuration
// anycable-go would build (config_file.ts). Started before pub/sub, stopped after it; restarted
// with a backoff when it dies; stopped with the process.
import { type ChildProcess, spawn } from "node:child_process";
import { accessSync, constants, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import process from "node:process";
import type { Service } from "../app/service.ts";
import type { Logger } from "../log/logger.ts";
import { describe, type HostPort, renderConfig } from "./config_file.ts";
import type { Options } from "./options.ts";

/** anycable-go waits 5 s for its in-process server; a child process on a busy machine gets more. */
const READY_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5_000;
const RESTART_MIN_MS = 250;
const RESTART_MAX_MS = 5_000;
/** A child that ran this long resets the restart backoff. */
const STABLE_MS = 10_000;
const TAIL_LINES = 20;

/** The executable `bin` names: a path as given, else the first match on PATH; undefined if none. */
export function resolveBinary(bin: string, path = process.env.PATH ?? ""): string | undefined {
  const executable = (p: string) => {
    try {
      accessSync(p, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  };
  if (bin.includes("/")) return executable(bin) ? bin : undefined;
  for (const dir of path.split(delimiter)) {
    if (dir === "") continue;
    const candidate = join(dir, bin);
    if (executable(candidate)) return candidate;
  }
  return undefined;
}

export function missingBinaryMessage(bin: string): string {
  return (
    `embedded NATS needs the nats-server executable, and ${JSON.stringify(bin)} was not found` +
    `${bin.includes("/") ? "" : " on PATH"}: install it (Debian/Ubuntu: apt-get install nats-server; ` +
    "macOS: brew install nats-server; others: https://github.com/nats-io/nats-server/releases) or set --enats_bin"
  );
}

const LEVELS: Record<string, "debug" | "info" | "warn" | "error"> = {
  DBG: "debug",
  TRC: "debug",
  INF: "info",
  WRN: "warn",
  ERR: "error",
  FTL: "error",
};

export class EmbeddedNats implements Service {
  readonly name = "embedded NATS";
  private readonly log: Logger;
  private child?: ChildProcess;
  private dir?: string;
  private bin = "";
  private client?: HostPort;
  private stopped = false;
  private restarts = 0;
  private restartTimer?: ReturnType<typeof setTimeout>;
  private tail: string[] = [];
  /** The process exits without a shutdown (a fatal error, a second Ctrl-C): the child goes too. */
  private readonly killOnExit = () => {
    this.child?.kill("SIGTERM");
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  };

  constructor(
    private readonly opts: Options,
    logger: Logger,
  ) {
    this.log = logger.with({ context: "enats" });
  }

  /** The running child's PID. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  async start(): Promise<void> {
    this.stopped = false;
    const bin = resolveBinary(this.opts.bin);
    if (!bin) throw new Error(missingBinaryMessage(this.opts.bin));
    this.bin = bin;
    const rendered = renderConfig(this.opts);
    if (!rendered.ok) throw new Error(rendered.error);
    this.client = rendered.client;
    if (this.opts.routes.length > 0 && (this.opts.clusterAddr === "" || this.opts.clusterName === "")) {
      this.log.warn("enats_cluster_routes have no effect without enats_cluster and enats_cluster_name");
    }
    this.dir = mkdtempSync(join(tmpdir(), "anycable-ts-enats-"));
    writeFileSync(join(this.dir, "nats-server.conf"), rendered.text);
    if (this.opts.jetstream) mkdirSync(this.opts.storeDir, { recursive: true });
    process.on("exit", this.killOnExit);
    // Deno.exit() fires "unload", not node's process "exit"
    globalThis.addEventListener?.("unload", this.killOnExit);
    try {
      await this.launch();
    } catch (err) {
      // not started: no restart, nothing left behind
      this.stopped = true;
      await this.shutdown(AbortSignal.timeout(STOP_TIMEOUT_MS));
      throw err;
    }
    this.log
      .with({ context: "main" })
      .info(
        `Embedded NATS server started: ${this.opts.serviceAddr} (${describe(this.opts)}, pid: ${this.pid})`,
      );
  }

  /** Spawns the child and resolves once it accepts clients as itself (its INFO names our server). */
  private async launch(): Promise<void> {
    const configPath = join(this.dir!, "nats-server.conf");
    const child = spawn(this.bin, ["-c", configPath], { stdio: ["ignore", "pipe", "pipe"] });
    this.child = child;
    this.tail = [];
    const startedAt = Date.now();
    let exited = false;
    const exit = new Promise<string>((resolve) => {
      child.on("error", (err) => {
        exited = true;
        resolve(err.message);
      });
      child.on("exit", (code, signal) => {
        exited = true;
        resolve(signal ? `signal ${signal}` : `code ${code}`);
      });
    });
    for (const stream of [child.stdout, child.stderr]) {
      let partial = "";
      stream?.on("data", (chunk: Buffer | string) => {
        const lines = (partial + chunk.toString()).split("\n");
        partial = lines.pop() ?? "";
        for (const line of lines) this.output(line);
      });
    }
    exit.then((how) => {
      if (this.child !== child) return;
      this.child = undefined;
      if (this.stopped) return;
      if (Date.now() - startedAt >= STABLE_MS) this.restarts = 0;
      this.scheduleRestart(how);
    });

    const ready = await Promise.race([
      this.waitReady(() => exited).then((ok) => (ok ? "ready" : "timeout")),
      exit.then((how) => `exited (${how})`),
    ]);
    if (ready === "ready") return;
    if (!exited) child.kill("SIGKILL");
    throw new Error(
      `nats-server ${ready === "timeout" ? "did not become ready in time" : ready}${this.tailText()}`,
    );
  }

  private output(line: string): void {
    if (line.trim() === "") return;
    this.tail.push(line);
    if (this.tail.length > TAIL_LINES) this.tail.shift();
    if (!this.opts.debug) return;
    // "[pid] 2026/12/02 04:14:45.301272 [INF] message"
    const m = /^\[\d+\] \S+ \S+ \[(\w{3})\] (.*)$/.exec(line);
    const level = (m && LEVELS[m[1]!]) ?? "info";
    this.log.with({ service: "nats" })[level](m ? m[2]! : line);
  }

  private tailText(): string {
    const errors = this.tail.filter((l) => /\[(ERR|FTL)\]/.test(l));
    const shown = errors.slice(-3);
    return shown.length > 0 ? `: ${shown.join(" | ")}` : "";
  }

  private scheduleRestart(how: string): void {
    const delay = Math.min(RESTART_MAX_MS, RESTART_MIN_MS * 2 ** this.restarts);
    this.restarts++;
    this.log.warn(`embedded NATS server exited (${how}), restarting in ${delay / 1000}s${this.tailText()}`);
    this.restartTimer = setTimeout(() => {
      if (this.stopped) return;
      this.launch().then(
        () => this.log.info(`embedded NATS server restarted (pid: ${this.pid})`),
        (err: Error) => {
          // a child that exited was rescheduled by its exit handler; log why it did not come up
          this.log.warn(`embedded NATS server failed to restart: ${err.message}`);
        },
      );
    }, delay);
  }

  /** Polls the client port until a NATS INFO with our server name answers there. */
  private async waitReady(gone: () => boolean): Promise<boolean> {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    const { host, port } = this.client!;
    const target = host === "" || host === "0.0.0.0" ? "127.0.0.1" : host === "::" ? "::1" : host;
    while (Date.now() < deadline && !gone() && !this.stopped) {
      const name = await serverNameAt(target, port);
      if (name === this.opts.serverName) return true;
      await new Promise((r) => setTimeout(r, 50));
    }
    return false;
  }

  async shutdown(deadline: AbortSignal): Promise<void> {
    this.stopped = true;
    clearTimeout(this.restartTimer);
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
      child.kill("SIGTERM");
      const force = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
      const onAbort = () => child.kill("SIGKILL");
      deadline.addEventListener("abort", onAbort, { once: true });
      await exited;
      clearTimeout(force);
      deadline.removeEventListener("abort", onAbort);
    }
    this.child = undefined;
    process.off("exit", this.killOnExit);
    globalThis.removeEventListener?.("unload", this.killOnExit);
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
    this.dir = undefined;
  }
}

/** The server_name of the NATS server answering at host:port, or undefined. */
function serverNameAt(host: string, port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    let buf = "";
    const done = (name?: string) => {
      socket.destroy();
      resolve(name);
    };
    socket.setTimeout(1000, () => done());
    socket.on("error", () => done());
    socket.on("data", (d: Buffer) => {
      buf += d.toString();
      const nl = buf.indexOf("\r\n");
      if (nl < 0) return;
      const line = buf.slice(0, nl);
      if (!line.startsWith("INFO ")) return done();
      try {
        done((JSON.parse(line.slice(5)) as { server_name?: string }).server_name);
      } catch {
        done();
      }
    });
  });
}
