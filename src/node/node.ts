// Session lifecycle: authenticate -> subscribe -> perform -> disconnect, plus broadcasts,
// remote commands, the shared ticker (pings, slow clients) and graceful shutdown.
import type { Hub, Publication } from "../hub/hub.ts";
import { compact, type Logger } from "../log/logger.ts";
import type { Counter, Metrics } from "../metrics/registry.ts";
import {
  type ClientCommand,
  DisconnectReason,
  decodeCommand,
  disconnectMessage,
  PONG_MESSAGE,
  pingMessage,
  pingTimestamp,
  publicationDataJson,
} from "../protocols/actioncable.ts";
import type { ChannelContext, CommandResult, Controller } from "./controller.ts";
import { NO_STATE, Session } from "./session.ts";
import type { ClientSocket, ConnectionRequest } from "./socket.ts";

export const CloseCode = {
  normal: 1000,
  goingAway: 1001,
  abnormal: 1006,
  messageTooBig: 1009,
  internalError: 1011,
} as const;

export type DisconnectMode = "auto" | "always" | "never";

/** istate key naming a subscription's whisper stream (set by the streams controller or RPC). */
export const WHISPER_STREAM_STATE = "$w";
/** istate key naming a subscription's presence stream. */
export const PRESENCE_STREAM_STATE = "$p";

export interface NodeOptions {
  controller: Controller;
  hub: Hub;
  metrics: Metrics;
  logger: Logger;
  pingIntervalMs: number;
  pingPrecision: string;
  nativePings: boolean;
  maxPendingBytes: number;
  writeTimeoutMs: number;
  disconnectMode: DisconnectMode;
  /**
   * Whether controller calls can be cancelled (an RPC backend is in the chain). Without one, no
   * session needs an AbortController for its calls. Default: true.
   */
  cancellableCalls?: boolean;
  /** Pseudo-random source for the first ping's offset (injectable for tests). */
  random?: () => number;
}

export class Node {
  readonly sessions = new Set<Session>();
  /**
   * Sessions whose socket may hold unsent data: a send came back "queued", or a native
   * publication reached them. Only these are polled for slow-client checks, so idle connections
   * cost the ticker no call into the runtime.
   */
  private readonly backlogged = new Set<Session>();
  /** Connection identifiers -> sessions, for remote disconnects. */
  private readonly byIdentifiers = new Map<string, Session | Set<Session>>();
  private shuttingDown = false;
  private readonly log: Logger;
  private readonly random: () => number;
  private readonly cancellable: boolean;
  private readonly m: {
    clientMsg: Counter;
    failedClientMsg: Counter;
    failedAuths: Counter;
    slowClients: Counter;
    publications: Counter;
    broadcastMsg: Counter;
    remoteCommands: Counter;
    failedBroadcast: Counter;
    serverMsg: Counter;
    failedServerMsg: Counter;
    timeoutServerMsg: Counter;
    dataSent: Counter;
    dataRcvd: Counter;
  };

  constructor(private readonly opts: NodeOptions) {
    this.log = opts.logger.with({ context: "node" });
    this.random = opts.random ?? Math.random;
    this.cancellable = opts.cancellableCalls ?? true;
    const metrics = opts.metrics;
    this.m = {
      failedAuths: metrics.counter(
        "failed_auths_total",
        "The total number of failed authentication attempts",
      ),
      clientMsg: metrics.counter("client_msg_total", "The total number of received messages from clients"),
      slowClients: metrics.counter(
        "disconnected_slow_clients_total",
        "The total number of disconnected slow clients",
      ),
      failedClientMsg: metrics.counter(
        "failed_client_msg_total",
        "The total number of unrecognized messages received from clients",
      ),
      publications: metrics.counter(
        "publications_total",
        "The total number of publications received (from the application)",
      ),
      broadcastMsg: metrics.counter(
        "broadcast_msg_total",
        "The total number of messages received through PubSub (for broadcast)",
      ),
      remoteCommands: metrics.counter(
        "remote_commands_total",
        "The total number of remote commands received through PubSub",
      ),
      failedBroadcast: metrics.counter(
        "failed_broadcast_msg_total",
        "The total number of unrecognized publications received from the application",
      ),
      serverMsg: metrics.counter("server_msg_total", "The total number of messages sent to clients"),
      failedServerMsg: metrics.counter(
        "failed_server_msg_total",
        "The total number of messages failed to send to clients",
      ),
      timeoutServerMsg: metrics.counter(
        "timeout_server_msg_total",
        "The total number of messages failed to send to clients due to write timeouts",
      ),
      dataSent: metrics.counter("data_sent_total", "The total amount of bytes sent to clients"),
      dataRcvd: metrics.counter("data_rcvd_total", "The total amount of bytes received from clients"),
    };
    const clients = metrics.gauge("clients_num", "The number of active clients");
    const uniq = metrics.gauge(
      "clients_uniq_num",
      "The number of unique clients (with respect to connection identifiers)",
    );
    const streams = metrics.gauge("broadcast_streams_num", "The number of active broadcasting streams");
    metrics.gauge("disconnect_queue_size", "The size of delayed disconnect");
    metrics.onCollect(() => {
      clients.set(this.sessions.size);
      uniq.set(this.byIdentifiers.size);
      streams.set(this.opts.hub.streamsCount);
    });
  }

