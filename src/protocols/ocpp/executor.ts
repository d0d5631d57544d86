// The OCPP executor: what each decoded OCPP-J frame of a charging station does to its session, in
// Action Cable terms on the application's OCPP channel (AnyCable Pro's OCPP support).
//
// - BootNotification authenticates the station (Connect, with the station's URL and headers),
//   subscribes it to the OCPP channel as `{channel, sn, station_id}` and performs
//   `boot_notification`; a second one only performs.
// - Every other station action performs its snake_case action (`receive` without granular actions)
//   with `{id, command, payload}`; Heartbeat is answered here, with the current time.
// - An action that transmits no `Ack` / `Error` for the call's id is acknowledged by default:
//   `{"status":"Accepted"}` (BootNotification: with currentTime and the heartbeat interval).
// - The station's CallResult / CallError to a Call the application sent it (a remote command)
//   performs `ack` / `error`; one for an id it was never sent is answered with a CallError.
// - Anything else breaking the protocol is answered with the protocol's CallError.

import type { Logger } from "../../log/logger.ts";
import type { ChannelContext, CommandResult, Controller } from "../../node/controller.ts";
import { AUTHENTICATE_COMMAND, type Executor, type RunCommand } from "../../node/executor.ts";
import { ForwardingController } from "../../node/forwarding_controller.ts";
import type { Session } from "../../node/session.ts";
import type { ConnectionRequest } from "../../node/socket.ts";
import type { ClientCommand } from "../encoder.ts";
import {
  answeredId,
  CALL_COMMAND,
  CENTRAL_ACTIONS,
  callErrorFrame,
  callResultFrame,
  currentTime,
  ERROR_COMMAND,
  type ErrorCode,
  INVALID_COMMAND,
  type InvalidFrame,
  type OcppCall,
  OcppEncoder,
  type OcppError,
  type OcppResult,
  RESULT_COMMAND,
  STATION_ACTIONS,
  snakeCase,
} from "./protocol.ts";

/** The WebSocket close code for a station that offered only sub-protocols we do not speak. */
export const UNSUPPORTED_PROTOCOL_CLOSE = 1002;

export interface OcppExecutorOptions {
  /** The endpoint prefix (stations at `${path}/${station_id}`), without a trailing slash. */
  path: string;
  channel: string;
  heartbeatIntervalSec: number;
  granularActions: boolean;
  logger: Logger;
  now?: () => number;
}

const BOOT = "BootNotification";

/** The station id of a connection URL under `prefix` (undefined when it names none). */
export function stationIdOf(pathname: string, prefix: string): string | undefined {
  if (!pathname.startsWith(`${prefix}/`)) return undefined;
  const raw = pathname.slice(prefix.length + 1);
  if (raw === "" || raw.includes("/")) return undefined;
  try {
    const id = decodeURIComponent(raw);
    return id === "" ? undefined : id;
  } catch {
    return undefined;
  }
}

/** The station's serial number in its BootNotification (the channel's `sn` param). */
function serialNumber(payload: Record<string, unknown>, stationId: string): string {
  for (const key of ["meterSerialNumber", "chargePointSerialNumber", "chargeBoxSerialNumber"]) {
    const v = payload[key];
    if (typeof v === "string" && v !== "") return v;
  }
  return stationId;
}

