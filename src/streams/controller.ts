// Channels answered by the server itself, without RPC: `$pubsub` (signed or public stream names),
// `Turbo::StreamsChannel` and `CableReady::Stream` (signed names), as anycable-go's streams package.
import {
  type ChannelContext,
  type CommandResult,
  type ConnectResult,
  type Controller,
  PRESENCE_STREAM_STATE,
  WHISPER_STREAM_STATE,
} from "../node/controller.ts";
import { confirmMessage, rejectMessage } from "../protocols/actioncable.ts";
import { MessageVerifier } from "./verifier.ts";

export const PUBSUB_CHANNEL = "$pubsub";
export const TURBO_CHANNEL = "Turbo::StreamsChannel";
export const CABLE_READY_CHANNEL = "CableReady::Stream";

/** What a channel identifier asks for, before verification. */
export interface StreamRequest {
  streamName: string;
  signedStreamName: string;
  /** Record the stream as the subscription's whisper stream (istate `$w`). */
  whisper: boolean;
  /** Record the stream as the subscription's presence stream (istate `$p`). */
  presence: boolean;
}

export type Resolved<T> = { ok: true; value: T } | { ok: false; error: string };

/** Turns an identifier into a request; an error rejects the subscription. */
export type StreamResolver = (identifier: string) => Resolved<StreamRequest>;

function parseObject(identifier: string): Resolved<Record<string, unknown>> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(identifier);
  } catch {
    return { ok: false, error: "invalid identifier" };
  }
  if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) {
    return { ok: false, error: "invalid identifier" };
  }
  return { ok: true, value: parsed as Record<string, unknown> };
}

/**
 * A string field as Go's json.Unmarshal fills a string struct field: absent or null is "", any
 * other non-string type is an error (which rejects the subscription).
 */
function stringField(obj: Record<string, unknown>, key: string): string | undefined {
  const v = obj[key];
  if (v === undefined || v === null) return "";
  return typeof v === "string" ? v : undefined;
}

function request(streamName: string, signedStreamName: string, whisper = false, presence = false) {
  return { ok: true as const, value: { streamName, signedStreamName, whisper, presence } };
}

export interface PubsubOptions {
  /** Accept unsigned `stream_name` (`--public_streams`). */
  publicStreams: boolean;
  /** Whispers on signed streams (`--streams_whisper`); public streams always allow them. */
  whisper: boolean;
  /** Presence on signed streams (`--streams_presence`); public streams always allow it. */
  presence: boolean;
}

/** `$pubsub`: `signed_stream_name`, or `stream_name` when public streams are allowed. */
export function pubsubResolver(opts: PubsubOptions): StreamResolver {
  return (identifier) => {
    const obj = parseObject(identifier);
    if (!obj.ok) return obj;
    const name = stringField(obj.value, "stream_name");
    const signed = stringField(obj.value, "signed_stream_name");
    if (name === undefined || signed === undefined) return { ok: false, error: "invalid identifier" };
    const isPublic = name !== "" && signed === "";
    if (isPublic && !opts.publicStreams) return { ok: false, error: "public streams are not allowed" };
    return request(name, signed, opts.whisper || isPublic, opts.presence || isPublic);
  };
}

/** `Turbo::StreamsChannel`: the name turbo-rails signs into `signed_stream_name`. */
export const turboResolver: StreamResolver = (identifier) => {
  const obj = parseObject(identifier);
  if (!obj.ok) return obj;
  const signed = stringField(obj.value, "signed_stream_name");
  if (signed === undefined) return { ok: false, error: "invalid identifier" };
  return request("", signed);
};

/** `CableReady::Stream`: CableReady puts the signed name into `identifier`. */
export const cableReadyResolver: StreamResolver = (identifier) => {
  const obj = parseObject(identifier);
  if (!obj.ok) return obj;
  const signed = stringField(obj.value, "identifier");
  if (signed === undefined) return { ok: false, error: "invalid identifier" };
  return request("", signed);
};

export interface VerifiedStream {
  stream: string;
  request: StreamRequest;
}

/** Streams whose shared istate each cache keeps (see streamState). */
const STATE_CACHE_LIMIT = 10_000;

