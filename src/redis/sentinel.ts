// Redis Sentinel: where the master named by --redis_url is now. One SentinelMonitor per
// RedisSupervisor (as anycable-go gives each Redis part its own rueidis client, each with its own
// sentinel connection). It
// - asks the sentinels in turn (`SENTINEL GET-MASTER-ADDR-BY-NAME`, on a short-lived connection)
//   whenever a data connection is about to be made, so every (re)connect goes to the current
//   master; the sentinel that answered moves to the front of the list;
// - learns the other sentinels from the one that answered (`SENTINEL SENTINELS`), so a sentinel
//   added later can be asked when the configured ones are gone;
// - keeps one connection SUBSCRIBEd to `+switch-master` on the sentinel that answered last, so a
//   failover moves the data connections at once (as rueidis does);
// - asks again every --redis_sentinel_discovery_interval seconds, a safety net for a missed
//   +switch-master (anycable-go 1.6 accepts the option and does nothing with it).
import { createClient } from "redis";
import { BurstLog } from "../log/burst_log.ts";
import type { Logger } from "../log/logger.ts";
import { hostPort, type SentinelNode, type SentinelSetup } from "./connection.ts";

export interface MasterAddress {
  host: string;
  port: number;
}

export interface SentinelMonitorOptions {
  log: Logger;
  /** Seconds between background polls (0: none). */
  discoveryIntervalSec: number;
  /** TCP keepalive of the sentinel connections (node-redis socket options). */
  keepAlive: { keepAlive: boolean; keepAliveInitialDelay?: number };
  /** The master moved (not called for the first address found). */
  onSwitch(master: MasterAddress, reason: string): void;
  /** Connections are failing and asking on their own: the periodic poll skips its turn. */
  busy?(): boolean;
  /** Bound on one sentinel's connect + reply (ms). */
  queryTimeoutMs?: number;
}

/** Sentinels learnt from SENTINEL SENTINELS beyond the configured ones are kept up to this many. */
const MAX_SENTINELS = 32;
const QUERY_TIMEOUT_MS = 3000;

function sentinelClient(
  node: SentinelNode,
  connectTimeout: number,
  keepAlive: SentinelMonitorOptions["keepAlive"],
) {
  const client = createClient({
    socket: {
      host: node.host,
      port: node.port,
      tls: false,
      connectTimeout,
      reconnectStrategy: false,
      ...keepAlive,
    },
    ...(node.username !== undefined && { username: node.username }),
    ...(node.password !== undefined && { password: node.password }),
    // Sentinel has no CLIENT SETINFO before Redis 7.2: skip the round trip.
    disableClientInfo: true,
  });
  // node-redis throws an unhandled 'error' event without a listener; failures surface as
  // rejections of connect() / sendCommand().
  client.on("error", () => {});
  return client;
}

type Client = ReturnType<typeof sentinelClient>;

export class SentinelMonitor {
  private readonly sentinels: SentinelNode[];
  private readonly name: string;
  private current?: MasterAddress;
  private inflight?: Promise<MasterAddress>;
  /** Bumped by every +switch-master: an answer asked for before it is stale. */
  private switchSeq = 0;
  private watch?: { client: Client; node: SentinelNode };
  private timer?: ReturnType<typeof setInterval>;
  private readonly queries = new Set<Client>();
  private readonly background: BurstLog;
  private stopped = false;

  constructor(
    setup: SentinelSetup,
    private readonly opts: SentinelMonitorOptions,
  ) {
    this.sentinels = setup.sentinels.map((s) => ({ ...s }));
    this.name = setup.masterName;
    this.background = new BurstLog(opts.log, {
      recovered: "Redis Sentinel answers again",
      countKey: "failures",
      level: "warn",
      windowMs: 60_000,
    });
  }

  get masterName(): string {
    return this.name;
  }

  /** The last known master address. */
  get master(): MasterAddress | undefined {
    return this.current;
  }

  /** The sentinels it would ask, in order (configured ones first, then learnt ones). */
  get knownSentinels(): string[] {
    return this.sentinels.map((s) => hostPort(s));
  }

  /** Starts the periodic poll (idempotent). */
  start(): void {
    if (this.timer || this.stopped || this.opts.discoveryIntervalSec <= 0) return;
    this.timer = setInterval(() => {
      if (!this.opts.busy?.()) this.refresh();
    }, this.opts.discoveryIntervalSec * 1000);
  }

  /** Asks once in the background; failures are logged once per burst. */
  refresh(): void {
    if (this.stopped) return;
    this.resolve().then(
      () => this.background.success(),
      (err: Error) => {
        if (!this.stopped) this.background.failure("Redis Sentinel unreachable", { error: err.message });
      },
    );
  }

  /**
   * The master's address as a sentinel reports it now. Concurrent callers share one round of
   * questions. Rejects with one line naming what each sentinel said when none knows the master.
   */
  resolve(): Promise<MasterAddress> {
    this.inflight ??= this.ask().finally(() => {
      this.inflight = undefined;
    });
    return this.inflight;
  }

  private async ask(): Promise<MasterAddress> {
    const seq = this.switchSeq;
    const problems: string[] = [];
    for (const node of [...this.sentinels]) {
      if (this.stopped) break;
      try {
        const { master, others } = await this.query(node);
        if (!master) {
          problems.push(`${hostPort(node)}: unknown master`);
          continue;
        }
        this.promote(node);
        this.learn(others, node);
        this.ensureWatch(node);
        // +switch-master arrived while this question was out: its answer is newer.
        if (seq !== this.switchSeq && this.current) return this.current;
        this.update(master, `reported by sentinel ${hostPort(node)}`);
        return master;
      } catch (err) {
        problems.push(`${hostPort(node)}: ${(err as Error).message}`);
      }
    }
    if (this.stopped) throw new Error("Redis Sentinel monitor closed");
    const shown = problems.slice(0, 3).join("; ");
    const more = problems.length > 3 ? `; and ${problems.length - 3} more` : "";
    const allUnknown = problems.length > 0 && problems.every((p) => p.endsWith(": unknown master"));
    throw new Error(
      allUnknown
        ? `Redis Sentinel does not know master "${this.name}" (${shown}${more})`
        : `no Redis Sentinel could name master "${this.name}" (${shown}${more})`,
    );
  }

