// The GraphQL executor: what each decoded graphql-ws / subscriptions-transport-ws message does to a
// session, in Action Cable terms on the application's GraphQL channel (AnyCable Pro's Apollo
// translator). connection_init authenticates (its payload travels as the x-apollo-connection
// header); an operation subscribes to the channel under the operation's id and performs the
// channel's action with {query, variables, operationName}; the action's `{result, more}`
// transmissions and the channel's broadcasts become `next` frames (protocol.ts), and `more: false`
// completes the operation. Protocol violations close the socket with graphql-ws' own codes.

import type { Logger } from "../../log/logger.ts";
import type { ChannelContext, CommandResult, Controller } from "../../node/controller.ts";
import { AUTHENTICATE_COMMAND, type Executor, type RunCommand } from "../../node/executor.ts";
import { ForwardingController } from "../../node/forwarding_controller.ts";
import type { Session } from "../../node/session.ts";
import type { ClientCommand } from "../encoder.ts";
import {
  COMPLETE_COMMAND,
  completeFrame,
  connectionErrorFrame,
  endsOperation,
  errorFrame,
  GraphqlCloseCode,
  type GraphqlProtocol,
  INIT_COMMAND,
  INVALID_COMMAND,
  type InitParams,
  type InvalidFrame,
  KEEPALIVE_FRAME,
  LEGACY_WS_PROTOCOL,
  type Operation,
  SUBSCRIBE_COMMAND,
  TERMINATE_COMMAND,
} from "./protocol.ts";

/** The header the connection params reach the application in (AnyCable Pro's name). */
export const CONNECTION_HEADER = "x-apollo-connection";
/** How long a socket may stay open without connection_init (graphql-ws' server default). */
export const INIT_TIMEOUT_MS = 3000;

export interface GraphqlExecutorOptions {
  protocol: GraphqlProtocol;
  /** The GraphQL channel's class name and action. */
  channel: string;
  action: string;
  /** The JWT parameter to take from the connection params ("" when JWT identification is off). */
  jwtParam: string;
  logger: Logger;
  now?: () => number;
}

/** The key of one operation of one session in `ended`. */
function operationKey(sid: string, identifier: string): string {
  return `${sid}\n${identifier}`;
}

/**
 * The application's controller chain, watching the GraphQL action's answers: an operation whose
 * transmission says `more: false` (a query, a mutation, a refused subscription) is noted, so the
 * executor completes it and leaves the channel's subscription.
 */
export class GraphqlController extends ForwardingController {
  constructor(
    inner: Controller,
    private readonly ended: Set<string>,
  ) {
    super(inner);
  }

  override async perform(ctx: ChannelContext, data: string): Promise<CommandResult | null> {
    const res = await this.inner.perform(ctx, data);
    if (res?.transmissions.some((t) => endsOperation(t, ctx.identifier))) {
      this.ended.add(operationKey(ctx.sid, ctx.identifier));
    }
    return res;
  }
}

export class GraphqlExecutor implements Executor {
  readonly controller: Controller;
  readonly deferredAuthentication = true;
  private readonly legacy: boolean;
  private readonly log: Logger;
  private readonly now: () => number;
  /** The operations whose action said `more: false`, noted by the controller, taken by `start`. */
  private readonly ended = new Set<string>();
  /**
   * Sessions not initialised yet -> when they must have sent connection_init (epoch ms). One
   * timeout for all: insertion order is deadline order, so the ticker reads only the expired head.
   */
  private readonly pending = new Map<Session, number>();

  constructor(
    inner: Controller,
    private readonly o: GraphqlExecutorOptions,
  ) {
    this.controller = new GraphqlController(inner, this.ended);
    this.legacy = o.protocol === LEGACY_WS_PROTOCOL;
    this.log = o.logger.with({ context: "graphql" });
    this.now = o.now ?? Date.now;
  }

  opened(session: Session): void {
    this.pending.set(session, this.now() + INIT_TIMEOUT_MS);
  }

  closed(session: Session): void {
    this.pending.delete(session);
  }

  /** A refused connection_init: graphql-ws' 4403 Forbidden; the legacy protocol keeps the node's code. */
  closeCode(reconnect: boolean, code: number): number {
    return !reconnect && !this.legacy ? GraphqlCloseCode.forbidden : code;
  }

  /** Closes the socket with a protocol close code; returns the reason for the node to count and log. */
  private close(session: Session, code: number, reason: string): string {
    if (!session.closing) {
      session.closing = true;
      try {
        session.socket.close(code, reason);
      } catch (err) {
        this.log.debug("socket close failed", { sid: session.sid, error: err });
      }
    }
    return `${code}: ${reason}`;
  }

