// Real redis-server / nats-server processes (and Redis Sentinel deployments) for tests: private,
// on free loopback ports, stopped by PID.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
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

export interface SentinelSetOptions {
  /** How many sentinels watch the master (default 1; quorum 1, so one alone can fail over). */
  sentinels?: number;
  masterName?: string;
  /** requirepass / masterauth of the data nodes (and the sentinels' auth-pass). */
  dataPassword?: string;
  /** requirepass of the sentinels. */
  sentinelPassword?: string;
  downAfterMs?: number;
  failoverTimeoutMs?: number;
  /** Also monitor the replica under this name: a "master" whose ROLE says slave. */
  monitorReplicaAs?: string;
}

export interface SentinelSet {
  masterName: string;
  /** The data nodes: [the first master, its replica]. */
  nodes: ServiceProcess[];
  sentinels: ServiceProcess[];
  /** "127.0.0.1:p1,127.0.0.1:p2" for --redis_sentinels. */
  sentinelAddrs: string;
  /** The data node the first live sentinel names master now. */
  master(): Promise<ServiceProcess>;
  /** Resolves once a sentinel sees a replica in sync (a failover can then pick it). */
  replicaReady(): Promise<void>;
  stop(): Promise<void>;
}

/** Sends one command to a sentinel (or a data node) on a fresh connection (no reconnects), in RESP2. */
export async function redisCommand(
  server: ServiceProcess,
  password: string | undefined,
  args: string[],
): Promise<unknown> {
  const { createClient } = await import("redis");
  const c = createClient({
    socket: { host: "127.0.0.1", port: server.port, reconnectStrategy: false },
    RESP: 2,
    ...(password !== undefined && { password }),
  });
  c.on("error", () => {});
  await c.connect();
  try {
    return await c.sendCommand(args);
  } finally {
    c.destroy();
  }
}

/**
 * A Redis Sentinel deployment on free loopback ports: a master, one replica (`--replicaof`) and
 * `sentinels` sentinels (`redis-server <conf> --sentinel`, each with its own writable config in a
 * temp dir), with a short down-after-milliseconds / failover-timeout so a failover takes seconds.
 * Every process is stopped by PID.
 */
export async function startSentinelSet(opts: SentinelSetOptions = {}): Promise<SentinelSet> {
  const name = opts.masterName ?? "mymaster";
  const args = [
    // no 5 s wait for more replicas before a sync (the default): resyncs after a failover are quick
    "--repl-diskless-sync-delay",
    "0",
    ...(opts.dataPassword ? ["--requirepass", opts.dataPassword, "--masterauth", opts.dataPassword] : []),
  ];
  const master = await startRedis(undefined, { args });
  const replica = await startRedis(undefined, {
    args: [...args, "--replicaof", "127.0.0.1", String(master.port)],
  });
  const nodes = [master, replica];
  // In sync before the sentinels first look at it (then every 10 s): a failover can pick it at once.
  await waitFor(
    async () =>
      /master_link_status:up/.test(
        String(await redisCommand(replica, opts.dataPassword, ["INFO", "replication"])),
      ),
    "the replica in sync with the master",
    10_000,
    50,
  );
  const sentinels: ServiceProcess[] = [];
  for (let i = 0; i < (opts.sentinels ?? 1); i++) {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), "acts-sentinel-"));
    const conf = join(dir, "sentinel.conf");
    const lines = [
      `port ${port}`,
      "bind 127.0.0.1",
      `dir ${dir}`,
      `sentinel monitor ${name} 127.0.0.1 ${master.port} 1`,
      `sentinel down-after-milliseconds ${name} ${opts.downAfterMs ?? 1000}`,
      `sentinel failover-timeout ${name} ${opts.failoverTimeoutMs ?? 2000}`,
      ...(opts.dataPassword ? [`sentinel auth-pass ${name} ${opts.dataPassword}`] : []),
      ...(opts.monitorReplicaAs
        ? [
            `sentinel monitor ${opts.monitorReplicaAs} 127.0.0.1 ${replica.port} 1`,
            ...(opts.dataPassword
              ? [`sentinel auth-pass ${opts.monitorReplicaAs} ${opts.dataPassword}`]
              : []),
          ]
        : []),
      ...(opts.sentinelPassword ? [`requirepass ${opts.sentinelPassword}`] : []),
    ];
    writeFileSync(conf, `${lines.join("\n")}\n`);
    const proc = spawn("redis-server", [conf, "--sentinel"], { stdio: "ignore" });
    const exited = new Promise<void>((resolve) => proc.on("exit", () => resolve()));
    await waitFor(() => portOpen(port), `redis sentinel on ${port}`);
    const sentinel: ServiceProcess = {
      port,
      url: `redis://127.0.0.1:${port}`,
      proc,
      async stop() {
        proc.kill("SIGKILL");
        await exited;
        rmSync(dir, { recursive: true, force: true });
      },
      restart: () => Promise.reject(new Error("a sentinel is not restarted")),
    };
    sentinels.push(sentinel);
  }
  const ask = (args: string[]) => redisCommand(sentinels[0], opts.sentinelPassword, args);
  return {
    masterName: name,
    nodes,
    sentinels,
    sentinelAddrs: sentinels.map((s) => `127.0.0.1:${s.port}`).join(","),
    async master() {
      const reply = (await ask(["SENTINEL", "GET-MASTER-ADDR-BY-NAME", name])) as string[];
      const node = nodes.find((n) => n.port === Number(reply[1]));
      if (!node) throw new Error(`the sentinel names an unknown master: ${reply}`);
      return node;
    },
    async replicaReady() {
      await waitFor(
        async () => {
          const replicas = (await ask(["SENTINEL", "REPLICAS", name])) as string[][];
          return replicas.some((r) => {
            const f = new Map<string, string>();
            for (let i = 0; i + 1 < r.length; i += 2) f.set(r[i], r[i + 1]);
            return f.get("flags") === "slave" && f.get("master-link-status") === "ok";
          });
        },
        "a sentinel to see a replica in sync",
        15_000,
        100,
      );
    },
    async stop() {
      await Promise.all([...sentinels, ...nodes].map((p) => p.stop()));
    },
  };
}
