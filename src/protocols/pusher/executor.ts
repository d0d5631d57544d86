// The Pusher executor: what each decoded Pusher command does to a session (anycable-go's
// pusher.Executor, plus what anycable-go leaves out). Subscriptions to private- and presence-
// channels are checked against their `auth` signature before the node subscribes; client events
// go out as whispers on private and presence channels; `pusher:signin` authenticates a user, who
// may then subscribe to `#server-to-user-<id>`; bad input is answered with a `pusher:error`.
import { Buffer } from "node:buffer";
import type { Broker } from "../../broker/broker.ts";
import type { Logger } from "../../log/logger.ts";
import type { Controller } from "../../node/controller.ts";
import type { Executor, RunCommand } from "../../node/executor.ts";
import { ownIstate, type Session } from "../../node/session.ts";
import type { ClientCommand } from "../encoder.ts";
import type { Channels } from "./channels.ts";
import { MEMBER_ID_STATE, MEMBER_INFO_STATE, PusherController } from "./controller.ts";
import {
  allowsClientEvents,
  type ClientEvent,
  ErrorCode,
  errorFrame,
  eventFrame,
  INVALID_COMMAND,
  identifierToChannel,
  isPresence,
  MAX_EVENT_DATA_BYTES,
  MAX_EVENT_NAME_LENGTH,
  needsAuth,
  newSocketId,
  SIGNIN_COMMAND,
  type SigninData,
  type SubscribeData,
  USER_CHANNEL_PREFIX,
  validChannelName,
} from "./protocol.ts";
import { authMatches, channelAuth, userAuth } from "./signatures.ts";
import type { Webhooks } from "./webhooks.ts";

/** Connection state key of the signed-in user's id. */
export const USER_STATE = "pusher_user";

/** The connection identifiers of a signed-in user's sessions (terminate_connections disconnects them). */
export function userIdentifiers(userId: string): string {
  return JSON.stringify({ pusher_user: userId });
}

/** Longest user_data / channel_data accepted (Pusher keeps user info small; so do brokers). */
const MAX_USER_DATA_BYTES = 10 * 1024;

export interface PusherExecutorOptions {
  appKey: string;
  secret: string;
  broker: Broker;
  channels: Channels;
  webhooks?: Webhooks;
  logger: Logger;
  /** Re-indexes a session under new connection identifiers (the node's). */
  reidentify(session: Session, identifiers: string): void;
}

type Member = { id: string; info: unknown };

export class PusherExecutor implements Executor {
  readonly controller: Controller;
  readonly ownPresenceEvents = false;
  private readonly log: Logger;

  constructor(private readonly o: PusherExecutorOptions) {
    this.controller = new PusherController(o.broker);
    this.log = o.logger.with({ context: "pusher" });
  }

  /** Pusher clients read the close code: 4009 stays away (as after terminate_connections), 4200 reconnects. */
  closeCode(reconnect: boolean): number {
    return reconnect ? ErrorCode.generic : ErrorCode.unauthorized;
  }

  newSid(): string {
    return newSocketId();
  }

  async handle(session: Session, cmd: ClientCommand, next: RunCommand): Promise<string | undefined> {
    switch (cmd.command) {
      case INVALID_COMMAND:
        return this.fail(session, String(cmd.data), null);
      case "subscribe":
        return this.subscribe(session, cmd, next);
      case "unsubscribe":
        return this.unsubscribe(session, cmd, next);
      case "whisper":
        return this.clientEvent(session, cmd, next);
      case SIGNIN_COMMAND:
        return this.signin(session, cmd.data as SigninData);
      default:
        return next(cmd);
    }
  }

  closed(session: Session): void {
    for (const identifier of session.subscriptionIds()) {
      const channel = identifierToChannel(identifier);
      if (channel !== undefined) this.o.channels.unsubscribed(session, channel);
    }
  }

  /** Sends a pusher:error and returns its text for the node to count and log. */
  private fail(session: Session, message: string, code: number | null): string {
    session.send(errorFrame(message, code));
    return message;
  }

  private async subscribe(
    session: Session,
    cmd: ClientCommand,
    next: RunCommand,
  ): Promise<string | undefined> {
    const data = cmd.data as SubscribeData;
    const channel = data.channel;
    if (!validChannelName(channel))
      return this.fail(session, `Invalid channel name: ${channel.slice(0, 200)}`, null);
    if (session.subscriptions.has(cmd.identifier)) {
      return this.fail(session, `Existing subscription to channel ${channel}`, null);
    }
    const refusal = this.authorize(session, channel, data);
    if (typeof refusal === "string") {
      this.log.debug("pusher authorization failed", { sid: session.sid, channel, error: refusal });
      // anycable-go's answer: the rejection, as pusher:error 4009 "rejected"
      session.send(errorFrame("rejected", ErrorCode.unauthorized));
      return undefined;
    }
    if (isPresence(channel) && !this.o.broker.supportsPresence) {
      return this.fail(
        session,
        "Presence channels need a broker (--broker=memory, or --presets=broker)",
        null,
      );
    }
    if (refusal) {
      // what the controller joins as (anycable-go passes channel_data the same way)
      const istate = ownIstate(session);
      istate[cmd.identifier] = {
        ...istate[cmd.identifier],
        [MEMBER_ID_STATE]: refusal.id,
        [MEMBER_INFO_STATE]: refusal.info === undefined ? "" : JSON.stringify(refusal.info),
      };
    }
    const error = await next({ command: "subscribe", identifier: cmd.identifier });
    if (!session.isClosed && session.subscriptions.has(cmd.identifier))
      this.o.channels.subscribed(session, channel);
    return error;
  }