  get isShuttingDown(): boolean {
    return this.shuttingDown;
  }

  get size(): number {
    return this.sessions.size;
  }

  /** Registers a freshly upgraded socket and starts authentication. */
  open(request: ConnectionRequest, socket: ClientSocket): Session {
    const session = new Session(
      request,
      socket,
      this.opts.pingIntervalMs,
      this.opts.pingPrecision,
      this.onSend,
    );
    this.sessions.add(session);
    this.enqueue(session, () => this.authenticate(session));
    return session;
  }

  /** A frame arrived from the client. `byteLength` is the frame's size on the wire. */
  message(session: Session, frame: string, byteLength: number): void {
    if (session.state === "closed" || session.readingStopped) return;
    this.m.dataRcvd.inc(byteLength);
    const decoded = decodeCommand(frame);
    if (!decoded.ok) {
      // anycable-go's read loop ends on an undecodable frame: the socket stays open for output
      // but nothing more from this client is processed.
      this.m.failedClientMsg.inc();
      session.readingStopped = true;
      this.log.debug("failed to decode client message, ignoring further input", {
        sid: session.sid,
        data: compact(frame),
        error: decoded.error,
      });
      return;
    }
    this.m.clientMsg.inc();
    const cmd = decoded.command;
    this.enqueue(session, () => this.handleCommand(session, cmd, frame));
  }

  /** The socket is gone (client closed, network error, or we closed it). */
  closed(session: Session): void {
    if (!this.sessions.delete(session)) return;
    const wasConnected = session.state === "connected";
    session.state = "closed";
    session.cancelCalls();
    this.backlogged.delete(session);
    this.unindexIdentifiers(session);
    for (const [identifier, streams] of session.subscriptions) {
      for (const stream of streams) this.opts.hub.unsubscribe(session, stream, identifier);
    }
    // Disconnect is not cancelled with the session: it is queued and made after the close.
    if (wasConnected && session.disconnectable) {
      const subs = session.subscriptionIds();
      const ctx = { sid: session.sid, env: session.env, identifiers: session.identifiers };
      this.opts.controller.disconnect(ctx, subs).catch((err) => {
        this.log.warn("disconnect call failed", { sid: session.sid, error: err });
      });
    }
  }

  /** Bun's drain callback: the socket's backlog was flushed. */
  drained(session: Session): void {
    session.backpressuredSince = 0;
    session.lastBuffered = 0;
    this.backlogged.delete(session);
  }

  /** Closes a session from the server side with a protocol `disconnect` first. */
  disconnect(session: Session, reason: string, reconnect: boolean, code: number, closeReason: string): void {
    if (session.state === "closed" || session.closing) return;
    session.closing = true;
    session.deliver(disconnectMessage(reason, reconnect));
    this.closeSocket(session, code, closeReason);
  }

  private closeSocket(session: Session, code: number, reason: string): void {
    try {
      session.socket.close(code, reason);
    } catch (err) {
      this.log.debug("socket close failed", { sid: session.sid, error: err });
    }
    this.closed(session);
  }

  // --- broadcasts from the application

  broadcast(pub: Publication): void {
    this.m.broadcastMsg.inc();
    const stats = this.opts.hub.broadcast(pub);
    // Natively fanned-out frames bypass onSend, so they are counted here from the hub's stats.
    if (stats.native) {
      this.m.serverMsg.inc(stats.native.messages);
      this.m.dataSent.inc(stats.native.bytes);
    }
  }

  countPublication(): void {
    this.m.publications.inc();
  }

