// What a client's commands do to its session: the controller calls for subscribe / unsubscribe /
// perform, whispers, and applying a controller's answer (streams, state, transmissions, disconnect
// interest). The node decides when a command runs; this module decides what it does.
import type { StreamPublication } from "../broadcast/publication.ts";
import type { Hub } from "../hub/hub.ts";
import type { Logger } from "../log/logger.ts";
import { redactSigned } from "../log/redact.ts";
import type { Counter } from "../metrics/registry.ts";
import { type ClientCommand, publicationDataJson, rejectMessage } from "../protocols/actioncable.ts";
import {
  type ChannelContext,
  type CommandResult,
  type ConnectionContext,
  type ConnectResult,
  type Controller,
  PRESENCE_STREAM_STATE,
  WHISPER_STREAM_STATE,
} from "./controller.ts";
import type { History } from "./history.ts";
import type { DisconnectMode } from "./options.ts";
import type { Presence } from "./presence.ts";
import { NO_STATE, ownIstate, type Session } from "./session.ts";
import type { SessionSnapshot } from "./session_cache.ts";
import { CloseCode } from "./socket.ts";

export type { DisconnectMode };

export interface CommandsOptions {
  controller: Controller;
  /** Who answers a session's calls when that depends on its protocol (see node/executor.ts). */
  controllerOf?: (session: Session) => Controller;
  hub: Hub;
  logger: Logger;
  disconnectMode: DisconnectMode;
  /** Whether calls get the session's close signal (see NodeOptions.cancellableCalls). */
  cancellable: boolean;
  /** Subscriptions one session may hold (0 = unlimited). */
  maxSubscriptions: number;
  /** Counts subscribes rejected for that limit. */
  limitExceeded: Counter;
  /** Into the broker, as the application's publications: whispers (transient) reach every node. */
  publish(pub: StreamPublication): void;
  history: History;
  presence: Presence;
  /** The node's close without a protocol `disconnect` frame. */
  close(session: Session, code: number, reason: string): void;
}

/**
 * Each handler returns an error text for the node to count and log, or undefined. A session that
 * closed while its call was out gets nothing applied.
 */
/** Identifiers whose shared one-subscription istate map is kept (see sharedIstate). */
const SHARED_ISTATE_LIMIT = 10_000;

export class Commands {
  private readonly controllerOf: (session: Session) => Controller;
  private readonly hub: Hub;
  /** Debug lines are built only when printed: commands check this first. */
  private readonly debugOn: boolean;
  private readonly istateMaps = new Map<string, Record<string, Record<string, string>>>();
  private readonly hubLog: Logger;

  constructor(private readonly opts: CommandsOptions) {
    const controller = opts.controller;
    this.controllerOf = opts.controllerOf ?? (() => controller);
    this.hub = opts.hub;
    this.debugOn = opts.logger.enabled("debug");
    this.hubLog = opts.logger.with({ component: "hub" });
  }

  /** The authenticate call's context: identifiers are not known yet. */
  connectionContext(session: Session): ConnectionContext {
    return { sid: session.sid, env: session.env, identifiers: "", signal: this.signalOf(session) };
  }

  /** The answer's state, transmissions and disconnect interest; the node handles the status. */
  applyConnectResult(session: Session, res: ConnectResult): void {
    if (res.cstate) this.mergeCstate(session, res.cstate);
    for (const t of res.transmissions) session.deliver(t);
    this.markDisconnectable(session, res.disconnectInterest ?? 0);
  }

  async subscribe(session: Session, cmd: ClientCommand): Promise<string | undefined> {
    const id = cmd.identifier;
    if (session.subscriptions.has(id)) return `already subscribed to ${id}`;
    const max = this.opts.maxSubscriptions;
    if (max > 0 && session.subscriptions.size >= max) {
      // Rejected here, before the controller (no RPC call): the client sees a plain rejection.
      this.opts.limitExceeded.inc();
      this.opts.logger.debug("subscription rejected: too many subscriptions", {
        sid: session.sid,
        identifier: redactSigned(id),
        limit: max,
      });
      session.deliver(rejectMessage(id));
      return undefined;
    }
    let res: CommandResult | null;
    try {
      res = await this.controllerOf(session).subscribe(this.channelContext(session, id));
    } catch (err) {
      return `subscribe failed for ${id}: ${(err as Error).message}`;
    }
    if (this.debugOn) this.logResult(session, "controller subscribe", res);
    if (session.isClosed || !res) return undefined;
    if (res.status === "error") return `subscribe failed for ${id}: ${res.errorMsg ?? "error"}`;
    const confirmed = res.status === "success";
    if (this.debugOn)
      this.opts.logger.debug(confirmed ? "subscribed" : "subscription rejected", {
        sid: session.sid,
        identifier: redactSigned(id),
      });
    if (confirmed) session.subscriptions.add(id);
    await this.applyCommandResult(session, id, res);
    if (!confirmed || session.isClosed) return undefined;
    session.dirty = true;
    // After confirm_subscription, as anycable-go: first the history asked for, then a presence join.
    if (cmd.history) {
      const error = await this.opts.history.run(session, id, cmd.history);
      if (error)
        this.opts.logger.warn("couldn't retrieve history", {
          sid: session.sid,
          identifier: redactSigned(id),
          error,
        });
    }
    if (cmd.presence && !session.isClosed) {
      const error = await this.opts.presence.change(session, id, { type: "join", ...cmd.presence });
      if (error)
        this.opts.logger.warn("couldn't process presence join", {
          sid: session.sid,
          identifier: redactSigned(id),
          error,
        });
    }
    return undefined;
  }

