// The node: the registry of live sessions (open, authenticated, closed; keyed by session id, and
// indexed by identifiers for remote disconnects) and each session's command queue, which runs one command at a time in
// arrival order like anycable-go's read loop. What a command does is in commands.ts; the one
// ticker drives backpressure.ts and pings.ts, so no connection has a timer of its own.

import { nanoid } from "../http/request.ts";
import type { Hub, Publication } from "../hub/hub.ts";
import { compact, type Logger } from "../log/logger.ts";
import type { Metrics } from "../metrics/registry.ts";
import {
  type ClientCommand,
  DisconnectReason,
  disconnectMessage,
  PONG_MESSAGE,
} from "../protocols/actioncable.ts";
import type { Frame } from "../protocols/encoder.ts";
import { Backpressure } from "./backpressure.ts";
import { Commands } from "./commands.ts";
import type { ConnectResult, Controller } from "./controller.ts";
import { type NodeCounters, nodeMetrics } from "./node_metrics.ts";
import type { Options } from "./options.ts";
import { Pings } from "./pings.ts";
import { Session } from "./session.ts";
import { type ClientSocket, CloseCode, type ConnectionRequest } from "./socket.ts";

export type { DisconnectMode } from "./commands.ts";

/**
 * How long the node runs commands back to back (all sessions together) before it lets the event
 * loop serve other sockets, HTTP requests and timers. Commands answered without I/O (the streams
 * controller, pings, a flood of frames from one client) resolve as microtasks, which would
 * otherwise run to the end of the burst before anything else.
 */
export const COMMAND_SLICE_MS = 5;

/** The configured tuning (node/options.ts) and the parts the node works with. */
export interface NodeOptions extends Options {
  controller: Controller;
  hub: Hub;
  metrics: Metrics;
  logger: Logger;
  /**
   * Whether controller calls can be cancelled (an RPC backend is in the chain). Without one, no
   * session needs an AbortController for its calls. Default: true.
   */
  cancellableCalls?: boolean;
  /** Pseudo-random source for the first ping's offset (injectable for tests). */
  random?: () => number;
}

export class Node {
  /**
   * Live sessions by session id. The one per-connection entry the node keeps: it is the registry
   * and also answers "is this sid taken?" (a client-chosen X-Request-ID must not name another
   * live session).
   */
  readonly sessions = new Map<string, Session>();
  /** Connection identifiers -> sessions, for remote disconnects. */
  private readonly byIdentifiers = new Map<string, Session | Set<Session>>();
  private shuttingDown = false;
  private readonly log: Logger;
  private readonly m: NodeCounters;
  private readonly commands: Commands;
  private readonly backpressure: Backpressure;
  private readonly pings: Pings;
  /** When the current slice of command work started (performance.now()); -1 when none runs. */
  private sliceStart = -1;
  /** Set once the slice is used up: commands wait on it for the event loop's next turn. */
  private sliceEnd: Promise<void> | undefined;
  private resume: (() => void) | undefined;

  constructor(private readonly opts: NodeOptions) {
    this.log = opts.logger.with({ context: "node" });
    this.m = nodeMetrics(opts.metrics, {
      clients: () => this.sessions.size,
      uniqueClients: () => this.byIdentifiers.size,
      streams: () => opts.hub.streamsCount,
    });
    this.commands = new Commands({
      controller: opts.controller,
      hub: opts.hub,
      logger: this.log,
      disconnectMode: opts.disconnectMode,
      cancellable: opts.cancellableCalls ?? true,
      maxSubscriptions: opts.maxSubscriptions,
      limitExceeded: this.m.subscriptionsLimitExceeded,
      broadcast: (pub) => this.broadcast(pub),
      close: (session, code, reason) => this.closeSocket(session, code, reason),
    });
    this.backpressure = new Backpressure({
      hub: opts.hub,
      maxPendingBytes: opts.maxPendingBytes,
      writeTimeoutMs: opts.writeTimeoutMs,
      counters: this.m,
      logger: this.log,
      disconnect: (session, reason, reconnect, code, closeReason) =>
        this.disconnect(session, reason, reconnect, code, closeReason),
    });
    this.pings = new Pings(opts.nativePings, opts.random ?? Math.random);
  }

  get isShuttingDown(): boolean {
    return this.shuttingDown;
  }

  get size(): number {
    return this.sessions.size;
  }

  /**
   * Registers a freshly upgraded socket and starts authentication. The transport proposes the sid
   * (the client's X-Request-ID, as anycable-go takes it, or a fresh one); a sid some live session
   * already has is replaced by a fresh one here, where the check and the registration happen in
   * the same turn (two upgrades racing with one X-Request-ID cannot both get it).
   */
  open(request: ConnectionRequest, socket: ClientSocket): Session {
    if (this.sidTaken(request.sid)) {
      const requestId = request.sid;
      do request.sid = nanoid();
      while (this.sidTaken(request.sid));
      this.log.info("X-Request-ID is the id of another session, using a fresh session id", {
        sid: request.sid,
        request_id: requestId,
      });
    }
    const session = new Session(
      request,
      socket,
      this.opts.pingIntervalMs,
      this.opts.pingPrecision,
      this.backpressure.onSend,
    );
    this.sessions.set(session.sid, session);
    this.enqueue(session, () => this.authenticate(session));
    return session;
  }

