// Unary gRPC over node:http2, just what AnyCable's three RPC methods need: one length-prefixed
// protobuf message each way, status from the trailers (or from the headers of a trailers-only
// response), deadlines, message size limits. Failures are ConnectError values with grpc-go's codes
// and, where it matters, grpc-go's messages, so the retry policy sees what anycable-go would see.
//
// It replaces @connectrpc/connect-node, whose generic streaming machinery (async iterables,
// header objects, sentinels per call) cost about twice the CPU per call on Bun.

import {
  type ClientHttp2Stream,
  constants,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
  type SecureClientSessionOptions,
} from "node:http2";
import { type DescMessage, fromBinary, type MessageShape, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { VERSION } from "../version.ts";
import { Http2Session } from "./http2_session.ts";

/** grpc-go's default receive limit. */
export const DEFAULT_MAX_RECV = 4 * 1024 * 1024;
/** grpc-go's default send limit (math.MaxInt32). */
export const DEFAULT_MAX_SEND = 0x7fffffff;
/** anycable-go's keepalive interval and grpc-go's default keepalive timeout. */
const PING_INTERVAL_MS = 10_000;
const PING_TIMEOUT_MS = 20_000;
/** grpc-go's minimum connect timeout. */
const CONNECT_TIMEOUT_MS = 20_000;

const CONTENT_TYPE = "application/grpc+proto";
const USER_AGENT = `grpc-anycable-ts/${VERSION}`;

/** What `unary` needs of a generated method descriptor (`RPC.method.connect`, …). */
export interface UnaryMethod<I extends DescMessage, O extends DescMessage> {
  readonly name: string;
  readonly parent: { readonly typeName: string };
  readonly input: I;
  readonly output: O;
}

export interface GrpcChannelOptions {
  /** `host:port` to connect to (IPv6 bracketed). */
  address: string;
  /** node:tls options when TLS is on. */
  tls?: { ca?: string; rejectUnauthorized: boolean };
  /** The name to verify and send as SNI and `:authority` when `address` is a resolved IP. */
  serverName?: string;
  /** Receive / send limits in bytes (0: grpc-go's defaults). */
  maxRecvSize?: number;
  maxSendSize?: number;
  /** A fresh HTTP/2 connection for every call, closed afterwards (see GrpcRpcOptions). */
  sessionPerCall?: boolean;
  /**
   * Retire a connection once it was handed this many calls: it takes no more and is closed by us
   * once they finished (0: no limit; see GrpcRpcOptions.maxStreamsPerSession).
   */
  maxStreamsPerSession?: number;
  pingIntervalMs?: number;
  pingTimeoutMs?: number;
  connectTimeoutMs?: number;
}

export interface UnaryOptions {
  /** Deadline in ms from now (undefined: none). */
  timeoutMs?: number;
  /** Aborting cancels the call (Canceled). */
  signal?: AbortSignal;
}

/** A gRPC channel to one address: one HTTP/2 session at a time, replaced when it goes away. */
export class GrpcChannel {
  readonly maxRecv: number;
  readonly maxSend: number;
  private readonly url: string;
  private readonly authority: string | undefined;
  private readonly sessionOptions: {
    url: string;
    connectOptions?: SecureClientSessionOptions;
    pingIntervalMs: number;
    pingTimeoutMs: number;
    connectTimeoutMs: number;
  };
  private current: Http2Session | undefined;
  /** Every session not yet closed (the current one and those draining or per call). */
  private readonly sessions = new Set<Http2Session>();
  private closed = false;
  private readonly paths = new Map<string, string>();
  private readonly maxStreams: number;

  constructor(private readonly opts: GrpcChannelOptions) {
    this.maxRecv = opts.maxRecvSize && opts.maxRecvSize > 0 ? opts.maxRecvSize : DEFAULT_MAX_RECV;
    this.maxSend = opts.maxSendSize && opts.maxSendSize > 0 ? opts.maxSendSize : DEFAULT_MAX_SEND;
    this.maxStreams =
      opts.maxStreamsPerSession && opts.maxStreamsPerSession > 0 ? Math.floor(opts.maxStreamsPerSession) : 0;
    this.url = `${opts.tls ? "https" : "http"}://${opts.address}`;
    let connectOptions: SecureClientSessionOptions | undefined;
    if (opts.tls) {
      connectOptions = { ...opts.tls };
      // connecting to a resolved IP must still verify (and send SNI for) the name asked for
      if (opts.serverName && !isIpLiteral(opts.serverName)) connectOptions.servername = opts.serverName;
    }
    if (opts.serverName) {
      const port = /:(\d+)$/.exec(opts.address)?.[1];
      const host = opts.serverName.includes(":") ? `[${opts.serverName}]` : opts.serverName;
      this.authority = port ? `${host}:${port}` : host;
    }
    this.sessionOptions = {
      url: this.url,
      connectOptions,
      pingIntervalMs: opts.pingIntervalMs ?? PING_INTERVAL_MS,
      pingTimeoutMs: opts.pingTimeoutMs ?? PING_TIMEOUT_MS,
      connectTimeoutMs: opts.connectTimeoutMs ?? CONNECT_TIMEOUT_MS,
    };
  }

  /** HTTP/2 connections up and taking new calls (one that received a GOAWAY is on its way out). */
  openConnections(): number {
    let n = 0;
    for (const s of this.sessions) if (s.open) n++;
    return n;
  }

  unary<I extends DescMessage, O extends DescMessage>(
    method: UnaryMethod<I, O>,
    request: MessageShape<I>,
    metadata: Record<string, string>,
    options: UnaryOptions = {},
  ): Promise<MessageShape<O>> {
    if (this.closed)
      return Promise.reject(new ConnectError("grpc: the client connection is closing", Code.Canceled));
    const { timeoutMs, signal } = options;
    if (signal?.aborted) return Promise.reject(new ConnectError("context canceled", Code.Canceled));
    let timeout: string | undefined;
    if (timeoutMs !== undefined) {
      if (timeoutMs <= 0) {
        return Promise.reject(new ConnectError("context deadline exceeded", Code.DeadlineExceeded));
      }
      timeout = encodeTimeout(timeoutMs);
    }
    let body: Uint8Array;
    try {
      body = toBinary(method.input, request);
    } catch (err) {
      return Promise.reject(
        new ConnectError(`grpc: error while marshaling: ${(err as Error).message}`, Code.Internal),
      );
    }
    if (body.length > this.maxSend) {
      return Promise.reject(
        new ConnectError(
          `grpc: trying to send message larger than max (${body.length} vs. ${this.maxSend})`,
          Code.ResourceExhausted,
        ),
      );
    }
    const frame = Buffer.allocUnsafe(5 + body.length);
    frame[0] = 0;
    frame.writeUInt32BE(body.length, 1);
    frame.set(body, 5);

    let path = this.paths.get(method.name);
    if (path === undefined) {
      path = `/${method.parent.typeName}/${method.name}`;
      this.paths.set(method.name, path);
    }
    const headers: OutgoingHttpHeaders = {
      ":method": "POST",
      ":path": path,
      "content-type": CONTENT_TYPE,
      te: "trailers",
      "user-agent": USER_AGENT,
    };
    if (this.authority) headers[":authority"] = this.authority;
    if (timeout !== undefined) headers["grpc-timeout"] = timeout;
    for (const key in metadata) headers[key] = metadata[key];

    return new Promise<MessageShape<O>>((resolve, reject) => {
      const call = new UnaryCall(
        this,
        method.output,
        frame,
        headers,
        resolve as (v: unknown) => void,
        reject,
        signal,
      );
      if (timeoutMs !== undefined) call.timer = setTimeout(onDeadline, timeoutMs, call);
      let session: Http2Session;
      try {
        session = this.session();
      } catch (err) {
        call.fail(transportError(err as Error));
        return;
      }
      call.start(session);
    });
  }

  /** Closes every connection; calls in flight fail. */
  close(): void {
    this.closed = true;
    this.current = undefined;
    for (const s of [...this.sessions]) s.destroy(new Error("grpc: the client connection is closing"));
    this.sessions.clear();
  }

  /** The session for a new call: the current one, or a fresh one. */
  session(): Http2Session {
    if (this.opts.sessionPerCall) return this.newSession();
    const s = this.current;
    if (s !== undefined && (s.state === "ready" || s.state === "connecting")) {
      if (this.maxStreams === 0) return s;
      if (s.assigned < this.maxStreams) {
        s.assigned++;
        return s;
      }
      // retired: it takes no more calls and closes once those it was handed are released
      s.retired = true;
      this.current = undefined;
    }
    const fresh = this.newSession();
    this.current = fresh;
    if (this.maxStreams > 0) fresh.assigned++;
    return fresh;
  }

  /** The call handed `s` by `session()` is over (exactly once per hand-out). */
  release(s: Http2Session): void {
    if (this.opts.sessionPerCall) {
      s.destroy();
      return;
    }
    if (this.maxStreams === 0) return;
    s.released++;
    // closed from our side (GOAWAY sent by us), never left around with a pile of finished streams
    if (s.assigned >= this.maxStreams && s.released >= s.assigned) s.drain(new Error("connection retired"));
  }

  private newSession(): Http2Session {
    const s = new Http2Session(
      this.sessionOptions,
      (gone) => {
        if (this.current === gone) this.current = undefined;
      },
      (closed) => this.sessions.delete(closed),
    );
    this.sessions.add(s);
    return s;
  }
}

/** What node:http2 throws from `request()` when the session can take no more streams. */
const SESSION_GONE = new Set([
  "ERR_HTTP2_GOAWAY_SESSION",
  "ERR_HTTP2_INVALID_SESSION",
  "ERR_HTTP2_OUT_OF_STREAMS",
  "ERR_HTTP2_SESSION_ERROR",
]);

// One call's state, kept on its stream so the stream's listeners can be shared functions instead
// of six closures per call.
const CALL = Symbol("grpcCall");
type CallStream = ClientHttp2Stream & { [CALL]?: UnaryCall };

class UnaryCall {
  timer: ReturnType<typeof setTimeout> | undefined;
  stream: CallStream | undefined;
  session: Http2Session | undefined;
  settled = false;
  headers: IncomingHttpHeaders | undefined;
  trailers: IncomingHttpHeaders | undefined;
  chunks: Buffer[] = [];
  received = 0;
  /** Size of the whole response frame (prefix + message) once its prefix was read; -1 before. */
  expected = -1;
  streamError: Error | undefined;
  onAbort: (() => void) | undefined;

  constructor(
    readonly channel: GrpcChannel,
    readonly output: DescMessage,
    readonly frame: Buffer,
    readonly requestHeaders: OutgoingHttpHeaders,
    readonly resolve: (v: unknown) => void,
    readonly reject: (e: ConnectError) => void,
    readonly signal: AbortSignal | undefined,
  ) {
    if (signal) {
      this.onAbort = () => this.cancel(new ConnectError("context canceled", Code.Canceled));
      signal.addEventListener("abort", this.onAbort);
    }
  }

  start(session: Http2Session, retried = false): void {
    this.session = session;
    if (session.state === "ready") {
      this.send(session, retried);
      return;
    }
    session.whenReady((err) => {
      if (this.settled) {
        this.channel.release(session);
        return;
      }
      if (err) this.fail(transportError(err));
      else this.send(session, retried);
    });
  }

  private send(session: Http2Session, retried: boolean): void {
    let stream: CallStream;
    try {
      stream = session.request(this.requestHeaders) as CallStream;
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (!session.broken && !SESSION_GONE.has(code ?? "")) {
        // e.g. a metadata value node:http2 refuses: grpc-go fails such a call with Internal
        this.fail(new ConnectError(`grpc: ${(err as Error).message}`, Code.Internal));
        return;
      }
      // the session went away between the check and the request (GOAWAY just arrived, stream ids
      // ran out): once more, on a fresh session
      session.drain(err as Error);
      this.channel.release(session);
      if (!retried) this.start(this.channel.session(), true);
      else this.fail(transportError(err as Error));
      return;
    }
    this.stream = stream;
    stream[CALL] = this;
    stream.on("response", onResponse);
    stream.on("data", onData);
    stream.on("trailers", onTrailers);
    stream.on("end", onEnd);
    stream.on("error", onError);
    stream.on("close", onClose);
    stream.end(this.frame);
  }

  /** Ends the call locally (deadline, abort, limit): resets the stream with CANCEL. */
  cancel(err: ConnectError): void {
    if (this.settled) return;
    this.fail(err);
  }

  succeed(value: unknown): void {
    if (this.settled) return;
    this.finish();
    this.resolve(value);
  }

  fail(err: ConnectError): void {
    if (this.settled) return;
    this.finish();
    const stream = this.stream;
    if (stream && !stream.closed && !stream.destroyed) {
      try {
        stream.close(constants.NGHTTP2_CANCEL);
      } catch {
        // already gone
      }
    }
    this.reject(err);
  }

  private finish(): void {
    this.settled = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.onAbort) this.signal?.removeEventListener("abort", this.onAbort);
    const session = this.session;
    if (session && this.stream) {
      session.active = true;
      session.finished();
    }
    if (session && (this.stream || session.state !== "connecting")) this.channel.release(session);
  }

  /** Checks the bytes received so far: the message prefix, the size limit, one message only. */
  consume(): void {
    if (this.expected < 0) {
      if (this.received < 5) return;
      const head = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.received);
      const flag = head[0]!;
      const length = head.readUInt32BE(1);
      if (flag !== 0) {
        this.fail(
          new ConnectError(
            flag === 1
              ? "grpc: compressed flag set with identity or empty encoding"
              : `grpc: received unexpected payload format ${flag}`,
            Code.Internal,
          ),
        );
        return;
      }
      const max = this.channel.maxRecv;
      if (length > max) {
        this.fail(
          new ConnectError(
            `grpc: received message larger than max (${length} vs. ${max})`,
            Code.ResourceExhausted,
          ),
        );
        return;
      }
      this.expected = 5 + length;
    }
    if (this.received > this.expected) {
      this.fail(
        new ConnectError(
          "cardinality violation: expected <EOF> for non server-streaming RPCs, but received another message",
          Code.Internal,
        ),
      );
    }
  }

  /** The stream ended: judge status, then the message. */
  complete(stream: ClientHttp2Stream): void {
    const headers = this.headers;
    let trailers = this.trailers;
    if (trailers === undefined) {
      // Bun and Deno end the streams of a connection that died (rstCode CANCEL) without an error
      const broken = this.session?.broken || (stream.rstCode ?? 0) !== constants.NGHTTP2_NO_ERROR;
      // headers that ended the stream without any data are a trailers-only response
      if (!broken && headers !== undefined && this.received === 0) trailers = headers;
      else if (headers?.["grpc-status"] !== undefined) trailers = headers;
      else {
        this.aborted(stream);
        return;
      }
    }
    const statusErr = statusFromTrailers(trailers);
    if (statusErr) {
      this.fail(statusErr);
      return;
    }
    if (this.expected < 0) {
      if (this.received > 0) {
        this.fail(new ConnectError("grpc: unexpected EOF in a message prefix", Code.Internal));
      } else {
        this.fail(
          new ConnectError(
            "cardinality violation: received no response message from non-server-streaming RPC",
            Code.Internal,
          ),
        );
      }
      return;
    }
    if (this.received < this.expected) {
      this.fail(new ConnectError("grpc: unexpected EOF in a message", Code.Internal));
      return;
    }
    const bytes =
      this.chunks.length === 1
        ? this.chunks[0]!.subarray(5)
        : Buffer.concat(this.chunks, this.received).subarray(5);
    let message: unknown;
    try {
      message = fromBinary(this.output, bytes);
    } catch (err) {
      this.fail(
        new ConnectError(
          `grpc: failed to unmarshal the received message: ${(err as Error).message}`,
          Code.Internal,
        ),
      );
      return;
    }
    this.succeed(message);
  }

  /** The stream closed without ending cleanly. */
  aborted(stream: ClientHttp2Stream): void {
    const session = this.session;
    if (session?.broken) {
      this.fail(transportError(session.reason ?? this.streamError ?? new Error("connection closed")));
      return;
    }
    const code = stream.rstCode;
    if (code !== undefined && code !== constants.NGHTTP2_NO_ERROR) {
      this.fail(rstError(code));
      return;
    }
    if (this.streamError) {
      this.fail(transportError(this.streamError));
      return;
    }
    this.fail(
      new ConnectError(
        this.headers
          ? "server closed the stream without sending trailers"
          : "stream terminated by RST_STREAM with error code: NO_ERROR",
        Code.Internal,
      ),
    );
  }
}

