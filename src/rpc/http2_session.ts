// One HTTP/2 client connection as the gRPC transport uses it: connects once, hands out streams,
// pings only while calls are in flight, keeps the process alive only while it has work, and says
// once when it can take no new streams (GOAWAY received, closed, failed) so its owner can replace
// it. Streams already open on a draining session finish (or fail) on their own.
import {
  type ClientHttp2Session,
  type ClientHttp2Stream,
  connect,
  constants,
  type OutgoingHttpHeaders,
  type SecureClientSessionOptions,
} from "node:http2";

export interface Http2SessionOptions {
  /** `http://host:port` or `https://host:port`. */
  url: string;
  /** node:tls options (ca, rejectUnauthorized, servername) for https. */
  connectOptions?: SecureClientSessionOptions;
  /** Keepalive: ping after this long without a response while streams are open (0: never). */
  pingIntervalMs: number;
  /** A ping not answered within this time kills the connection. */
  pingTimeoutMs: number;
  /** A connection not established within this time fails. */
  connectTimeoutMs: number;
}

export type SessionState = "connecting" | "ready" | "draining" | "closed";

/** Called once a session's TCP/TLS/HTTP2 handshake finished (no error) or failed. */
type ReadyWaiter = (err: Error | undefined) => void;

const TOO_MANY_PINGS = "too_many_pings";

export class Http2Session {
  state: SessionState = "connecting";
  /** Why the session takes no new streams (set once it is draining or closed). */
  reason: Error | undefined;
  /** Streams in flight (counted by the caller through `opened` / `finished`). */
  streams = 0;
  /** Set when a response arrived since the last keepalive tick. */
  active = false;
  /** Calls handed this session and calls done with it (kept by GrpcChannel to retire it). */
  assigned = 0;
  released = 0;
  /** Handed all the calls it may take: up, but no longer taking new calls. */
  retired = false;
  private readonly conn: ClientHttp2Session;
  private waiters: ReadyWaiter[] = [];
  private pingTimer: ReturnType<typeof setInterval> | undefined;
  private pingDeadline: ReturnType<typeof setTimeout> | undefined;
  private connectTimer: ReturnType<typeof setTimeout> | undefined;
  private pingIntervalMs: number;

  /**
   * `onGone` runs once, when the session stops taking new streams; `onClosed` once, when the
   * connection is gone.
   */
  constructor(
    private readonly opts: Http2SessionOptions,
    private readonly onGone: (s: Http2Session) => void,
    private readonly onClosed: (s: Http2Session) => void,
  ) {
    this.pingIntervalMs = opts.pingIntervalMs;
    const conn = connect(opts.url, opts.connectOptions);
    this.conn = conn;
    conn.on("connect", () => this.onConnect());
    conn.on("error", (err: Error) => this.fail(err));
    conn.on("close", () => this.fail(this.reason ?? new Error("connection closed")));
    conn.on("goaway", (code: number, _last: number, data?: Buffer) => this.onGoaway(code, data));
    if (opts.connectTimeoutMs > 0) {
      this.connectTimer = setTimeout(() => {
        if (this.state === "connecting") this.destroy(new Error("connection timed out"));
      }, opts.connectTimeoutMs);
      unref(this.connectTimer);
    }
  }

  /** Runs `cb` once the session can take streams, or with the error that ended it. */
  whenReady(cb: ReadyWaiter): void {
    if (this.state === "ready") cb(undefined);
    else if (this.state === "connecting") this.waiters.push(cb);
    else cb(this.reason ?? new Error("connection closed"));
  }

  /** Opens a stream (the session must be ready); throws what node:http2 throws. */
  request(headers: OutgoingHttpHeaders): ClientHttp2Stream {
    const stream = this.conn.request(headers);
    if (++this.streams === 1) this.busy();
    return stream;
  }

  /** A stream opened through `request` finished (exactly once per stream). */
  finished(): void {
    if (--this.streams === 0) {
      this.idle();
      if (this.state === "draining") this.conn.close();
    }
  }

  /** Whether the connection is up and takes new calls (for `grpc_active_conn_num`). */
  get open(): boolean {
    return this.state === "ready" && !this.retired && !this.conn.destroyed && !this.conn.closed;
  }