  /** A frame arrived from the client. `byteLength` is the frame's size on the wire. */
  message(session: Session, frame: Frame, byteLength: number): void {
    if (session.state === "closed" || session.readingStopped) return;
    this.m.dataRcvd.inc(byteLength);
    const decoded = session.encoder.decode(frame);
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
    if (this.sessions.get(session.sid) !== session) return;
    this.sessions.delete(session.sid);
    const wasConnected = session.state === "connected";
    session.state = "closed";
    session.cancelCalls();
    this.backpressure.forget(session);
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
    this.backpressure.drained(session);
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
    if (stats.unencodable) {
      this.m.failedServerMsg.inc(stats.unencodable);
      this.log.debug("broadcast cannot be encoded for some subscribers", { stream: pub.stream });
    }
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

  /** The one ticker for all sessions: slow-client checks, then pings. */
  tick(now: number): void {
    this.backpressure.tick(now);
    this.pings.tick(this.sessions.values(), now);
  }

  /** Disconnects every client with `server_restart` (close 1001), then stops the controller. */
  async shutdown(): Promise<void> {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    const active = this.sessions.size;
    if (active > 0) this.log.info("closing active connections", { num: active });
    for (const session of [...this.sessions.values()]) {
      this.disconnect(session, DisconnectReason.serverRestart, true, CloseCode.goingAway, "Server restart");
    }
    await this.opts.controller.shutdown?.();
  }

  /**
   * Whether a proposed session id is in use. Only live sessions exist today.
   * HOOK (reliable streams / session cache): once a broker caches restorable sessions under their
   * sid (anycable-go's CommitSession), a sid naming a cached session must count as taken too, or a
   * client could overwrite or restore another client's cached state by sending its id as
   * X-Request-ID. Ask the broker's session cache here (keep the check synchronous, or make
   * open() await it before registering).
   */
  private sidTaken(sid: string): boolean {
    return this.sessions.has(sid);
  }

  // --- the command queue

  private enqueue(session: Session, task: () => Promise<void>): void {
    session.pending++;
    session.chain = session.chain.then(async () => {
      try {
        for (let wait = this.pause(); wait; wait = this.pause()) await wait;
        await task();
      } catch (err) {
        this.log.warn("unhandled session error", { sid: session.sid, error: err });
      } finally {
        if (--session.pending === 0) session.settle();
      }
    });
  }

  /**
   * Undefined while the current slice has time left, else a promise for the event loop's next
   * turn. One immediate per slice marks where the turn ends (not one per session or command): a
   * slice that ends before using its time costs nothing more, one that runs out makes every
   * session's next command wait for it, so the sockets and requests that arrived meanwhile go
   * first and a session flooding commands gets one slice at a time.
   */
  private pause(): Promise<void> | undefined {
    if (this.sliceEnd) return this.sliceEnd;
    const now = performance.now();
    if (this.sliceStart < 0) {
      this.sliceStart = now;
      // setTimeout, not setImmediate: under Deno node:timers immediates run before node:http socket
      // I/O, so a flooding client would starve the others (subscription_flood.test.ts).
      setTimeout(this.endSlice, 0);
      return undefined;
    }
    if (now - this.sliceStart < COMMAND_SLICE_MS) return undefined;
    this.sliceEnd = new Promise((resolve) => {
      this.resume = resolve;
    });
    return this.sliceEnd;
  }

  private readonly endSlice = (): void => {
    this.sliceStart = -1;
    const resume = this.resume;
    this.sliceEnd = undefined;
    this.resume = undefined;
    resume?.();
  };

  private async authenticate(session: Session): Promise<void> {
    let res: ConnectResult | null;
    try {
      res = await this.opts.controller.authenticate(this.commands.connectionContext(session));
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
      // indexed before any frame goes out: a send may find the client too slow and close it
      this.indexIdentifiers(session);
      this.pings.schedule(session, Date.now());
    } else if (res.status === "failure") {
      this.m.failedAuths.inc();
    }
    this.commands.applyConnectResult(session, res);
    if (res.status !== "success") this.closeSocket(session, CloseCode.normal, "Auth Failed");
  }

  private async handleCommand(session: Session, cmd: ClientCommand, raw: Frame): Promise<void> {
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
          error = await this.commands.subscribe(session, cmd);
          break;
        case "unsubscribe":
          error = await this.commands.unsubscribe(session, cmd);
          break;
        case "message":
          error = await this.commands.perform(session, cmd);
          break;
        case "whisper":
          this.commands.whisper(session, cmd);
          break;
        default:
          error = `unknown command: ${cmd.command}`;
      }
    } catch (err) {
      error = (err as Error).message ?? String(err);
    }
    if (error !== undefined) {
      this.m.failedClientMsg.inc();
      // anycable-go's session logs this at WARN (node/session.go ReadMessage), for every command
      // that fails: a subscribe failing at the RPC backend gets no reply, only this line.
      this.log.warn("failed to handle incoming message", { sid: session.sid, data: compact(raw), error });
    }
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
