import { disconnectMessage, rejectMessage } from "../protocols/actioncable.ts";
import type { ChannelContext, CommandResult, ConnectResult, Controller } from "./controller.ts";

/** `--norpc`: nothing is delegated, so anything not answered by identity/streams is refused. */
export class NullController implements Controller {
  async authenticate(): Promise<ConnectResult> {
    return {
      status: "failure",
      identifiers: "",
      transmissions: [disconnectMessage("unauthorized", false)],
      disconnectInterest: -1,
    };
  }
  async subscribe(ctx: ChannelContext): Promise<CommandResult> {
    return { status: "failure", transmissions: [rejectMessage(ctx.identifier)], disconnectInterest: -1 };
  }
  async unsubscribe(): Promise<CommandResult> {
    throw new Error("not implemented");
  }
  async perform(): Promise<CommandResult> {
    throw new Error("not implemented");
  }
  async disconnect(): Promise<void> {}
}