  async unsubscribe(session: Session, cmd: ClientCommand): Promise<string | undefined> {
    const id = cmd.identifier;
    if (!session.subscriptions.has(id)) return `unknown subscription: ${id}`;
    let res: CommandResult | null;
    try {
      res = await this.controllerOf(session).unsubscribe(this.channelContext(session, id));
    } catch (err) {
      return `failed to unsubscribe from ${id}: ${(err as Error).message}`;
    }
    if (this.debugOn) this.logResult(session, "controller unsubscribe", res);
    if (session.isClosed || !res) return undefined;
    if (res.status === "error") return `failed to unsubscribe from ${id}: ${res.errorMsg ?? "error"}`;
    const presenceStream = session.env.istate[id]?.[PRESENCE_STREAM_STATE];
    await this.applyCommandResult(session, id, { ...res, stopAllStreams: true });
    session.subscriptions.delete(id);
    if (this.debugOn)
      this.opts.logger.debug("unsubscribed", { sid: session.sid, identifier: redactSigned(id) });
    if (Object.hasOwn(session.env.istate, id)) delete ownIstate(session)[id];
    session.dirty = true;
    // An explicit unsubscribe leaves the presence set at once (a disconnect lets it expire).
    if (presenceStream && session.hasPresence) {
      const error = await this.opts.presence.leaveOnUnsubscribe(session, presenceStream);
      if (error) this.opts.logger.debug(error, { sid: session.sid, identifier: redactSigned(id) });
    }
    return undefined;
  }

  async perform(session: Session, cmd: ClientCommand): Promise<string | undefined> {
    const id = cmd.identifier;
    if (!session.subscriptions.has(id)) return `unknown subscription ${id}`;
    if (typeof cmd.data !== "string") return `perform data must be a string, got ${JSON.stringify(cmd.data)}`;
    let res: CommandResult | null;
    try {
      res = await this.controllerOf(session).perform(this.channelContext(session, id), cmd.data);
    } catch (err) {
      return `perform failed for ${id}: ${(err as Error).message}`;
    }
    if (this.debugOn) this.logResult(session, "controller perform", res);
    if (session.isClosed || !res) return undefined;
    if (res.status === "error") return `perform failed for ${id}: ${res.errorMsg ?? "error"}`;
    if (await this.applyCommandResult(session, id, res)) session.dirty = true;
    return undefined;
  }

  history(session: Session, cmd: ClientCommand): Promise<string | undefined> {
    return this.opts.history.run(session, cmd.identifier, cmd.history);
  }

  presenceInfo(session: Session, cmd: ClientCommand): Promise<string | undefined> {
    return this.opts.presence.info(session, cmd.identifier, cmd.data);
  }

  presenceCommand(session: Session, cmd: ClientCommand, type: "join" | "leave"): Promise<string | undefined> {
    return this.opts.presence.command(session, cmd.identifier, type, cmd.presence);
  }

  /**
   * Client-to-clients broadcast on the subscription's whisper stream (istate `$w`), never back to
   * the sender. Without such a stream the whisper is dropped quietly, as anycable-go does.
   */
  whisper(session: Session, cmd: ClientCommand): void {
    const stream = session.env.istate[cmd.identifier]?.[WHISPER_STREAM_STATE];
    if (!stream) {
      this.opts.logger.debug("whisper stream not found", {
        sid: session.sid,
        identifier: redactSigned(cmd.identifier),
      });
      return;
    }
    // Same encoding rule as any publication (a JSON null is sent as the string "null", like anycable-go).
    const dataJson = publicationDataJson(JSON.stringify(cmd.data ?? null));
    this.opts.publish({ stream, dataJson, excludeSocket: session.sid, transient: true });
  }

  /**
   * A restored session takes its old state: identifiers, states, subscriptions and their streams
   * (no controller call, as anycable-go's TryRestoreSession).
   */
  restore(session: Session, snapshot: SessionSnapshot): void {
    session.identifiers = snapshot.ids;
    if (Object.keys(snapshot.cstate).length > 0) session.env.cstate = { ...snapshot.cstate };
    if (Object.keys(snapshot.istate).length > 0)
      session.env.istate = Object.assign(Object.create(null), snapshot.istate);
    session.disconnectable = snapshot.Disconnectable;
    for (const [identifier, streams] of Object.entries(snapshot.subs)) {
      session.subscriptions.add(identifier);
      for (const s of streams)
        if (session.subscriptions.addStream(identifier, s)) this.hub.subscribe(session, s, identifier);
    }
  }

