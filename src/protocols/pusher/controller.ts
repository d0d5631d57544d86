// What the application's controller chain does for Action Cable sessions, answered locally for
// Pusher sessions (anycable-go's pusher.Controller): every connection is accepted under its socket
// id, a subscription streams its channel, private and presence channels carry client events
// (whisper stream) and presence channels presence. The signatures were checked before a subscribe
// gets here (executor.ts), as anycable-go's executor checks them.
import { type Broker, isBrokerError } from "../../broker/broker.ts";
import {
  type ChannelContext,
  type CommandResult,
  type ConnectionContext,
  type ConnectResult,
  type Controller,
  PRESENCE_STREAM_STATE,
  WHISPER_STREAM_STATE,
} from "../../node/controller.ts";
import { rejectMessage } from "../actioncable.ts";
import {
  allowsClientEvents,
  identifierToChannel,
  isPresence,
  type PresenceMembers,
  subscriptionSucceededData,
} from "./protocol.ts";

/** istate keys the executor sets for a presence subscription: the member it joins as. */
export const MEMBER_ID_STATE = "pusher_user_id";
export const MEMBER_INFO_STATE = "pusher_user_info";

export class PusherController implements Controller {
  constructor(private readonly broker: Broker) {}

  async authenticate(ctx: ConnectionContext): Promise<ConnectResult> {
    return {
      status: "success",
      identifiers: JSON.stringify({ sid: ctx.sid }),
      transmissions: [JSON.stringify({ type: "welcome", sid: ctx.sid })],
      disconnectInterest: -1,
    };
  }

  async subscribe(ctx: ChannelContext): Promise<CommandResult> {
    const channel = identifierToChannel(ctx.identifier);
    if (!channel) return { status: "failure", transmissions: [rejectMessage(ctx.identifier)] };
    const istate: Record<string, string> = {};
    if (allowsClientEvents(channel)) istate[WHISPER_STREAM_STATE] = channel;
    let data = subscriptionSucceededData();
    let presence: CommandResult["presence"];
    if (isPresence(channel)) {
      istate[PRESENCE_STREAM_STATE] = channel;
      const state = ctx.env.istate[ctx.identifier];
      const id = state?.[MEMBER_ID_STATE];
      const infoJson = state?.[MEMBER_INFO_STATE];
      const info = infoJson ? (JSON.parse(infoJson) as unknown) : undefined;
      if (id !== undefined) presence = { type: "join", id, info };
      const current = await this.broker.presenceInfo(channel, { returnRecords: true });
      if (isBrokerError(current)) {
        return {
          status: "error",
          transmissions: [],
          errorMsg: `failed to load presence info: ${current.error}`,
        };
      }
      // keyed by client-chosen ids: no prototype, so "__proto__" is an id like any other
      const members: PresenceMembers = { count: 0, ids: [], hash: Object.create(null) };
      for (const r of current.records ?? []) {
        if (Object.hasOwn(members.hash, r.id)) continue;
        members.ids.push(r.id);
        members.hash[r.id] = r.info ?? null;
      }
      // The joining member is listed even though its join is applied after the confirmation.
      if (id !== undefined && !Object.hasOwn(members.hash, id)) {
        members.ids.push(id);
        members.hash[id] = info ?? null;
      }
      members.count = members.ids.length;
      data = subscriptionSucceededData(members);
    }
    const confirmation = JSON.stringify({
      type: "confirm_subscription",
      identifier: ctx.identifier,
      message: data,
    });
    return {
      status: "success",
      transmissions: [confirmation],
      streams: [channel],
      istate,
      disconnectInterest: -1,
      presence,
    };
  }

  async unsubscribe(): Promise<CommandResult> {
    return { status: "success", transmissions: [], stopAllStreams: true };
  }

  /** Pusher clients have no actions. */
  async perform(): Promise<null> {
    return null;
  }

  async disconnect(): Promise<void> {}
}