function key(sid: string, id: string): string {
  return `${sid}\n${id}`;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * The application's controller chain, watching the OCPP channel's answers: a perform whose
 * transmissions carry an `Ack` / `Error` for the call's id is noted (no default answer then), and
 * a BootNotification's own Ack gets the fields its answer needs (currentTime, interval, status)
 * when the application left them out.
 */
export class OcppController extends ForwardingController {
  constructor(
    inner: Controller,
    private readonly answered: Set<string>,
    private readonly bootFields: (now: number) => Record<string, unknown>,
    private readonly now: () => number,
  ) {
    super(inner);
  }

  override async perform(ctx: ChannelContext, data: string): Promise<CommandResult | null> {
    const res = await this.inner.perform(ctx, data);
    if (!res || res.transmissions.length === 0) return res;
    let call: { id?: unknown; command?: unknown } = {};
    try {
      call = JSON.parse(data) as typeof call;
    } catch {
      return res;
    }
    if (typeof call.id !== "string") return res;
    const id = call.id;
    let found = false;
    const transmissions = res.transmissions.map((t) => {
      if (answeredId(t) !== id) return t;
      found = true;
      return call.command === BOOT ? this.completeBoot(t) : t;
    });
    if (!found) return res;
    this.answered.add(key(ctx.sid, id));
    return { ...res, transmissions };
  }

  private completeBoot(transmission: string): string {
    const t = JSON.parse(transmission) as { message: Record<string, unknown> };
    if (t.message.command !== "Ack") return transmission;
    const payload = isObject(t.message.payload) ? t.message.payload : {};
    t.message.payload = { ...this.bootFields(this.now()), ...payload };
    return JSON.stringify(t);
  }
}

export class OcppExecutor implements Executor {
  readonly controller: Controller;
  readonly deferredAuthentication = true;
  private readonly log: Logger;
  private readonly now: () => number;
  /** Calls the application answered itself, noted by the controller, taken after the perform. */
  private readonly answered = new Set<string>();
  /** The OCPP channel identifier of each booted station's session. */
  private readonly identifiers = new Map<Session, string>();
  /** Upgrades whose station offered only other sub-protocols: closed as they open (OCPP-J). */
  private readonly refused = new WeakSet<ConnectionRequest>();
  private encoders = 0;

  constructor(
    inner: Controller,
    private readonly o: OcppExecutorOptions,
  ) {
    this.now = o.now ?? Date.now;
    this.controller = new OcppController(inner, this.answered, (now) => this.bootFields(now), this.now);
    this.log = o.logger.with({ context: "ocpp" });
  }

  /** A fresh encoder for a station's session (each remembers the Calls sent to its station). */
  newEncoder(): OcppEncoder {
    return new OcppEncoder(`ocpp#${++this.encoders}`);
  }

  /** The upgrade of `request` completes without a sub-protocol; the session is closed as it opens. */
  refuse(request: ConnectionRequest): void {
    this.refused.add(request);
  }

  opened(session: Session): void {
    if (!this.refused.has(session.request)) return;
    this.close(session, UNSUPPORTED_PROTOCOL_CLOSE, "Unsupported sub-protocol");
  }

  closed(session: Session): void {
    this.identifiers.delete(session);
  }

  /** Sessions of booted stations (their subscription to the OCPP channel is made). */
  get booted(): number {
    return this.identifiers.size;
  }

  private close(session: Session, code: number, reason: string): void {
    if (session.closing) return;
    session.closing = true;
    try {
      session.socket.close(code, reason);
    } catch (err) {
      this.log.debug("socket close failed", { sid: session.sid, error: err });
    }
  }

  private bootFields(now: number): Record<string, unknown> {
    return { status: "Accepted", currentTime: currentTime(now), interval: this.o.heartbeatIntervalSec };
  }

  private error(session: Session, id: string, code: ErrorCode, description: string): string {
    session.send(callErrorFrame(id, code, description));
    return `${code}: ${description}`;
  }

  async handle(session: Session, cmd: ClientCommand, next: RunCommand): Promise<string | undefined> {
    switch (cmd.command) {
      case INVALID_COMMAND: {
        const bad = cmd.data as InvalidFrame;
        if (bad.silent) return `${bad.code}: ${bad.description}`;
        return this.error(session, bad.id, bad.code, bad.description);
      }
      case CALL_COMMAND:
        return this.call(session, cmd.data as OcppCall, next);
      case RESULT_COMMAND:
        return this.result(session, cmd.data as OcppResult, next);
      case ERROR_COMMAND:
        return this.stationError(session, cmd.data as OcppError, next);
    }
    return `unknown command: ${cmd.command}`;
  }

  private async call(session: Session, call: OcppCall, next: RunCommand): Promise<string | undefined> {
    const { id, action } = call;
    if (!STATION_ACTIONS.has(action)) {
      const name = action.slice(0, 100);
      return CENTRAL_ACTIONS.has(action)
        ? this.error(session, id, "NotSupported", `${name} is not an action a charge point initiates`)
        : this.error(session, id, "NotImplemented", `Unknown action ${name}`);
    }
    if (action === BOOT) return this.boot(session, call, next);
    const identifier = this.identifiers.get(session);
    if (identifier === undefined || session.state !== "connected")
      return this.error(session, id, "SecurityError", "BootNotification has not been accepted");
    if (action === "Heartbeat") {
      session.send(callResultFrame(id, { currentTime: currentTime(this.now()) }));
      return undefined;
    }
    return this.perform(session, identifier, call, next);
  }

  /** BootNotification: Connect (once), subscribe to the OCPP channel (until accepted), perform. */
  private async boot(session: Session, call: OcppCall, next: RunCommand): Promise<string | undefined> {
    if (session.state === "connecting") {
      const error = await next({ command: AUTHENTICATE_COMMAND, identifier: "" });
      // a refused station is closed by the node (Connect's own disconnect message and close code)
      // (the await changed the state: read it afresh, not as narrowed above)
      if ((session.state as string) !== "connected")
        return error ?? (session.isClosed ? undefined : "not authenticated");
    }
    let identifier = this.identifiers.get(session);
    if (identifier === undefined) {
      const stationId = stationIdOf(new URL(session.request.url).pathname, this.o.path) ?? "";
      identifier = JSON.stringify({
        channel: this.o.channel,
        sn: serialNumber(call.payload, stationId),
        station_id: stationId,
      });
      const error = await next({ command: "subscribe", identifier });
      if (session.isClosed) return error;
      if (!session.subscriptions.has(identifier)) {
        // the channel rejected the station: it may try again after the interval
        session.send(callResultFrame(call.id, { ...this.bootFields(this.now()), status: "Rejected" }));
        return error;
      }
      this.identifiers.set(session, identifier);
    }
    return this.perform(session, identifier, call, next);
  }

  private async perform(
    session: Session,
    identifier: string,
    call: OcppCall,
    next: RunCommand,
  ): Promise<string | undefined> {
    const message: Record<string, unknown> = { id: call.id, command: call.action, payload: call.payload };
    const data = JSON.stringify(
      this.o.granularActions ? { action: snakeCase(call.action), ...message } : message,
    );
    const k = key(session.sid, call.id);
    // (a command that throws is the node's to log: nothing is answered for it)
    let error: string | undefined;
    let answered = false;
    try {
      error = await next({ command: "message", identifier, data });
    } finally {
      answered = this.answered.delete(k);
    }
    if (session.isClosed || answered) return error;
    if (error !== undefined) {
      session.send(callErrorFrame(call.id, "InternalError", "The application failed to handle the action"));
    } else {
      const payload = call.action === BOOT ? this.bootFields(this.now()) : { status: "Accepted" };
      session.send(callResultFrame(call.id, payload));
    }
    return error;
  }

  /** The station's CallResult: `ack` for a Call it was sent, a CallError for any other id. */
  private async result(session: Session, res: OcppResult, next: RunCommand): Promise<string | undefined> {
    const action = this.settle(session, res.id);
    const identifier = this.identifiers.get(session);
    if (action === undefined || identifier === undefined)
      return this.error(session, res.id, "GenericError", "CallResult for an unknown message id");
    const message = { id: res.id, command: "Ack", payload: res.payload };
    const data = JSON.stringify(this.o.granularActions ? { action: "ack", ...message } : message);
    return this.performAnswer(session, res.id, identifier, data, next);
  }

  /** The station's CallError: `error` for a Call it was sent; for any other id only logged (no ping-pong). */
  private async stationError(
    session: Session,
    err: OcppError,
    next: RunCommand,
  ): Promise<string | undefined> {
    const action = this.settle(session, err.id);
    const identifier = this.identifiers.get(session);
    if (action === undefined || identifier === undefined)
      return `CallError for an unknown message id ${err.id}: ${err.code}`;
    const message = {
      id: err.id,
      command: "Error",
      code: err.code,
      message: err.description,
      payload: err.details,
    };
    const data = JSON.stringify(this.o.granularActions ? { action: "error", ...message } : message);
    return this.performAnswer(session, err.id, identifier, data, next);
  }

  /** `ack` / `error`: nothing is answered to the station (the controller's note of an Ack the application sent with the same id is dropped). */
  private async performAnswer(
    session: Session,
    id: string,
    identifier: string,
    data: string,
    next: RunCommand,
  ): Promise<string | undefined> {
    try {
      return await next({ command: "message", identifier, data });
    } finally {
      this.answered.delete(key(session.sid, id));
    }
  }

  private settle(session: Session, id: string): string | undefined {
    const encoder = session.encoder;
    return encoder instanceof OcppEncoder ? encoder.settle(id) : undefined;
  }
}
