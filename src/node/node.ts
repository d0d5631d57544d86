// The node: the registry of live sessions (open, authenticated, closed; keyed by session id, and
// indexed by identifiers for remote disconnects) and each session's command queue, which runs one command at a time in
// arrival order like anycable-go's read loop. What a command does is in commands.ts; the one
// ticker drives backpressure.ts and pings.ts, so no connection has a timer of its own.

import type { Broker, PresenceEvent, Presenter } from "../broker/broker.ts";
import { nanoid } from "../http/request.ts";
import type { Hub, Publication } from "../hub/hub.ts";
import type { Logger } from "../log/logger.ts";
import { frameForLog, redactHeaders, redactSigned, redactUrl } from "../log/redact.ts";
import type { Metrics } from "../metrics/registry.ts";
import {
  type ClientCommand,
  DisconnectReason,
  disconnectMessage,
  PONG_MESSAGE,
  replyJson,
} from "../protocols/actioncable.ts";
import type { Frame } from "../protocols/encoder.ts";
import { protocolInfo } from "../protocols/registry.ts";
import { Backpressure } from "./backpressure.ts";
import { Commands } from "./commands.ts";
import type { ConnectResult, Controller } from "./controller.ts";
import { AUTHENTICATE_COMMAND, type Executor } from "./executor.ts";
import { History } from "./history.ts";
import { Keepalive } from "./keepalive.ts";
import { type NodeCounters, nodeMetrics } from "./node_metrics.ts";
import type { Options } from "./options.ts";
import { Pings } from "./pings.ts";
import { Presence, presencePublication } from "./presence.ts";
import { Session } from "./session.ts";
import { parseSnapshot, snapshotOf } from "./session_cache.ts";
import { type ClientSocket, CloseCode, type ConnectionRequest } from "./socket.ts";

export type { DisconnectMode } from "./commands.ts";

/**
 * How long the node runs commands back to back (all sessions together) before it lets the event
 * loop serve other sockets, HTTP requests and timers. Commands answered without I/O (the streams
 * controller, pings, a flood of frames from one client) resolve as microtasks, which would
 * otherwise run to the end of the burst before anything else.
 */
export const COMMAND_SLICE_MS = 5;

/**
 * Commands queued on one session before the node stops reading from its connection, and the
 * level it resumes at. A client cannot make the node hold more than this much of its input, as
 * anycable-go's read loop (blocked on the command it works on) holds one frame.
 */
export const READ_PAUSE_AT = 256;
export const READ_RESUME_AT = 32;
/** Where the runtime cannot pause reading: a session this far behind is closed (1008). */
export const MAX_QUEUED_COMMANDS = 16_384;

/** The configured tuning (node/options.ts) and the parts the node works with. */
export interface NodeOptions extends Options {
  controller: Controller;
  hub: Hub;
  /** History, restorable sessions and presence (the pass-through NoBroker when none is configured). */
  broker: Broker;
  /**
   * The broker keeps restorable sessions (a broker is on and --sessions_ttl > 0): extended-protocol
   * sessions are committed to it and can be restored from it.
   */
  sessionCache?: boolean;
  /** Touch live sessions' snapshots / presence records this often (half their TTLs; 0: never). */
  sessionsTouchMs?: number;
  presenceTouchMs?: number;
  metrics: Metrics;
  logger: Logger;
  /**
   * Whether controller calls can be cancelled (an RPC backend is in the chain). Without one, no
   * session needs an AbortController for its calls. Default: true.
   */
  cancellableCalls?: boolean;
  /** Pseudo-random source for the first ping's offset (injectable for tests). */
  random?: () => number;
  /** Foreign protocols (Pusher, ...) by the internal protocol name their sessions carry. */
  executors?: ReadonlyMap<string, Executor>;
  /** Query parameters whose values debug lines never show (the JWT one, --jwt_param). */
  secretParams?: readonly string[];
}

export class Node implements Presenter {
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
  private readonly keepalives: Keepalive;
  private readonly broker: Broker;
  /** Debug lines are built only when they are printed: the hot paths check this first. */
  private readonly debugOn: boolean;
  /** When the current slice of command work started (performance.now()); -1 when none runs. */
  private sliceStart = -1;
  /** Set once the slice is used up: commands wait on it for the event loop's next turn. */
  private sliceEnd: Promise<void> | undefined;
  private resume: (() => void) | undefined;