  /**
   * Applies a command result in anycable-go's order: streams, state, transmissions, presence,
   * disconnect. Whether streams or states changed (the restorable snapshot is then stale).
   */
  private async applyCommandResult(
    session: Session,
    identifier: string,
    res: CommandResult,
  ): Promise<boolean> {
    const hub = this.hub;
    const changed = !!(
      res.stopAllStreams ||
      res.stoppedStreams?.length ||
      res.streams?.length ||
      res.istate ||
      (res.cstate && Object.keys(res.cstate).length > 0)
    );
    const subs = session.subscriptions;
    if (res.stopAllStreams) {
      for (const s of subs.takeStreams(identifier)) {
        hub.unsubscribe(session, s, identifier);
        if (this.debugOn) this.logStream(session, "unsubscribed", identifier, s);
      }
    } else if (res.stoppedStreams) {
      for (const s of res.stoppedStreams) {
        hub.unsubscribe(session, s, identifier);
        subs.removeStream(identifier, s);
        if (this.debugOn) this.logStream(session, "unsubscribed", identifier, s);
      }
    }
    if (res.streams) {
      // recorded once per subscription (a stream named twice is one), so the hub is asked once
      for (const s of res.streams) {
        if (!subs.addStream(identifier, s)) continue;
        hub.subscribe(session, s, identifier);
        if (this.debugOn) this.logStream(session, "subscribed", identifier, s);
      }
    }
    if (res.istate) {
      if (session.env.istate === NO_STATE && Object.isFrozen(res.istate)) {
        // the session's first state, and shared (a stream's whisper / presence state): the whole
        // map is shared too, one per identifier, until the session writes to it (ownIstate copies)
        session.env.istate = this.sharedIstate(identifier, res.istate);
      } else {
        const istate = ownIstate(session);
        const prev = istate[identifier];
        // a controller's istate is never changed after it answered: kept as it is when new
        istate[identifier] = prev ? { ...prev, ...res.istate } : res.istate;
      }
    }
    if (res.cstate) this.mergeCstate(session, res.cstate);
    for (const t of res.transmissions) session.deliver(t);
    this.markDisconnectable(session, res.disconnectInterest ?? 0);
    if (res.presence && !session.isClosed) {
      const error = await this.opts.presence.change(session, identifier, res.presence);
      if (error)
        this.opts.logger.warn("failed to process presence", {
          sid: session.sid,
          identifier: redactSigned(identifier),
          error,
        });
    }
    if (res.disconnect) this.opts.close(session, CloseCode.abnormal, "Command Failed");
    return changed;
  }

  /** anycable-go's "controller <command>" line: the answer in short, never a signed name. */
  private logResult(session: Session, what: string, res: CommandResult | null): void {
    if (!res) {
      this.opts.logger.debug(`skip ${what.replace("controller ", "")} result: closed`, { sid: session.sid });
      return;
    }
    this.opts.logger.debug(what, {
      sid: session.sid,
      response: {
        status: res.status,
        streams: res.streams,
        stopped_streams: res.stoppedStreams,
        stop_all_streams: res.stopAllStreams || undefined,
        transmissions: res.transmissions.length,
        disconnect: res.disconnect || undefined,
        error: res.errorMsg,
      },
    });
  }

  /** The hub's line for a stream a subscription started or stopped (component=hub, as anycable-go). */
  private logStream(session: Session, what: string, identifier: string, stream: string): void {
    this.hubLog.debug(what, { sid: session.sid, identifier: redactSigned(identifier), stream });
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
    return this.opts.cancellable ? session.signal : undefined;
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

  /**
   * One frozen `{identifier: state}` map per identifier, for sessions whose only istate is a
   * shared one (public / signed streams with whispers or presence): 64 B per connection before
   * (Bun.generateHeapSnapshot). Bounded: past the limit the cache starts over.
   */
  private sharedIstate(
    identifier: string,
    state: Record<string, string>,
  ): Record<string, Record<string, string>> {
    const hit = this.istateMaps.get(identifier);
    if (hit && hit[identifier] === state) return hit;
    const map: Record<string, Record<string, string>> = Object.create(null);
    map[identifier] = state;
    Object.freeze(map);
    if (this.istateMaps.size >= SHARED_ISTATE_LIMIT) this.istateMaps.clear();
    this.istateMaps.set(identifier, map);
    return map;
  }

  /** Copies on write (see ownIstate); an empty change, as local identification gives, keeps NO_STATE. */
  private mergeCstate(session: Session, cstate: Record<string, string>): void {
    if (Object.keys(cstate).length === 0) return;
    session.env.cstate = { ...session.env.cstate, ...cstate };
  }
}
