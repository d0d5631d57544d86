// Real redis-server / nats-server processes for tests: private, on free loopback ports, stopped by PID.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./ports.ts";
import { waitFor } from "./wait.ts";

const INSTALL_HINT: Record<string, string> = {
  "redis-server": "sudo apt-get install redis-server",
  "nats-server": "sudo apt-get install nats-server",
  ruby: "sudo apt-get install ruby",
};

function installed(bin: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${bin}`], { stdio: "ignore" }).status === 0;
}

const announced = new Set<string>();

/**
 * Whether tests needing `bin` can run. Under CI=true a missing service throws (CI must not skip);
 * elsewhere the suite skips those tests after one loud line saying how to install it.
 */
export function hasService(bin: "redis-server" | "nats-server" | "ruby"): boolean {
  if (installed(bin)) return true;
  if (process.env.CI === "true") throw new Error(`${bin} is required under CI=true but is not installed`);
  if (!announced.has(bin)) {
    announced.add(bin);
    console.warn(
      `!!! ${bin} not found: skipping the tests that need it. Install it with: ${INSTALL_HINT[bin]} !!!`,
    );
  }
  return false;
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, "127.0.0.1");
    s.on("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.on("error", () => resolve(false));
  });
}

export interface ServiceProcess {
  port: number;
  url: string;
  proc: ChildProcess;
  stop(): Promise<void>;
  /** Starts it again on the same port (fault tests). */
  restart(): Promise<ServiceProcess>;
}

export interface RedisStartOptions {
  /** More redis-server arguments (e.g. ["--requirepass", "secret"]). */
  args?: string[];
  /** Serve TLS only, on the port (rediss://). */
  tls?: { certFile: string; keyFile: string; caFile: string; authClients: boolean };
}

export async function startRedis(port?: number, opts: RedisStartOptions = {}): Promise<ServiceProcess> {
  const p = port ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), "acts-redis-"));
  const listen = opts.tls
    ? [
        "--port",
        "0",
        "--tls-port",
        String(p),
        "--tls-cert-file",
        opts.tls.certFile,
        "--tls-key-file",
        opts.tls.keyFile,
        "--tls-ca-cert-file",
        opts.tls.caFile,
        "--tls-auth-clients",
        opts.tls.authClients ? "yes" : "no",
      ]
    : ["--port", String(p)];
  const proc = spawn(
    "redis-server",
    [
      ...listen,
      "--bind",
      "127.0.0.1",
      "--save",
      "",
      "--appendonly",
      "no",
      "--dir",
      dir,
      ...(opts.args ?? []),
    ],
    { stdio: "ignore" },
  );
  const exited = new Promise<void>((resolve) => proc.on("exit", () => resolve()));
  await waitFor(() => portOpen(p), `redis-server on ${p}`);
  return {
    port: p,
    url: `${opts.tls ? "rediss" : "redis"}://127.0.0.1:${p}`,
    proc,
    async stop() {
      proc.kill("SIGKILL");
      await exited;
    },
    restart: () => startRedis(p, opts),
  };
}

export interface NatsProcess extends ServiceProcess {
  /** The monitoring endpoint (/connz). */
  monitorUrl: string;
  restart(): Promise<NatsProcess>;
}

/** A private `nats-server -js` (JetStream in a temp dir) with a monitoring port, stopped by PID. */
export async function startNats(
  port?: number,
  monitorPort?: number,
  extraArgs: string[] = [],
): Promise<NatsProcess> {
  const p = port ?? (await freePort());
  const m = monitorPort ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), "acts-nats-"));
  const args = ["-a", "127.0.0.1", "-p", String(p), "-m", String(m), "-js", "-sd", dir, ...extraArgs];
  const proc = spawn("nats-server", args, { stdio: "ignore" });
  const exited = new Promise<void>((resolve) => proc.on("exit", () => resolve()));
  await waitFor(() => portOpen(p), `nats-server on ${p}`);
  await waitFor(() => portOpen(m), `nats-server monitoring on ${m}`);
  return {
    port: p,
    url: `nats://127.0.0.1:${p}`,
    monitorUrl: `http://127.0.0.1:${m}`,
    proc,
    async stop() {
      proc.kill("SIGKILL");
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
    restart: () => startNats(p, m, extraArgs),
  };
}

/** Subscriptions the NATS server holds on `subject` (all connections), read from /connz. */
export async function natsSubscribers(monitorUrl: string, subject: string): Promise<number> {
  const res = await fetch(`${monitorUrl}/connz?subs=1`);
  const body = (await res.json()) as { connections?: { subscriptions_list?: string[] }[] };
  let n = 0;
  for (const c of body.connections ?? []) for (const s of c.subscriptions_list ?? []) if (s === subject) n++;
  return n;
}