  countFailedPublication(): void {
    this.m.failedBroadcast.inc();
  }

  remoteDisconnect(identifiers: string, reconnect: boolean): void {
    this.m.remoteCommands.inc();
    const entry = this.byIdentifiers.get(identifiers);
    if (!entry) {
      this.log.debug("cannot disconnect session", { identifier: identifiers, reason: "not found" });
      return;
    }
    for (const session of entry instanceof Set ? [...entry] : [entry]) {
      this.disconnect(session, DisconnectReason.remote, reconnect, CloseCode.normal, "Closed remotely");
    }
  }

  // --- the one ticker for all sessions

  tick(now: number): void {
    this.opts.hub.takeNativelyPublished((sub) => {
      const session = sub as Session;
      if (session.state === "connected" && session.socket.bufferedAmount() > 0) this.backlogged.add(session);
    });
    for (const session of this.backlogged) this.checkBacklog(session, now);
    let pingFrame = "";
    let pingPrecision = "";
    let pingStamp = -1;
    for (const session of this.sessions) {
      if (session.state !== "connected" || session.pingIntervalMs <= 0 || now < session.nextPingAt) continue;
      // Pings sent in the same tick with the same precision share one encoded frame.
      const stamp = pingTimestamp(session.pingPrecision, now);
      if (stamp !== pingStamp || session.pingPrecision !== pingPrecision) {
        pingStamp = stamp;
        pingPrecision = session.pingPrecision;
        pingFrame = pingMessage(stamp);
      }
      session.deliver(pingFrame);
      if (this.opts.nativePings) session.socket.ping?.();
      session.nextPingAt = now + session.pingIntervalMs;
    }
  }

  /** Slow-client rules for a socket with unsent data: pending size, then no progress for the write timeout. */
  private checkBacklog(session: Session, now: number): void {
    const buffered = session.state === "connected" ? session.socket.bufferedAmount() : 0;
    if (buffered === 0) {
      this.drained(session);
      return;
    }
    const maxPending = this.opts.maxPendingBytes;
    if (maxPending > 0 && buffered > maxPending) {
      this.tooSlow(session, "pending size exceeded");
      return;
    }
    if (session.backpressuredSince === 0 || buffered < session.lastBuffered) {
      // progress (or the first sighting) restarts the write-timeout clock
      session.backpressuredSince = now;
    } else if (this.opts.writeTimeoutMs > 0 && now - session.backpressuredSince >= this.opts.writeTimeoutMs) {
      this.m.timeoutServerMsg.inc();
      this.tooSlow(session, "write timeout");
      return;
    }
    session.lastBuffered = buffered;
  }

  private tooSlow(session: Session, why: string): void {
    this.m.slowClients.inc();
    this.log.debug("slow client detected, disconnecting", { sid: session.sid, why });
    this.disconnect(session, DisconnectReason.tooSlow, true, CloseCode.normal, "");
  }

  private readonly onSend = (session: Session, frame: string, result: number): void => {
    if (result === 0) {
      this.m.failedServerMsg.inc();
      // the runtime refused the frame (its own backlog limit): the client cannot keep up
      if (!session.closing) this.tooSlow(session, "frame dropped by runtime");
      return;
    }
    this.m.serverMsg.inc();
    this.m.dataSent.inc(frame.length);
    if (result < 0 && !session.closing) {
      this.backlogged.add(session);
      const maxPending = this.opts.maxPendingBytes;
      if (maxPending > 0 && session.socket.bufferedAmount() > maxPending) {
        this.tooSlow(session, "pending size exceeded");
      }
    }
  };

  // --- shutdown

  /** Disconnects every client with `server_restart` (close 1001), then stops the controller. */
  async shutdown(): Promise<void> {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    const active = this.sessions.size;
    if (active > 0) this.log.info("closing active connections", { num: active });
    for (const session of [...this.sessions]) {
      this.disconnect(session, DisconnectReason.serverRestart, true, CloseCode.goingAway, "Server restart");
    }
    await this.opts.controller.shutdown?.();
  }

  // --- commands

  private enqueue(session: Session, task: () => Promise<void>): void {
    session.pending++;
    session.chain = session.chain.then(async () => {
      try {
        await task();
      } catch (err) {
        this.log.warn("unhandled session error", { sid: session.sid, error: err });
      } finally {
        if (--session.pending === 0) session.settle();
      }
    });
  }