  /** Whether the underlying connection is gone (a stream that just closed died with it). */
  get broken(): boolean {
    return this.state === "closed" || this.conn.destroyed || this.conn.closed;
  }

  /** Takes no new streams; closes once those in flight finished. */
  drain(reason: Error): void {
    if (this.state === "closed" || this.state === "draining") return;
    this.state = "draining";
    this.reason = reason;
    this.flushWaiters(reason);
    this.onGone(this);
    if (this.streams === 0) this.conn.close();
  }

  /** Closes the connection now; streams in flight fail. */
  destroy(reason?: Error): void {
    if (reason && !this.reason) this.reason = reason;
    if (!this.conn.destroyed) this.conn.destroy(undefined, constants.NGHTTP2_CANCEL);
    this.fail(this.reason ?? new Error("connection closed"));
  }

  private onConnect(): void {
    if (this.connectTimer) clearTimeout(this.connectTimer);
    if (this.state !== "connecting") return;
    this.state = "ready";
    if (this.streams === 0) this.conn.unref();
    this.flushWaiters(undefined);
  }

  private onGoaway(code: number, data?: Buffer): void {
    // grpc servers answer pings that come too often with ENHANCE_YOUR_CALM "too_many_pings": like
    // grpc-go, ping half as often on the next connection
    if (code === constants.NGHTTP2_ENHANCE_YOUR_CALM && data?.toString("latin1") === TOO_MANY_PINGS) {
      this.opts.pingIntervalMs = this.pingIntervalMs * 2;
    }
    this.drain(new Error(`received GOAWAY (code ${code})`));
  }

  private fail(err: Error): void {
    if (this.connectTimer) clearTimeout(this.connectTimer);
    if (this.state === "closed") return;
    const wasListed = this.state !== "draining";
    this.state = "closed";
    this.reason ??= err;
    this.stopPing();
    this.flushWaiters(this.reason);
    if (wasListed) this.onGone(this);
    this.onClosed(this);
  }

  private flushWaiters(err: Error | undefined): void {
    const waiters = this.waiters;
    if (waiters.length === 0) return;
    this.waiters = [];
    for (const w of waiters) w(err);
  }

  private busy(): void {
    this.conn.ref();
    // the first ping comes no sooner than a whole interval after calls started
    this.active = true;
    // one timer for the session's life, not one per busy period: a caller making one call at a
    // time goes busy and idle with every call
    if (this.pingIntervalMs > 0 && this.pingTimer === undefined) {
      this.pingTimer = setInterval(() => this.keepalive(), this.pingIntervalMs);
      unref(this.pingTimer);
    }
  }

  private idle(): void {
    if (!this.conn.destroyed) this.conn.unref();
  }

  private stopPing(): void {
    if (this.pingTimer !== undefined) clearInterval(this.pingTimer);
    if (this.pingDeadline !== undefined) clearTimeout(this.pingDeadline);
    this.pingTimer = this.pingDeadline = undefined;
  }

  /**
   * grpc-go's keepalive: ping only when calls are in flight and nothing arrived for a whole
   * interval (idle connections are never pinged: grpc servers punish that with GOAWAY).
   */
  private keepalive(): void {
    if (this.streams === 0 || this.active) {
      this.active = false;
      return;
    }
    if (this.pingDeadline !== undefined || this.conn.destroyed) return;
    this.pingDeadline = setTimeout(
      () => this.destroy(new Error("keepalive ping failed to receive ACK within timeout")),
      this.opts.pingTimeoutMs,
    );
    unref(this.pingDeadline);
    try {
      this.conn.ping((err) => {
        if (this.pingDeadline !== undefined) clearTimeout(this.pingDeadline);
        this.pingDeadline = undefined;
        if (err && !this.conn.destroyed) this.destroy(err);
      });
    } catch (err) {
      if (this.pingDeadline !== undefined) clearTimeout(this.pingDeadline);
      this.pingDeadline = undefined;
      this.destroy(err as Error);
    }
  }
}

function unref(timer: unknown): void {
  (timer as { unref?: () => void }).unref?.();
}