function onDeadline(call: UnaryCall): void {
  call.timer = undefined;
  call.cancel(new ConnectError("context deadline exceeded", Code.DeadlineExceeded));
}

function onResponse(this: CallStream, headers: IncomingHttpHeaders): void {
  const call = this[CALL];
  if (!call || call.settled) return;
  call.headers = headers;
  const status = Number(headers[":status"]);
  const contentType = headers["content-type"];
  const grpc = typeof contentType === "string" && isGrpcContentType(contentType);
  if (status !== 200 || !grpc) {
    // grpc-go: a non-200 status or a foreign content type decides the code, whatever grpc-status says
    const errs: string[] = [];
    let code = Code.Internal;
    if (headers[":status"] !== undefined) {
      code = HTTP_STATUS_CODES[status] ?? Code.Unknown;
      if (status !== 200) errs.push(`unexpected HTTP status code received from server: ${status}`);
    }
    if (!grpc) {
      errs.push(
        contentType === undefined
          ? "malformed header: missing HTTP content-type"
          : `transport: received unexpected content-type "${contentType}"`,
      );
    }
    call.fail(new ConnectError(errs.join("; "), code));
    return;
  }
  if (call.received > 0) call.consume();
}

function onData(this: CallStream, chunk: Buffer): void {
  const call = this[CALL];
  if (!call || call.settled) return;
  call.chunks.push(chunk);
  call.received += chunk.length;
  // Deno emits DATA that arrived with the headers before 'response': judge it after them
  if (call.headers !== undefined) call.consume();
}