  private async authenticate(session: Session): Promise<void> {
    let res: Awaited<ReturnType<Controller["authenticate"]>>;
    try {
      res = await this.opts.controller.authenticate({
        sid: session.sid,
        env: session.env,
        identifiers: "",
        signal: this.signalOf(session),
      });
    } catch (err) {
      if (session.isClosed) return;
      // The RPC layer already logs failures once per burst; per session it is debug detail, so a
      // reconnect storm against a dead backend does not flood the log.
      this.log.debug("failed to authenticate", { sid: session.sid, error: err });
      this.closeSocket(session, CloseCode.internalError, "Auth Error");
      return;
    }
    if (session.isClosed || !res) return;
    if (res.status === "success") {
      session.identifiers = res.identifiers;
      session.state = "connected";
      this.indexIdentifiers(session);
      if (session.pingIntervalMs > 0) {
        // spread first pings over 0.5x..1.5x of the interval so reconnect storms do not ping in step
        session.nextPingAt = Date.now() + session.pingIntervalMs * (0.5 + this.random());
      }
    } else if (res.status === "failure") {
      this.m.failedAuths.inc();
    }
    if (res.cstate) this.mergeCstate(session, res.cstate);
    for (const t of res.transmissions) session.deliver(t);
    this.markDisconnectable(session, res.disconnectInterest ?? 0);
    if (res.status !== "success") this.closeSocket(session, CloseCode.normal, "Auth Failed");
  }

  private async handleCommand(session: Session, cmd: ClientCommand, raw: string): Promise<void> {
    if (session.state !== "connected") return;
    let error: string | undefined;
    try {
      switch (cmd.command) {
        case "pong":
          return;
        case "ping":
          session.deliver(PONG_MESSAGE);
          return;
        case "subscribe":
          error = await this.subscribe(session, cmd);
          break;
        case "unsubscribe":
          error = await this.unsubscribe(session, cmd);
          break;
        case "message":
          error = await this.perform(session, cmd);
          break;
        case "whisper":
          this.whisper(session, cmd);
          break;
        default:
          error = `unknown command: ${cmd.command}`;
      }
    } catch (err) {
      error = (err as Error).message ?? String(err);
    }
    if (error !== undefined) {
      this.m.failedClientMsg.inc();
      this.log.debug("failed to handle incoming message", { sid: session.sid, data: compact(raw), error });
    }
  }

  private async subscribe(session: Session, cmd: ClientCommand): Promise<string | undefined> {
    const id = cmd.identifier;
    if (session.subscriptions.has(id)) return `already subscribed to ${id}`;
    let res: CommandResult | null;
    try {
      res = await this.opts.controller.subscribe(this.channelContext(session, id));
    } catch (err) {
      return `subscribe failed for ${id}: ${(err as Error).message}`;
    }
    if (session.isClosed || !res) return undefined;
    if (res.status === "error") return `subscribe failed for ${id}: ${res.errorMsg ?? "error"}`;
    if (res.status === "success") session.subscriptions.set(id, []);
    this.applyCommandResult(session, id, res);
    return undefined;
  }

  private async unsubscribe(session: Session, cmd: ClientCommand): Promise<string | undefined> {
    const id = cmd.identifier;
    if (!session.subscriptions.has(id)) return `unknown subscription: ${id}`;
    let res: CommandResult | null;
    try {
      res = await this.opts.controller.unsubscribe(this.channelContext(session, id));
    } catch (err) {
      return `failed to unsubscribe from ${id}: ${(err as Error).message}`;
    }
    if (session.isClosed || !res) return undefined;
    if (res.status === "error") return `failed to unsubscribe from ${id}: ${res.errorMsg ?? "error"}`;
    this.applyCommandResult(session, id, { ...res, stopAllStreams: true });
    session.subscriptions.delete(id);
    if (id in session.env.istate) delete this.ownIstate(session)[id];
    return undefined;
  }

  private async perform(session: Session, cmd: ClientCommand): Promise<string | undefined> {
    const id = cmd.identifier;
    if (!session.subscriptions.has(id)) return `unknown subscription ${id}`;
    if (typeof cmd.data !== "string") return `perform data must be a string, got ${JSON.stringify(cmd.data)}`;
    let res: CommandResult | null;
    try {
      res = await this.opts.controller.perform(this.channelContext(session, id), cmd.data);
    } catch (err) {
      return `perform failed for ${id}: ${(err as Error).message}`;
    }
    if (session.isClosed || !res) return undefined;
    if (res.status === "error") return `perform failed for ${id}: ${res.errorMsg ?? "error"}`;
    this.applyCommandResult(session, id, res);
    return undefined;
  }

