// Call contexts for driving a Controller directly, as the node would.
import type { ChannelContext, ConnectionContext, SessionEnv } from "../../src/node/controller.ts";

/** An authenticate call: no identifiers yet. */
export function authCtx(sid: string, env: SessionEnv, signal?: AbortSignal): ConnectionContext {
  return { sid, env, identifiers: "", signal };
}

/** A disconnect call: made after the close, so no signal. */
export function closedCtx(sid: string, env: SessionEnv, identifiers: string): ConnectionContext {
  return { sid, env, identifiers };
}

export function chanCtx(
  sid: string,
  env: SessionEnv,
  identifiers: string,
  identifier: string,
  signal?: AbortSignal,
): ChannelContext {
  return { sid, env, identifiers, identifier, signal };
}