function onTrailers(this: CallStream, trailers: IncomingHttpHeaders): void {
  const call = this[CALL];
  if (call) call.trailers = trailers;
}

function onEnd(this: CallStream): void {
  const call = this[CALL];
  if (call && !call.settled) call.complete(this);
}

function onError(this: CallStream, err: Error): void {
  const call = this[CALL];
  if (call) call.streamError ??= err;
}

function onClose(this: CallStream): void {
  const call = this[CALL];
  if (!call) return;
  this[CALL] = undefined;
  if (!call.settled) call.aborted(this);
}

/** grpc-go's mapping of HTTP statuses of non-gRPC responses. */
const HTTP_STATUS_CODES: Record<number, Code> = {
  400: Code.Internal,
  401: Code.Unauthenticated,
  403: Code.PermissionDenied,
  404: Code.Unimplemented,
  429: Code.Unavailable,
  502: Code.Unavailable,
  503: Code.Unavailable,
  504: Code.Unavailable,
};

/** grpc-go's mapping of RST_STREAM codes. */
const RST_CODES: Record<number, [string, Code]> = {
  [constants.NGHTTP2_PROTOCOL_ERROR]: ["PROTOCOL_ERROR", Code.Internal],
  [constants.NGHTTP2_INTERNAL_ERROR]: ["INTERNAL_ERROR", Code.Internal],
  [constants.NGHTTP2_FLOW_CONTROL_ERROR]: ["FLOW_CONTROL_ERROR", Code.ResourceExhausted],
  [constants.NGHTTP2_SETTINGS_TIMEOUT]: ["SETTINGS_TIMEOUT", Code.Internal],
  [constants.NGHTTP2_STREAM_CLOSED]: ["STREAM_CLOSED", Code.Internal],
  [constants.NGHTTP2_FRAME_SIZE_ERROR]: ["FRAME_SIZE_ERROR", Code.Internal],
  [constants.NGHTTP2_REFUSED_STREAM]: ["REFUSED_STREAM", Code.Unavailable],
  [constants.NGHTTP2_CANCEL]: ["CANCEL", Code.Canceled],
  [constants.NGHTTP2_COMPRESSION_ERROR]: ["COMPRESSION_ERROR", Code.Internal],
  [constants.NGHTTP2_CONNECT_ERROR]: ["CONNECT_ERROR", Code.Internal],
  [constants.NGHTTP2_ENHANCE_YOUR_CALM]: ["ENHANCE_YOUR_CALM", Code.ResourceExhausted],
  [constants.NGHTTP2_INADEQUATE_SECURITY]: ["INADEQUATE_SECURITY", Code.PermissionDenied],
  [constants.NGHTTP2_HTTP_1_1_REQUIRED]: ["HTTP_1_1_REQUIRED", Code.Internal],
};

