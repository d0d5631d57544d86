import type { CommandResult, ConnectResult, Controller } from "../node/controller.ts";
import { confirmMessage, rejectMessage } from "../protocols/actioncable.ts";

export const PUBSUB_CHANNEL = "$pubsub";

export interface StreamsOptions {
  /** Accept unsigned `stream_name` subscriptions (`--public_streams`). */
  publicStreams: boolean;
}

export type StreamResolution = { ok: true; stream: string } | { ok: false; error: string };

/**
 * Resolves a `$pubsub` identifier to its stream. Signed names (`signed_stream_name`) need the
 * streams secret and are verified by the signed-streams layer; until it is configured they are
 * rejected like any unverifiable name.
 */
export function resolvePubsubStream(identifier: string, opts: StreamsOptions): StreamResolution {
  let parsed: unknown;
  try {
    parsed = JSON.parse(identifier);
  } catch {
    return { ok: false, error: "invalid identifier" };
  }
  if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) {
    return { ok: false, error: "invalid identifier" };
  }
  const req = parsed as Record<string, unknown>;
  const streamName = typeof req.stream_name === "string" ? req.stream_name : "";
  const signed = typeof req.signed_stream_name === "string" ? req.signed_stream_name : "";
  if (streamName === "" && signed === "") {
    return { ok: false, error: "malformed identifier: no stream name or signed stream" };
  }
  if (signed !== "") return { ok: false, error: "verification failed" };
  if (!opts.publicStreams) return { ok: false, error: "public streams are not allowed" };
  return { ok: true, stream: streamName };
}

/** Answers `$pubsub` subscriptions locally, without RPC. */
export class StreamsController implements Controller {
  constructor(private readonly opts: StreamsOptions) {}

  async authenticate(): Promise<ConnectResult | null> {
    return null;
  }

  async subscribe(_sid: string, _env: unknown, _ids: string, identifier: string): Promise<CommandResult> {
    const res = resolvePubsubStream(identifier, this.opts);
    if (!res.ok) {
      return { status: "failure", transmissions: [rejectMessage(identifier)], errorMsg: res.error };
    }
    return {
      status: "success",
      transmissions: [confirmMessage(identifier)],
      streams: [res.stream],
      disconnectInterest: -1,
    };
  }

  async unsubscribe(): Promise<CommandResult> {
    return { status: "success", transmissions: [], streams: [], stopAllStreams: true };
  }

  async perform(): Promise<CommandResult | null> {
    return null;
  }

  async disconnect(): Promise<void> {}
}
