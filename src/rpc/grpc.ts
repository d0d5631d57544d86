// gRPC RPC over our own unary HTTP/2 client (grpc_transport.ts), one connection per backend
// address. anycable-go hands grpc-go a round_robin balancer over what its resolver yields; the same
// happens here in a few lines: addresses come from the target (static, grpc-list, or DNS re-resolved
// periodically), calls rotate over them and skip, for a while, an address whose connection just
// failed.
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  type CommandMessage,
  type CommandResponse,
  type ConnectionRequest,
  type ConnectionResponse,
  type DisconnectRequest,
  type DisconnectResponse,
  RPC,
} from "../../gen/anycable/rpc_pb.ts";
import type { Logger } from "../log/logger.ts";
import { type CallOptions, callMetadata, type RpcClient } from "./client.ts";
import { GrpcChannel, type UnaryMethod } from "./grpc_transport.ts";
import { isRetryable } from "./retry.ts";
import { type GrpcTarget, joinHostPort, parseGrpcTarget } from "./targets.ts";
import { nodeTlsOptions, type RpcTlsSettings } from "./tls.ts";

const RESOLVE_INTERVAL_MS = 30_000;
const DOWN_BASE_MS = 1_000;
const DOWN_MAX_MS = 30_000;

export interface GrpcRpcOptions {
  host: string;
  tls: RpcTlsSettings;
  maxRecvSize: number;
  maxSendSize: number;
  logger: Logger;
  /** Injectable resolver (tests): every address of a name. */
  resolve?: (host: string) => Promise<string[]>;
  resolveIntervalMs?: number;
  /**
   * Open a fresh HTTP/2 session for every call and destroy it afterwards (a TCP + HTTP/2
   * handshake per call). No runtime needs it any more; `maxStreamsPerSession` is the bounded form.
   */
  sessionPerCall?: boolean;
  /**
   * Retire an HTTP/2 session after it was handed this many calls: a fresh one takes the next
   * calls and the old one is closed from our side once its calls finished (0 or unset: reuse
   * forever). Deno's node:http2 crashes the process when a GOAWAY (a backend restart) reaches an
   * idle session that already finished ~100 streams; it survives GOAWAY on sessions with fewer,
   * on sessions with streams in flight, and closing a session itself however many it finished.
   * Bounding every session to a few dozen streams keeps it out of that state at the cost of one
   * handshake per that many calls.
   */
  maxStreamsPerSession?: number;
}

interface Endpoint {
  address: string;
  serverName?: string;
  channel: GrpcChannel;
  inflight: number;
  failures: number;
  downUntil: number;
  removed: boolean;
}

async function systemResolve(host: string): Promise<string[]> {
  const records = await lookup(host, { all: true });
  return [...new Set(records.map((r) => r.address))];
}

export class GrpcRpcClient implements RpcClient {
  readonly impl = "grpc";
  private readonly target: GrpcTarget;
  private readonly log: Logger;
  private readonly tls: { ca?: string; rejectUnauthorized: boolean } | undefined;
  private endpoints: Endpoint[] = [];
  private next = 0;
  private resolveTimer: ReturnType<typeof setInterval> | undefined;
  private resolving: Promise<void> | undefined;
  private lastResolveAt = 0;
  private closed = false;

  constructor(private readonly opts: GrpcRpcOptions) {
    this.target = parseGrpcTarget(opts.host);
    this.log = opts.logger.with({ context: "rpc", impl: "grpc" });
    this.tls = nodeTlsOptions(opts.tls);
    if (this.target.kind === "static") this.setAddresses(this.target.addresses);
  }

  /** Resolves DNS targets once and keeps re-resolving them in the background. */
  async start(): Promise<void> {
    if (this.target.kind !== "dns") return;
    await this.resolveNow();
    const every = this.opts.resolveIntervalMs ?? RESOLVE_INTERVAL_MS;
    this.resolveTimer = setInterval(() => void this.resolveNow(), every);
    (this.resolveTimer as { unref?: () => void }).unref?.();
  }

  addresses(): string[] {
    return this.endpoints.map((e) => e.address);
  }

  ready(): Error | undefined {
    return undefined;
  }

  activeConnections(): number {
    let n = 0;
    for (const e of this.endpoints) n += e.channel.openConnections();
    return n;
  }

  connect(req: ConnectionRequest, opts: CallOptions): Promise<ConnectionResponse> {
    return this.call(RPC.method.connect, req, opts);
  }