  async handle(session: Session, cmd: ClientCommand, next: RunCommand): Promise<string | undefined> {
    if (cmd.command === INVALID_COMMAND) {
      const bad = cmd.data as InvalidFrame;
      if (!this.legacy) return this.close(session, GraphqlCloseCode.badRequest, bad.reason);
      // subscriptions-transport-ws answers and keeps the connection
      session.send(
        bad.parse ? connectionErrorFrame(bad.reason) : errorFrame(this.o.protocol, "", bad.reason),
      );
      return bad.reason;
    }
    if (cmd.command === TERMINATE_COMMAND) {
      this.close(session, 1000, "Normal Closure");
      return undefined;
    }
    if (session.state === "connecting") return this.beforeInit(session, cmd, next);
    switch (cmd.command) {
      case INIT_COMMAND:
        if (this.legacy) return "connection_init after the connection was initialised";
        return this.close(session, GraphqlCloseCode.tooManyInits, "Too many initialisation requests");
      case SUBSCRIBE_COMMAND:
        return this.start(session, cmd.data as Operation, next);
      case COMPLETE_COMMAND:
        return this.stop(session, cmd.data as string, next);
      default:
        return next(cmd);
    }
  }

  private async beforeInit(
    session: Session,
    cmd: ClientCommand,
    next: RunCommand,
  ): Promise<string | undefined> {
    switch (cmd.command) {
      case INIT_COMMAND:
        return this.init(session, cmd.data as InitParams, next);
      case "ping":
      case "pong":
        return next(cmd);
    }
    if (this.legacy) {
      const id = cmd.command === SUBSCRIBE_COMMAND ? (cmd.data as Operation).id : "";
      session.send(errorFrame(this.o.protocol, id, "connection_init is required first"));
      return "operation before connection_init";
    }
    return this.close(session, GraphqlCloseCode.unauthorized, "Unauthorized");
  }

  /** connection_init: its params as the x-apollo-connection header (and a JWT among them), then Connect. */
  private async init(session: Session, params: InitParams, next: RunCommand): Promise<string | undefined> {
    this.pending.delete(session);
    const headers = session.env.headers;
    if (params !== undefined) headers[CONNECTION_HEADER] = JSON.stringify(params);
    const param = this.o.jwtParam;
    const token = param !== "" ? params?.[param] : undefined;
    const tokenHeader = `x-${param}`.toLowerCase();
    // a token in the upgrade's header or sub-protocol stays first, as for Action Cable clients
    if (typeof token === "string" && token !== "" && !headers[tokenHeader]) headers[tokenHeader] = token;
    const error = await next({ command: AUTHENTICATE_COMMAND, identifier: "" });
    // subscriptions-transport-ws' server keeps the client alive from its acknowledgement on
    if (this.legacy && session.state === "connected") session.send(KEEPALIVE_FRAME);
    return error;
  }

  private identifier(id: string): string {
    return JSON.stringify({ channel: this.o.channel, channelId: id });
  }

  private async start(session: Session, op: Operation, next: RunCommand): Promise<string | undefined> {
    const identifier = this.identifier(op.id);
    if (session.subscriptions.has(identifier)) {
      if (!this.legacy) {
        return this.close(
          session,
          GraphqlCloseCode.subscriberExists,
          `Subscriber for ${op.id.slice(0, 100)} already exists`,
        );
      }
      // subscriptions-transport-ws stops the running operation of that id and starts the new one
      const error = await next({ command: "unsubscribe", identifier });
      if (error !== undefined || session.isClosed) return error;
    }
    let error = await next({ command: "subscribe", identifier });
    if (session.isClosed) return error;
    if (!session.subscriptions.has(identifier)) {
      session.send(
        errorFrame(
          this.o.protocol,
          op.id,
          error === undefined ? "Subscription rejected" : "Subscription failed",
        ),
      );
      return error;
    }
    const data = JSON.stringify({
      query: op.query,
      variables: op.variables,
      operationName: op.operationName,
      action: this.o.action,
    });
    const key = operationKey(session.sid, identifier);
    try {
      error = await next({ command: "message", identifier, data });
    } finally {
      const ended = this.ended.delete(key);
      if ((ended || error !== undefined) && !session.isClosed) {
        // The operation is over: the channel's subscription goes first (its unsubscribed callback),
        // then the client is told, so a client that closes on completion cannot race the unsubscribe.
        const left = await next({ command: "unsubscribe", identifier });
        if (left !== undefined)
          this.log.debug("failed to leave a finished operation", { sid: session.sid, error: left });
        if (!session.isClosed) {
          session.send(
            error === undefined
              ? completeFrame(op.id)
              : errorFrame(this.o.protocol, op.id, "Operation failed"),
          );
        }
      }
    }
    return error;
  }

  /** The client stops an operation (graphql-ws' complete, the legacy stop). */
  private async stop(session: Session, id: string, next: RunCommand): Promise<string | undefined> {
    const identifier = this.identifier(id);
    // an operation the server completed already, or never knew: nothing to do
    if (!session.subscriptions.has(identifier)) return undefined;
    const error = await next({ command: "unsubscribe", identifier });
    if (this.legacy && !session.isClosed) session.send(completeFrame(id));
    return error;
  }

  /** The ticker: sockets that sent no connection_init in time are closed (4408). */
  tick(now: number): void {
    for (const [session, deadline] of this.pending) {
      if (deadline > now) break;
      this.pending.delete(session);
      if (session.state !== "connecting") continue;
      this.log.debug("no connection_init in time", { sid: session.sid });
      this.close(session, GraphqlCloseCode.initTimeout, "Connection initialisation timeout");
    }
  }
}