  /** undefined: may subscribe; a Member: may, as this presence member; a string: refused, why. */
  private authorize(session: Session, channel: string, data: SubscribeData): Member | string | undefined {
    if (channel.startsWith(USER_CHANNEL_PREFIX)) {
      const user = session.env.cstate[USER_STATE];
      return user !== undefined && channel === USER_CHANNEL_PREFIX + user
        ? undefined
        : "not signed in as that user";
    }
    if (!needsAuth(channel)) return undefined;
    if (this.o.secret === "") return "no Pusher secret is configured";
    if (!isPresence(channel)) {
      return authMatches(data.auth, channelAuth(this.o.appKey, this.o.secret, session.sid, channel))
        ? undefined
        : "invalid signature";
    }
    const channelData = data.channel_data ?? "";
    if (
      !authMatches(data.auth, channelAuth(this.o.appKey, this.o.secret, session.sid, channel, channelData))
    ) {
      return "invalid signature";
    }
    return parseMember(channelData) ?? "invalid channel_data: it needs a user_id";
  }

  private async unsubscribe(
    session: Session,
    cmd: ClientCommand,
    next: RunCommand,
  ): Promise<string | undefined> {
    // Pusher ignores an unsubscribe from a channel the client is not in.
    if (!session.subscriptions.has(cmd.identifier)) return undefined;
    const error = await next({ command: "unsubscribe", identifier: cmd.identifier });
    const channel = identifierToChannel(cmd.identifier);
    if (channel !== undefined && !session.subscriptions.has(cmd.identifier)) {
      this.o.channels.unsubscribed(session, channel);
    }
    return error;
  }

  private async clientEvent(
    session: Session,
    cmd: ClientCommand,
    next: RunCommand,
  ): Promise<string | undefined> {
    const event = cmd.data as ClientEvent;
    const channel = event.channel;
    if (event.event.length > MAX_EVENT_NAME_LENGTH) {
      return this.fail(session, "Client event rejected - event name longer than 200 characters", null);
    }
    if (!allowsClientEvents(channel)) {
      return this.fail(
        session,
        "Client event rejected - only supported on private and presence channels",
        null,
      );
    }
    if (!session.subscriptions.has(cmd.identifier)) {
      return this.fail(session, `Client event rejected - not subscribed to channel ${channel}`, null);
    }
    const dataJson = JSON.stringify(event.data);
    if (Buffer.byteLength(dataJson) > MAX_EVENT_DATA_BYTES) {
      return this.fail(session, "Client event rejected - data over 10 KB", null);
    }
    const userId = session.env.istate[cmd.identifier]?.[MEMBER_ID_STATE];
    const whispered: ClientEvent = { event: event.event, channel, data: event.data };
    if (userId !== undefined && isPresence(channel)) whispered.user_id = userId;
    const error = await next({ command: "whisper", identifier: cmd.identifier, data: whispered });
    const hooks = this.o.webhooks;
    if (error === undefined && hooks?.wants("client_event")) {
      hooks.emit({
        name: "client_event",
        channel,
        event: event.event,
        data: typeof event.data === "string" ? event.data : dataJson,
        socket_id: session.sid,
        ...(whispered.user_id !== undefined ? { user_id: whispered.user_id } : {}),
      });
    }
    return error;
  }

  private async signin(session: Session, data: SigninData): Promise<string | undefined> {
    const userData = data.user_data ?? "";
    let error: string | undefined;
    let id: string | undefined;
    if (this.o.secret === "") error = "no Pusher secret is configured";
    else if (!authMatches(data.auth, userAuth(this.o.appKey, this.o.secret, session.sid, userData))) {
      error = "Invalid signature";
    } else if (session.env.cstate[USER_STATE] !== undefined) {
      error = "Already signed in";
    } else {
      id = userIdOf(userData);
      if (id === undefined) error = "user_data needs a non-empty string id";
    }
    if (error !== undefined || id === undefined) {
      // Pusher refuses a failed sign-in with 4009 and closes the connection.
      session.send(errorFrame(error ?? "Invalid signature", ErrorCode.unauthorized));
      session.closing = true;
      session.socket.close(ErrorCode.unauthorized, "Unauthorized");
      return `signin refused: ${error}`;
    }
    session.env.cstate = { ...session.env.cstate, [USER_STATE]: id };
    this.o.reidentify(session, userIdentifiers(id));
    session.send(eventFrame("pusher:signin_success", { user_data: userData }));
    this.log.debug("pusher user signed in", { sid: session.sid, user_id: id });
    return undefined;
  }
}

/** A presence channel_data's member: `user_id` (a string, or a number as Laravel sends it) and `user_info`. */
export function parseMember(channelData: string): Member | undefined {
  if (Buffer.byteLength(channelData) > MAX_USER_DATA_BYTES) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(channelData);
  } catch {
    return undefined;
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) return undefined;
  const o = v as Record<string, unknown>;
  let id: string;
  if (typeof o.user_id === "string") id = o.user_id;
  else if (typeof o.user_id === "number" && Number.isFinite(o.user_id)) id = String(o.user_id);
  else return undefined;
  if (id === "") return undefined;
  return { id, info: o.user_info ?? undefined };
}

function userIdOf(userData: string): string | undefined {
  if (Buffer.byteLength(userData) > MAX_USER_DATA_BYTES) return undefined;
  try {
    const v = JSON.parse(userData) as { id?: unknown } | null;
    return v && typeof v.id === "string" && v.id !== "" ? v.id : undefined;
  } catch {
    return undefined;
  }
}
