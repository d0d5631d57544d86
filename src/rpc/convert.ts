// Session env -> RPC request messages, RPC responses -> the session core's results, exactly as
// anycable-go's protocol package builds and reads them.
import { create } from "@bufbuild/protobuf";
import {
  type CommandMessage,
  CommandMessageSchema,
  type CommandResponse,
  type ConnectionRequest,
  ConnectionRequestSchema,
  type ConnectionResponse,
  type DisconnectRequest,
  DisconnectRequestSchema,
  type DisconnectResponse,
  type Env,
  EnvSchema,
  Status,
} from "../../gen/anycable/rpc_pb.ts";
import type { CommandResult, ConnectResult, PresenceChange, SessionEnv } from "../node/controller.ts";

/** Command names on the wire (Action Cable's "message" is the perform command). */
export type CommandName = "subscribe" | "unsubscribe" | "message";

/** An ERROR status from the application: anycable-go turns it into a failed call. */
export class ApplicationError extends Error {
  constructor(message: string) {
    super(`Application error: ${message}`);
    this.name = "ApplicationError";
  }
}

/**
 * anycable-go deletes a state key when a response sets it to "", so such keys never reach the
 * application again. The session core keeps them as "", so they are dropped on the way out.
 */
function present(state: Record<string, string> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!state) return out;
  for (const key in state) {
    const value = state[key]!;
    if (value !== "") out[key] = value;
  }
  return out;
}

function baseEnv(env: SessionEnv): Env {
  return create(EnvSchema, { url: env.url, headers: { ...env.headers }, cstate: present(env.cstate) });
}

export function connectRequest(env: SessionEnv): ConnectionRequest {
  return create(ConnectionRequestSchema, { env: baseEnv(env) });
}

/** Command calls carry the connection state and only the addressed subscription's own state. */
export function commandRequest(
  env: SessionEnv,
  command: CommandName,
  identifier: string,
  connectionIdentifiers: string,
  data = "",
): CommandMessage {
  const wireEnv = baseEnv(env);
  const istate = env.istate[identifier];
  if (istate) wireEnv.istate = present(istate);
  return create(CommandMessageSchema, {
    command,
    identifier,
    connectionIdentifiers,
    data,
    env: wireEnv,
  });
}

/** Disconnect calls carry every subscription's state, each encoded as a JSON object. */
export function disconnectRequest(
  env: SessionEnv,
  identifiers: string,
  subscriptions: readonly string[],
): DisconnectRequest {
  const wireEnv = baseEnv(env);
  for (const id in env.istate) wireEnv.istate[id] = goJsonObject(present(env.istate[id]));
  return create(DisconnectRequestSchema, { identifiers, subscriptions: [...subscriptions], env: wireEnv });
}

/**
 * Go's encoding/json output for a map[string]string (sorted keys, <, >, & and U+2028/9 escaped),
 * so applications comparing or hashing the state see the bytes anycable-go sends.
 */
export function goJsonObject(map: Record<string, string>): string {
  const keys = Object.keys(map).sort();
  const body = keys.map((k) => `${goJsonString(k)}:${goJsonString(map[k]!)}`).join(",");
  return `{${body}}`;
}

function goJsonString(s: string): string {
  return JSON.stringify(s).replace(
    /[<>&\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

function nonEmpty(map: Record<string, string> | undefined): Record<string, string> | undefined {
  return map && Object.keys(map).length > 0 ? map : undefined;
}

/** SUCCESS/FAILURE become results; ERROR rejects, so the session closes with 1011 (anycable-go). */
export function connectResult(res: ConnectionResponse): ConnectResult {
  const cstate = nonEmpty(res.env?.cstate);
  if (res.status === Status.SUCCESS) {
    return { status: "success", identifiers: res.identifiers, transmissions: res.transmissions, cstate };
  }
  if (res.status === Status.FAILURE) {
    // anycable-go does not take identifiers from a rejected connection
    return { status: "failure", identifiers: "", transmissions: res.transmissions, cstate };
  }
  throw new ApplicationError(res.errorMsg);
}

/** ERROR is returned as status "error": the session sends nothing and applies nothing. */
export function commandResult(res: CommandResponse): CommandResult {
  const status =
    res.status === Status.SUCCESS ? "success" : res.status === Status.FAILURE ? "failure" : "error";
  return {
    status,
    transmissions: res.transmissions,
    streams: res.streams,
    stoppedStreams: res.stoppedStreams,
    stopAllStreams: res.stopStreams,
    disconnect: res.disconnect,
    cstate: nonEmpty(res.env?.cstate),
    istate: nonEmpty(res.env?.istate),
    errorMsg: status === "error" ? new ApplicationError(res.errorMsg).message : undefined,
    presence: res.presence
      ? presenceChange(res.presence.type, res.presence.id, res.presence.info)
      : undefined,
  };
}

/** The wire's info is JSON text, or a plain string when it does not parse (as anycable-go reads it). */
function presenceChange(type: string, id: string, info: string): PresenceChange {
  if (info === "") return { type, id };
  try {
    return { type, id, info: JSON.parse(info) };
  } catch {
    return { type, id, info };
  }
}

/** Only ERROR is a failure of Disconnect. */
export function checkDisconnect(res: DisconnectResponse): void {
  if (res.status === Status.ERROR) throw new ApplicationError(res.errorMsg);
}