function rstError(code: number): ConnectError {
  const [name, grpcCode] = RST_CODES[code] ?? [`0x${code.toString(16)}`, Code.Internal];
  return new ConnectError(`stream terminated by RST_STREAM with error code: ${name}`, grpcCode);
}

/** A connection-level failure: Unavailable, as grpc-go reports every transport error. */
function transportError(err: Error): ConnectError {
  const code = (err as { code?: string }).code;
  const detail = code && !err.message.includes(code) ? `${code}: ${err.message}` : err.message;
  return new ConnectError(`connection error: ${detail}`, Code.Unavailable, undefined, undefined, err);
}

/** The call's status from trailers (or trailers-only headers); undefined for OK. */
export function statusFromTrailers(trailers: IncomingHttpHeaders): ConnectError | undefined {
  const raw = trailers["grpc-status"];
  const message = trailers["grpc-message"];
  const text = typeof message === "string" ? decodeGrpcMessage(message) : "";
  if (raw === undefined) return new ConnectError(text, Code.Unknown);
  const value = Array.isArray(raw) ? raw[0]! : String(raw);
  if (!/^\d+$/.test(value))
    return new ConnectError(`transport: malformed grpc-status: ${value}`, Code.Internal);
  const code = Number(value);
  if (code === 0) return undefined;
  return new ConnectError(text, code >= 1 && code <= 16 ? (code as Code) : Code.Unknown);
}