  private update(master: MasterAddress, reason: string): void {
    const before = this.current;
    if (before && before.host === master.host && before.port === master.port) return;
    this.current = master;
    if (!before) {
      this.opts.log.info(`Redis Sentinel: master ${this.name} is at ${hostPort(master)}`);
      return;
    }
    this.opts.log.info(`Redis Sentinel: master ${this.name} moved to ${hostPort(master)}`, {
      from: hostPort(before),
      reason,
    });
    this.opts.onSwitch(master, reason);
  }

  /** One sentinel, one short-lived connection: the master's address and the other sentinels. */
  private async query(node: SentinelNode): Promise<{ master?: MasterAddress; others: SentinelNode[] }> {
    const timeoutMs = this.opts.queryTimeoutMs ?? QUERY_TIMEOUT_MS;
    const client = this.sentinelClient(node, timeoutMs);
    this.queries.add(client);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no reply within ${timeoutMs}ms`)), timeoutMs);
    });
    try {
      const work = (async () => {
        await client.connect();
        const addr = await client.sendCommand(["SENTINEL", "GET-MASTER-ADDR-BY-NAME", this.name]);
        if (!Array.isArray(addr) || addr.length < 2) return { others: [] };
        const master = { host: String(addr[0]), port: Number(addr[1]) };
        const listed = await client.sendCommand(["SENTINEL", "SENTINELS", this.name]).catch(() => []);
        return { master, others: parseSentinelList(listed) };
      })();
      work.catch(() => {});
      return await Promise.race([work, timeout]);
    } finally {
      clearTimeout(timer);
      this.queries.delete(client);
      client.destroy();
    }
  }

  private sentinelClient(node: SentinelNode, connectTimeout: number): Client {
    return sentinelClient(node, connectTimeout, this.opts.keepAlive);
  }

  /** The sentinel that answered is asked first next time. */
  private promote(node: SentinelNode): void {
    const i = this.sentinels.indexOf(node);
    if (i > 0) {
      this.sentinels.splice(i, 1);
      this.sentinels.unshift(node);
    }
  }

  private learn(others: MasterAddress[], via: SentinelNode): void {
    for (const o of others) {
      if (this.sentinels.length >= MAX_SENTINELS) return;
      if (this.sentinels.some((s) => s.host === o.host && s.port === o.port)) continue;
      // Sentinels of one deployment share credentials; a learnt one uses those that worked.
      const node: SentinelNode = { host: o.host, port: o.port };
      if (via.username !== undefined) node.username = via.username;
      if (via.password !== undefined) node.password = via.password;
      this.sentinels.push(node);
      this.opts.log.debug("Redis Sentinel: learnt a sentinel", { sentinel: hostPort(node) });
    }
  }

  /** One connection subscribed to +switch-master, on the sentinel that answered last. */
  private ensureWatch(node: SentinelNode): void {
    if (this.stopped || this.watch) return;
    const client = this.sentinelClient(node, this.opts.queryTimeoutMs ?? QUERY_TIMEOUT_MS);
    const watch = { client, node };
    this.watch = watch;
    let established = false;
    const lost = () => {
      if (this.watch !== watch) return;
      this.watch = undefined;
      client.destroy();
      // Ask (another) sentinel, which watches again from there; a watch that never got going
      // waits for the next question instead (no loop against a sentinel refusing it).
      if (established && !this.stopped) this.refresh();
    };
    client.on("end", lost);
    client.on("terminated", lost);
    client
      .connect()
      .then(() =>
        client.subscribe("+switch-master", (message: string) => {
          // "<name> <old ip> <old port> <new ip> <new port>"
          const [name, , , host, port] = message.split(" ");
          if (name !== this.name || host === undefined || port === undefined) return;
          this.switchSeq++;
          this.update({ host, port: Number(port) }, `+switch-master from sentinel ${hostPort(node)}`);
        }),
      )
      .then(() => {
        established = true;
      })
      .catch(lost);
  }

  async close(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    const watch = this.watch;
    this.watch = undefined;
    watch?.client.destroy();
    for (const q of this.queries) q.destroy();
    this.queries.clear();
  }
}

/**
 * SENTINEL SENTINELS' reply → their addresses: a list of flat field/value lists (RESP2) or of maps
 * (RESP3, node-redis's default, which gives plain objects or Maps depending on its type mapping).
 */
export function parseSentinelList(reply: unknown): MasterAddress[] {
  if (!Array.isArray(reply)) return [];
  const out: MasterAddress[] = [];
  for (const entry of reply) {
    const fields = new Map<string, string>();
    if (Array.isArray(entry)) {
      for (let i = 0; i + 1 < entry.length; i += 2) fields.set(String(entry[i]), String(entry[i + 1]));
    } else if (entry instanceof Map) {
      for (const [k, v] of entry) fields.set(String(k), String(v));
    } else if (entry !== null && typeof entry === "object") {
      for (const [k, v] of Object.entries(entry)) fields.set(k, String(v));
    }
    const host = fields.get("ip");
    const port = Number(fields.get("port"));
    if (host && Number.isInteger(port) && port > 0 && port < 65536) out.push({ host, port });
  }
  return out;
}