  /**
   * Client-to-clients broadcast on the subscription's whisper stream (istate `$w`), never back to
   * the sender. Without such a stream the whisper is dropped quietly, as anycable-go does.
   */
  private whisper(session: Session, cmd: ClientCommand): void {
    const stream = session.env.istate[cmd.identifier]?.[WHISPER_STREAM_STATE];
    if (!stream) {
      this.log.debug("whisper stream not found", { sid: session.sid, identifier: cmd.identifier });
      return;
    }
    // Same encoding rule as any publication (a JSON null is sent as the string "null", like anycable-go).
    const dataJson = publicationDataJson(JSON.stringify(cmd.data ?? null));
    this.broadcast({ stream, dataJson, excludeSocket: session.sid });
  }

  /** Applies a command result in anycable-go's order: streams, state, transmissions, disconnect. */
  private applyCommandResult(session: Session, identifier: string, res: CommandResult): void {
    const hub = this.opts.hub;
    let streams = session.subscriptions.get(identifier);
    if (res.stopAllStreams) {
      if (streams) for (const s of streams) hub.unsubscribe(session, s, identifier);
      if (streams) streams.length = 0;
    } else if (res.stoppedStreams) {
      for (const s of res.stoppedStreams) {
        hub.unsubscribe(session, s, identifier);
        const i = streams?.indexOf(s) ?? -1;
        if (i >= 0) streams?.splice(i, 1);
      }
    }
    if (res.streams && res.streams.length > 0) {
      if (!streams) {
        streams = [];
        session.subscriptions.set(identifier, streams);
      }
      for (const s of res.streams) {
        hub.subscribe(session, s, identifier);
        if (!streams.includes(s)) streams.push(s);
      }
    }
    if (res.istate) {
      const istate = this.ownIstate(session);
      istate[identifier] = { ...istate[identifier], ...res.istate };
    }
    if (res.cstate) this.mergeCstate(session, res.cstate);
    for (const t of res.transmissions) session.deliver(t);
    this.markDisconnectable(session, res.disconnectInterest ?? 0);
    if (res.disconnect) this.closeSocket(session, CloseCode.abnormal, "Command Failed");
  }

  /** The one object a command allocates for its controller call. */
  private channelContext(session: Session, identifier: string): ChannelContext {
    return {
      sid: session.sid,
      env: session.env,
      identifiers: session.identifiers,
      identifier,
      signal: this.signalOf(session),
    };
  }

  private signalOf(session: Session): AbortSignal | undefined {
    return this.cancellable ? session.signal : undefined;
  }

  private markDisconnectable(session: Session, interest: number): void {
    switch (this.opts.disconnectMode) {
      case "always":
        session.disconnectable = true;
        break;
      case "never":
        session.disconnectable = false;
        break;
      default:
        session.disconnectable = session.disconnectable || interest >= 0;
    }
  }

  /** Sessions start with the shared frozen NO_STATE; the first write gives them their own. */
  private ownIstate(session: Session): Record<string, Record<string, string>> {
    if (session.env.istate === NO_STATE) session.env.istate = {};
    return session.env.istate;
  }

  /** Copies on write (see ownIstate); an empty change, as local identification gives, keeps NO_STATE. */
  private mergeCstate(session: Session, cstate: Record<string, string>): void {
    if (Object.keys(cstate).length === 0) return;
    session.env.cstate = { ...session.env.cstate, ...cstate };
  }

  // Identifiers are usually unique per connection: one entry holds the session itself, and only
  // identifiers shared by several connections get a Set.
  private indexIdentifiers(session: Session): void {
    const key = session.identifiers;
    const entry = this.byIdentifiers.get(key);
    if (!entry) this.byIdentifiers.set(key, session);
    else if (entry instanceof Set) entry.add(session);
    else if (entry !== session) this.byIdentifiers.set(key, new Set([entry, session]));
  }

  private unindexIdentifiers(session: Session): void {
    const key = session.identifiers;
    const entry = this.byIdentifiers.get(key);
    if (entry === session) this.byIdentifiers.delete(key);
    else if (entry instanceof Set) {
      entry.delete(session);
      if (entry.size === 0) this.byIdentifiers.delete(key);
    }
  }
}