/** `application/grpc`, optionally followed by `+format` or `;params`. */
function isGrpcContentType(value: string): boolean {
  if (!value.startsWith("application/grpc")) return false;
  const next = value.charCodeAt(16);
  return value.length === 16 || next === 0x2b /* + */ || next === 0x3b /* ; */;
}

/** grpc-message is percent-encoded UTF-8; malformed escapes stay as they are (grpc-go). */
export function decodeGrpcMessage(raw: string): string {
  if (!raw.includes("%")) return raw;
  const bytes: number[] = [];
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c === 0x25 && i + 2 < raw.length && isHex(raw.charCodeAt(i + 1)) && isHex(raw.charCodeAt(i + 2))) {
      bytes.push(Number.parseInt(raw.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      bytes.push(c & 0xff);
    }
  }
  return new TextDecoder().decode(Uint8Array.from(bytes));
}

function isHex(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
}

/** grpc-timeout: at most 8 digits and a unit. */
export function encodeTimeout(ms: number): string {
  const whole = Math.ceil(ms);
  if (whole <= 99_999_999) return `${whole}m`;
  const s = Math.ceil(whole / 1000);
  if (s <= 99_999_999) return `${s}S`;
  const m = Math.ceil(s / 60);
  if (m <= 99_999_999) return `${m}M`;
  return `${Math.min(Math.ceil(m / 60), 99_999_999)}H`;
}

function isIpLiteral(host: string): boolean {
  return /^[\d.]+$/.test(host) || host.includes(":");
}