  command(req: CommandMessage, opts: CallOptions): Promise<CommandResponse> {
    return this.call(RPC.method.command, req, opts);
  }

  disconnect(req: DisconnectRequest, opts: CallOptions): Promise<DisconnectResponse> {
    return this.call(RPC.method.disconnect, req, opts);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.resolveTimer) clearInterval(this.resolveTimer);
    for (const e of this.endpoints) e.channel.close();
    this.endpoints = [];
  }

  private async call<I extends DescMessage, O extends DescMessage>(
    method: UnaryMethod<I, O>,
    req: MessageShape<I>,
    opts: CallOptions,
  ): Promise<MessageShape<O>> {
    const ep = this.pick();
    if (!ep) {
      if (this.target.kind === "dns") void this.resolveSoon();
      throw new ConnectError(`no addresses resolved for ${this.opts.host}`, Code.Unavailable);
    }
    ep.inflight++;
    try {
      const res = await ep.channel.unary(method, req, callMetadata(opts), opts);
      ep.failures = 0;
      ep.downUntil = 0;
      return res;
    } catch (e) {
      const err = ConnectError.from(e);
      // a call its session cancelled says nothing about the address
      const cancelled = opts.signal?.aborted === true;
      if (!cancelled && isRetryable(err) && err.code !== Code.ResourceExhausted) this.markDown(ep);
      throw err;
    } finally {
      ep.inflight--;
      if (ep.removed && ep.inflight === 0) ep.channel.close();
    }
  }

  /** Round-robin over healthy addresses; when none is healthy, over all of them. */
  private pick(): Endpoint | undefined {
    const n = this.endpoints.length;
    if (n === 0) return undefined;
    const now = Date.now();
    for (let i = 0; i < n; i++) {
      const idx = (this.next + i) % n;
      const ep = this.endpoints[idx]!;
      if (ep.downUntil <= now) {
        this.next = (idx + 1) % n;
        return ep;
      }
    }
    const ep = this.endpoints[this.next % n]!;
    this.next = (this.next + 1) % n;
    return ep;
  }

  private markDown(ep: Endpoint): void {
    ep.failures++;
    ep.downUntil = Date.now() + Math.min(DOWN_BASE_MS * 2 ** (ep.failures - 1), DOWN_MAX_MS);
    // a DNS target may have moved: look again (rate-limited like grpc-go's resolver)
    if (this.target.kind === "dns") void this.resolveSoon();
  }

  private resolveSoon(): Promise<void> {
    const every = this.opts.resolveIntervalMs ?? RESOLVE_INTERVAL_MS;
    if (Date.now() - this.lastResolveAt < every) return Promise.resolve();
    return this.resolveNow();
  }

  private resolveNow(): Promise<void> {
    if (this.target.kind !== "dns") return Promise.resolve();
    const { host, port } = this.target;
    this.resolving ??= (async () => {
      this.lastResolveAt = Date.now();
      try {
        const ips = isIP(host) ? [host] : await (this.opts.resolve ?? systemResolve)(host);
        if (this.closed) return;
        if (ips.length === 0) throw new Error("no addresses");
        this.setAddresses(
          ips.map((ip) => joinHostPort(ip, port)),
          host,
        );
      } catch (err) {
        this.log.warn("failed to resolve RPC host", { host, error: err });
      } finally {
        this.resolving = undefined;
      }
    })();
    return this.resolving;
  }

  private setAddresses(addresses: string[], serverName?: string): void {
    const wanted = new Set(addresses);
    const kept: Endpoint[] = [];
    for (const e of this.endpoints) {
      if (wanted.has(e.address)) {
        kept.push(e);
        wanted.delete(e.address);
      } else {
        e.removed = true;
        if (e.inflight === 0) e.channel.close();
      }
    }
    for (const address of wanted) kept.push(this.endpoint(address, serverName));
    const before = this.endpoints.map((e) => e.address).join(",");
    this.endpoints = kept;
    const after = kept.map((e) => e.address).join(",");
    if (before !== after) this.log.debug("RPC addresses", { addresses: after });
  }

  private endpoint(address: string, serverName?: string): Endpoint {
    const channel = new GrpcChannel({
      address,
      tls: this.tls,
      serverName,
      maxRecvSize: this.opts.maxRecvSize,
      maxSendSize: this.opts.maxSendSize,
      sessionPerCall: this.opts.sessionPerCall,
      maxStreamsPerSession: this.opts.maxStreamsPerSession,
    });
    return { address, serverName, channel, inflight: 0, failures: 0, downUntil: 0, removed: false };
  }
}