  constructor(private readonly opts: NodeOptions) {
    this.log = opts.logger.with({ context: "node" });
    this.debugOn = this.log.enabled("debug");
    this.m = nodeMetrics(opts.metrics, {
      clients: () => this.sessions.size,
      uniqueClients: () => this.byIdentifiers.size,
      streams: () => opts.hub.streamsCount,
    });
    this.broker = opts.broker;
    this.commands = new Commands({
      controller: opts.controller,
      controllerOf: opts.executors ? (session) => this.controllerOf(session) : undefined,
      hub: opts.hub,
      logger: this.log,
      disconnectMode: opts.disconnectMode,
      cancellable: opts.cancellableCalls ?? true,
      maxSubscriptions: opts.maxSubscriptions,
      limitExceeded: this.m.subscriptionsLimitExceeded,
      publish: (pub) => this.broker.handleBroadcast(pub),
      history: new History(opts.broker),
      presence: new Presence(opts.broker),
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
    this.pings = new Pings({
      nativePings: opts.nativePings,
      random: opts.random ?? Math.random,
      pongTimeoutMs: (session) => this.pongTimeoutMs(session),
      noPong: (session) => {
        this.log.warn("disconnecting session due to no pongs", { sid: session.sid });
        this.disconnect(session, DisconnectReason.noPong, true, CloseCode.normal, "No Pong");
      },
    });
    this.keepalives = new Keepalive({
      broker: opts.broker,
      sessionsEveryMs: opts.sessionCache ? (opts.sessionsTouchMs ?? 0) : 0,
      presenceEveryMs: opts.broker.supportsPresence ? (opts.presenceTouchMs ?? 0) : 0,
      resumable: (session) => this.resumable(session),
    });
  }

  /** The executor of a session speaking a foreign protocol, if any. */
  private executorOf(session: Session): Executor | undefined {
    return this.opts.executors?.get(session.request.protocol);
  }

  /** Who answers a session's calls: its protocol's executor, else the application's chain. */
  private controllerOf(session: Session): Controller {
    return this.executorOf(session)?.controller ?? this.opts.controller;
  }

  /** A fresh session id for a session whose proposed one is taken. */
  private freshSid(session: Session | ConnectionRequest): string {
    const protocol = "request" in session ? session.request.protocol : session.protocol;
    return this.opts.executors?.get(protocol)?.newSid?.() ?? nanoid();
  }

  /** Extended-protocol sessions are committed to the broker's session cache, when it keeps one. */
  private resumable(session: Session): boolean {
    return this.opts.sessionCache === true && protocolInfo(session.request.protocol).extended;
  }

  /**
   * anycable-go holds extended-protocol sessions to --pong_timeout, and every session with native
   * pings; never one whose client cannot answer (SSE).
   */
  private pongTimeoutMs(session: Session): number {
    const timeout = this.opts.pongTimeoutMs;
    if (timeout <= 0 || session.request.oneWay) return 0;
    return this.opts.nativePings || protocolInfo(session.request.protocol).extended ? timeout : 0;
  }

  /**
   * The broker's presence changes (joins, leaves, expiries) go to the stream's subscribers on every
   * node; a join is not sent back to a joiner whose protocol says so (Pusher's member_added).
   */
  presenceChanged(stream: string, event: PresenceEvent, sid?: string): void {
    const joiner = sid === undefined ? undefined : this.sessions.get(sid);
    const spare = joiner && this.executorOf(joiner)?.ownPresenceEvents === false;
    this.broker.handleBroadcast(presencePublication(stream, event, spare ? sid : undefined));
  }

  /** The client is alive (a command or a native pong): no pong is awaited until the next ping. */
  keepalive(session: Session): void {
    session.pongDeadline = 0;
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
      do request.sid = this.freshSid(request);
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
    const executor = this.executorOf(session);
    executor?.opened?.(session);
    if (!executor?.deferredAuthentication) this.enqueue(session, () => this.authenticate(session));
    return session;
  }

  /**
   * Resolves once the commands queued on the session so far have run: after `open`, once
   * authentication is over (the session is then connected, or closed). For transports that must
   * know the outcome before they answer their request (SSE).
   */
  settled(session: Session): Promise<void> {
    return session.chain;
  }

  /**
   * A subscribe a transport read from its request rather than from a frame (SSE's query or POST
   * body), queued like a client command; resolves with its outcome once it ran. "confirmed" means
   * the subscription was added (its history, if asked for, was sent too); "rejected" that the
   * controller refused it; "failed" that it could not be made (the error is logged); "closed" that
   * the session closed meanwhile.
   */
  subscribe(session: Session, cmd: ClientCommand): Promise<"confirmed" | "rejected" | "failed" | "closed"> {
    return new Promise((resolve) => {
      this.enqueue(session, async () => {
        if (session.state !== "connected") return resolve("closed");
        let error: string | undefined;
        try {
          error = await this.commands.subscribe(session, cmd);
        } catch (err) {
          error = (err as Error).message ?? String(err);
        }
        if (session.state !== "connected") return resolve("closed");
        if (error !== undefined) {
          this.log.warn("failed to subscribe", {
            sid: session.sid,
            identifier: redactSigned(cmd.identifier),
            error: redactSigned(error),
          });
          return resolve("failed");
        }
        resolve(session.subscriptions.has(cmd.identifier) ? "confirmed" : "rejected");
      });
    });
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
        data: frameForLog(frame),
        error: decoded.error,
      });
      return;
    }
    this.m.clientMsg.inc();
    session.pongDeadline = 0;
    const cmd = decoded.command;
    if (this.debugOn)
      this.log.debug("incoming message", { sid: session.sid, data: redactSigned(JSON.stringify(cmd)) });
    this.enqueue(session, () => this.handleCommand(session, cmd, frame));
    if (session.pending >= READ_PAUSE_AT && !session.readPaused) this.throttle(session);
  }

  /** The client sends faster than its commands are worked through: stop reading from it for now. */
  private throttle(session: Session): void {
    const socket = session.socket;
    if (socket.pauseReading) {
      session.readPaused = true;
      socket.pauseReading();
      this.log.debug("pausing reads: too many queued commands", {
        sid: session.sid,
        queued: session.pending,
      });
    } else if (session.pending >= MAX_QUEUED_COMMANDS && !session.closing) {
      this.log.warn("closing connection: too many queued commands", {
        sid: session.sid,
        queued: session.pending,
      });
      session.closing = true;
      this.closeSocket(session, CloseCode.policyViolation, "Too many queued commands");
    }
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
    // The broker's records now count down from the disconnect: the snapshot for --sessions_ttl (a
    // state changed by a command still running is committed as it stands), presence for --presence_ttl.
    if (wasConnected && this.resumable(session)) {
      if (session.dirty || this.broker.localSessions) this.commit(session);
      else this.broker.touchSessions([session.sid]);
    }
    if (session.hasPresence) this.broker.touchPresence([session.sid]);
    this.executorOf(session)?.closed?.(session);
    // Disconnect is not cancelled with the session: it is queued and made after the close.
    if (wasConnected && session.disconnectable) {
      const subs = session.subscriptionIds();
      const ctx = { sid: session.sid, env: session.env, identifiers: session.identifiers };
      if (this.debugOn)
        this.log.debug("disconnect", {
          sid: session.sid,
          ids: session.identifiers,
          url: redactUrl(session.env.url, this.opts.secretParams),
          headers: redactHeaders(session.env.headers, this.opts.secretParams),
          subscriptions: subs.map(redactSigned),
        });
      this.controllerOf(session)
        .disconnect(ctx, subs)
        .then(
          () => {
            if (this.debugOn) this.log.debug("controller disconnect succeeded", { sid: session.sid });
          },
          (err) => {
            this.log.warn("disconnect call failed", { sid: session.sid, error: err });
          },
        );
    }
  }

  /**
   * Gives a connected session new connection identifiers (a Pusher user who signed in), so remote
   * disconnects by identifiers find it under them.
   */
  setIdentifiers(session: Session, identifiers: string): void {
    if (session.state !== "connected") return;
    this.unindexIdentifiers(session);
    session.identifiers = identifiers;
    this.indexIdentifiers(session);
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
    this.closeSocket(session, this.executorOf(session)?.closeCode?.(reconnect, code) ?? code, closeReason);
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
    if (this.debugOn) this.log.debug("incoming broadcast message", { payload: publicationForLog(pub) });
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
    if (this.debugOn) this.log.debug("incoming remote command", { command: { identifiers, reconnect } });
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
    this.keepalives.tick(this.sessions.values(), now);
  }

  /** Disconnects every client with `server_restart` (close 1001), then stops the controller. */
  /**
   * Tells every client `server_restart` and closes it, then lets the controller flush. With
   * `drainMs` (--shutdown_slowdrain) the disconnects are spread over that period, at most
   * DRAIN_MAX_STEP_MS apart, so reconnects do not stampede the other nodes and the RPC backend;
   * `signal` aborting (the shutdown deadline) closes whoever is left at once.
   */
  async shutdown(opts: { drainMs?: number; signal?: AbortSignal } = {}): Promise<void> {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    const sessions = [...this.sessions.values()];
    const drainMs = opts.drainMs ?? 0;
    if (sessions.length > 1 && drainMs > 0) {
      this.log.info(
        `Draining ${sessions.length} active connections slowly for ${(drainMs / 1000).toFixed(1)}s`,
      );
      await this.drain(sessions, drainMs, opts.signal);
    } else {
      if (sessions.length > 0) this.log.info("closing active connections", { num: sessions.length });
      for (const session of sessions) this.restartDisconnect(session);
    }
    await this.opts.controller.shutdown?.();
  }

  private async drain(sessions: Session[], drainMs: number, signal?: AbortSignal): Promise<void> {
    // One timer for the whole drain: a step every few ms closes a batch, so thousands of clients
    // spread evenly without a timer each.
    const stepMs = Math.min(DRAIN_MAX_STEP_MS, Math.max(DRAIN_MIN_STEP_MS, drainMs / sessions.length));
    const perStep = Math.max(1, Math.ceil((sessions.length * stepMs) / drainMs));
    let next = 0;
    while (next < sessions.length && !signal?.aborted) {
      for (const end = Math.min(sessions.length, next + perStep); next < end; next++) {
        this.restartDisconnect(sessions[next]!);
      }
      if (next < sessions.length) await abortableSleep(stepMs, signal);
    }
    for (; next < sessions.length; next++) this.restartDisconnect(sessions[next]!);
  }

  private restartDisconnect(session: Session): void {
    if (session.isClosed) return;
    this.disconnect(session, DisconnectReason.serverRestart, true, CloseCode.goingAway, "Server restart");
  }

  /** Whether a live session has this id (cached ones are checked in authenticate, see freeClientSid). */
  private sidTaken(sid: string): boolean {
    return this.sessions.has(sid);
  }

  /**
   * A client-chosen sid (X-Request-ID) that names a session in the broker's cache is replaced, or
   * the client could overwrite or restore another client's cached state. Asked before anything
   * else the session does, so the sid it is known by never changes after it is seen.
   */
  private async freeClientSid(session: Session): Promise<void> {
    let cached: string | undefined;
    try {
      cached = await this.broker.restoreSession(session.sid);
    } catch {
      cached = undefined;
    }
    if (cached === undefined || session.isClosed) return;
    const requestId = session.sid;
    this.sessions.delete(requestId);
    do session.request.sid = this.freshSid(session);
    while (this.sidTaken(session.request.sid));
    this.sessions.set(session.sid, session);
    this.log.info("X-Request-ID is the id of a cached session, using a fresh session id", {
      sid: session.sid,
      request_id: requestId,
    });
  }

  /**
   * Restores the session named by the client's restore sid from the broker (no controller call):
   * true when it did. An unknown, expired or unreadable snapshot means a normal connect.
   */
  private async tryRestore(session: Session, prevSid: string): Promise<boolean> {
    let text: string | undefined;
    // with local snapshots a session still live here (its close not seen yet) has none stored
    const live = this.broker.localSessions ? this.sessions.get(prevSid) : undefined;
    try {
      text = live?.state === "connected" ? snapshotOf(live) : await this.broker.restoreSession(prevSid);
    } catch (err) {
      this.log.error("failed to fetch session cache", { sid: session.sid, old_sid: prevSid, error: err });
      return false;
    }
    if (text === undefined) {
      this.log.debug("session not found in cache", { sid: session.sid, old_sid: prevSid });
      return false;
    }
    if (session.isClosed) return false;
    const snapshot = parseSnapshot(text);
    if (typeof snapshot === "string") {
      this.log.error("failed to restore session from cache", {
        sid: session.sid,
        old_sid: prevSid,
        error: snapshot,
      });
      return false;
    }
    this.commands.restore(session, snapshot);
    session.state = "connected";
    this.indexIdentifiers(session);
    this.pings.schedule(session, Date.now());
    this.log.debug("session restored", { sid: session.sid, old_sid: prevSid });
    session.deliver(
      replyJson({
        type: "welcome",
        sid: session.sid,
        restored: true,
        restored_ids: session.subscriptionIds(),
      }),
    );
    // committed under its new id once this command is done
    session.dirty = true;
    return true;
  }

  /** Hands the broker the session's current snapshot. */
  private commit(session: Session): void {
    session.dirty = false;
    this.broker.commitSession(session.sid, snapshotOf(session)).catch((err) => {
      this.log.error("failed to persist session in cache", { sid: session.sid, error: err });
    });
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
        if (session.readPaused && session.pending <= READ_RESUME_AT) {
          session.readPaused = false;
          if (session.state !== "closed") session.socket.resumeReading?.();
        }
        if (--session.pending === 0) {
          // One snapshot per burst of commands, not one per command (a burst of N subscribes would
          // otherwise serialise N growing snapshots).
          if (
            session.dirty &&
            session.state === "connected" &&
            !this.broker.localSessions &&
            this.resumable(session)
          )
            this.commit(session);
          session.settle();
        }
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
    if (this.opts.sessionCache && session.request.clientSid) await this.freeClientSid(session);
    const prevSid = session.request.restoreSid;
    if (prevSid && this.resumable(session)) {
      if (await this.tryRestore(session, prevSid)) return;
      if (session.isClosed) return;
    }
    let res: ConnectResult | null;
    const { identifiers } = session.request;
    try {
      res =
        identifiers === undefined
          ? await this.controllerOf(session).authenticate(this.commands.connectionContext(session))
          : { status: "success", identifiers, transmissions: [], disconnectInterest: -1 };
    } catch (err) {
      if (session.isClosed) return;
      // The RPC layer already logs failures once per burst; per session it is debug detail, so a
      // reconnect storm against a dead backend does not flood the log.
      this.log.debug("failed to authenticate", { sid: session.sid, error: err });
      this.closeSocket(session, CloseCode.internalError, "Auth Error");
      return;
    }
    if (this.debugOn && res)
      this.log.debug("controller authenticate", {
        sid: session.sid,
        response: { status: res.status, identifiers: res.identifiers },
      });
    if (session.isClosed || !res) return;
    if (res.status === "success") {
      session.identifiers = res.identifiers;
      session.state = "connected";
      // indexed before any frame goes out: a send may find the client too slow and close it
      this.indexIdentifiers(session);
      this.pings.schedule(session, Date.now());
      session.dirty = true;
    } else if (res.status === "failure") {
      this.m.failedAuths.inc();
    }
    this.commands.applyConnectResult(session, res);
    if (res.status !== "success") {
      const code = this.executorOf(session)?.closeCode?.(false, CloseCode.normal) ?? CloseCode.normal;
      this.closeSocket(session, code, "Auth Failed");
    }
  }

  private async handleCommand(session: Session, cmd: ClientCommand, raw: Frame): Promise<void> {
    const executor = this.executorOf(session);
    const deferred = executor?.deferredAuthentication === true;
    if (session.state !== "connected" && !(deferred && session.state === "connecting")) return;
    let error: string | undefined;
    try {
      error = executor
        ? await executor.handle(session, cmd, (c) =>
            deferred && c.command === AUTHENTICATE_COMMAND
              ? this.deferredAuthenticate(session)
              : this.runCommand(session, c),
          )
        : await this.runCommand(session, cmd);
    } catch (err) {
      error = (err as Error).message ?? String(err);
    }
    if (error !== undefined) {
      this.m.failedClientMsg.inc();
      // anycable-go's session logs this at WARN (node/session.go ReadMessage), for every command
      // that fails: a subscribe failing at the RPC backend gets no reply, only this line.
      this.log.warn("failed to handle incoming message", {
        sid: session.sid,
        data: frameForLog(raw),
        error: redactSigned(error),
      });
    }
  }

  /** An executor's AUTHENTICATE_COMMAND: once, while the session is still connecting. */
  private async deferredAuthenticate(session: Session): Promise<string | undefined> {
    if (session.state === "closed") return undefined;
    if (session.state !== "connecting") return "already authenticated";
    await this.authenticate(session);
    return undefined;
  }

  /** One client command: an error text, or undefined. */
  private async runCommand(session: Session, cmd: ClientCommand): Promise<string | undefined> {
    let error: string | undefined;
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
      case "history":
        error = await this.commands.history(session, cmd);
        break;
      case "presence":
        error = await this.commands.presenceInfo(session, cmd);
        break;
      case "join":
      case "leave":
        error = await this.commands.presenceCommand(session, cmd, cmd.command);
        break;
      default:
        error = `unknown command: ${cmd.command}`;
    }
    return error;
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

/** anycable-go Pro's cap on the pause between two slow-drain disconnects. */
const DRAIN_MAX_STEP_MS = 500;
const DRAIN_MIN_STEP_MS = 10;

function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** A publication as debug lines show it: the data cut to a readable size. */
function publicationForLog(pub: Publication): string {
  const data = pub.dataJson.length > 200 ? `${pub.dataJson.slice(0, 200)}...` : pub.dataJson;
  return JSON.stringify({
    stream: pub.stream,
    data,
    offset: pub.offset,
    epoch: pub.epoch,
    exclude_socket: pub.excludeSocket,
  });
}