/** Answers subscriptions of one channel locally; never throws on client input. */
export class StreamChannelController implements Controller {
  private readonly verifier: MessageVerifier;
  private readonly whisperStates = new Map<string, Readonly<Record<string, string>>>();
  private readonly presenceStates = new Map<string, Readonly<Record<string, string>>>();
  private readonly bothStates = new Map<string, Readonly<Record<string, string>>>();

  constructor(
    key: string,
    private readonly resolve: StreamResolver,
  ) {
    this.verifier = new MessageVerifier(key);
  }

  /** Resolves and verifies an identifier to the stream it may subscribe to. */
  verifiedStream(identifier: string): Resolved<VerifiedStream> {
    const req = this.resolve(identifier);
    if (!req.ok) return req;
    const { streamName, signedStreamName } = req.value;
    if (streamName === "" && signedStreamName === "") {
      return { ok: false, error: "malformed identifier: no stream name or signed stream" };
    }
    if (signedStreamName === "") return { ok: true, value: { stream: streamName, request: req.value } };
    const verified = this.verifier.verified(signedStreamName);
    if (!verified.ok) return { ok: false, error: `verification failed: ${verified.error}` };
    if (typeof verified.value !== "string") {
      return { ok: false, error: "verification failed: stream name is not a string" };
    }
    return { ok: true, value: { stream: verified.value, request: req.value } };
  }

  async authenticate(): Promise<ConnectResult | null> {
    return null;
  }

  async subscribe({ identifier }: ChannelContext): Promise<CommandResult> {
    const res = this.verifiedStream(identifier);
    if (!res.ok) {
      return { status: "failure", transmissions: [rejectMessage(identifier)], errorMsg: res.error };
    }
    const { stream, request: req } = res.value;
    const istate = this.streamState(stream, req.whisper === true, req.presence === true);
    return {
      status: "success",
      transmissions: [confirmMessage(identifier)],
      streams: [stream],
      // A stream subscription needs no Disconnect call (--disconnect_mode=auto skips it).
      disconnectInterest: -1,
      istate,
    };
  }

  /**
   * The subscription's istate naming its whisper / presence stream, one frozen object per stream
   * shared by every subscriber (the node stores a controller's istate as it is): each session had
   * its own two-key object and two strings, ~100 B per connection in public mode (bun:jsc heap
   * snapshot at 2,000 connections, 2026-12-03).
   */
  private streamState(
    stream: string,
    whisper: boolean,
    presence: boolean,
  ): Record<string, string> | undefined {
    if (!whisper && !presence) return undefined;
    const cache = whisper ? (presence ? this.bothStates : this.whisperStates) : this.presenceStates;
    let state = cache.get(stream);
    if (state === undefined) {
      const fresh: Record<string, string> = {};
      if (whisper) fresh[WHISPER_STREAM_STATE] = stream;
      if (presence) fresh[PRESENCE_STREAM_STATE] = stream;
      state = Object.freeze(fresh);
      // bounded: a server with more live streams than this only shares less
      if (cache.size >= STATE_CACHE_LIMIT) cache.clear();
      cache.set(stream, state);
    }
    return state;
  }

  async unsubscribe(): Promise<CommandResult> {
    return { status: "success", transmissions: [], streams: [], stopAllStreams: true };
  }

  async perform(): Promise<CommandResult | null> {
    return null;
  }

  async disconnect(): Promise<void> {}
}

export interface StreamsOptions extends Partial<PubsubOptions> {
  /** Key for `signed_stream_name` (`--streams_secret`); "" rejects every signed name. */
  secret?: string;
}

/** The `$pubsub` channel; defaults as anycable-go: no public streams, no whispers, presence on. */
export class StreamsController extends StreamChannelController {
  constructor(opts: StreamsOptions = {}) {
    super(
      opts.secret ?? "",
      pubsubResolver({
        publicStreams: opts.publicStreams ?? false,
        whisper: opts.whisper ?? false,
        presence: opts.presence ?? true,
      }),
    );
  }
}

/** `Turbo::StreamsChannel` with its key (`--turbo_streams_secret`, else the streams secret). */
export class TurboStreamsController extends StreamChannelController {
  constructor(key: string) {
    super(key, turboResolver);
  }
}

/** `CableReady::Stream` with its key (`--cable_ready_secret`, else the streams secret). */
export class CableReadyController extends StreamChannelController {
  constructor(key: string) {
    super(key, cableReadyResolver);
  }
}
