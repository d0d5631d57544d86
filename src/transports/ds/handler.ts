// The Durable Streams read API (--ds at --ds_path), as anycable-go's ds/handler.go serves it: the
// stream is the path below --ds_path; a request is authenticated like a WebSocket (or not, with
// --ds_skip_auth), its stream authorized as a `$pubsub` subscription (a signed name in ?signed= /
// X-Signed, or a public name with --public_streams), and answered from the broker's history:
// HEAD tells the tail offset, GET returns the messages after `offset` (catch-up), waits for the
// next one (`live=long-poll`, up to --ds_poll_interval) or streams them as SSE (`live=sse`, for up
// to --ds_sse_ttl). Each request is a node session that lives as long as the request.

import type { StreamMessage } from "../../broadcast/publication.ts";
import type { Broker } from "../../broker/broker.ts";
import { isHistoryError } from "../../broker/broker.ts";
import type { Logger } from "../../log/logger.ts";
import type { Metrics } from "../../metrics/registry.ts";
import type { Node } from "../../node/node.ts";
import type { Session } from "../../node/session.ts";
import { CloseCode, type ConnectionRequest } from "../../node/socket.ts";
import type { StreamChannelController } from "../../streams/controller.ts";
import { VERSION_STRING } from "../../version.ts";
import type { CorsHeaders } from "../cors.ts";
import type { RequestGate } from "../request.ts";
import { SseConnection, type SseConnectionEvents } from "../sse/connection.ts";
import {
  catchUpEtag,
  DS_ENCODER,
  etagMatches,
  historyItems,
  jsonBatch,
  sseControlEvent,
  sseDataEvent,
} from "./encoder.ts";
import type { Options } from "./options.ts";
import { type DsParams, dsParams, encodeOffset, NOW_OFFSET, nextCursor, START_OFFSET } from "./params.ts";
import { DsPollSocket, DsSseSocket } from "./sockets.ts";

const OFFSET_HEADER = "Stream-Next-Offset";
const CURSOR_HEADER = "Stream-Cursor";
const UP_TO_DATE_HEADER = "Stream-Up-To-Date";

/** CORS for DS answers: reads by GET / HEAD with the auth headers, and the DS headers readable. */
const DS_CORS: Readonly<Record<string, string>> = {
  "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
  "Access-Control-Expose-Headers": `${OFFSET_HEADER}, ${CURSOR_HEADER}, ${UP_TO_DATE_HEADER}, ETag`,
};

/**
 * On every DS answer, errors and HEAD included (DS's browser security headers; anycable-go sends
 * nosniff on GET answers only, and no Cross-Origin-Resource-Policy): the reads are meant to be
 * made cross-origin, as the CORS headers allow.
 */
const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "X-Content-Type-Options": "nosniff",
  "Cross-Origin-Resource-Policy": "cross-origin",
};

const JSON_HEADERS: Readonly<Record<string, string>> = {
  "Content-Type": "application/json",
  // anycable-go's choice (it cannot tell private streams from public ones either)
  "Cache-Control": "public, max-age=60, stale-while-revalidate=300",
};

const SSE_HEADERS: Readonly<Record<string, string>> = {
  Connection: "keep-alive",
  "Content-Type": "text/event-stream",
  "Cache-Control": "private, no-cache, no-store, must-revalidate, max-age=0",
  "X-Accel-Buffering": "no",
};

export interface DsDeps {
  node: Node;
  broker: Broker;
  gate: RequestGate;
  cors: CorsHeaders;
  /** Authorizes the stream of a request as a `$pubsub` subscription would be. */
  streams: StreamChannelController;
  /** The channel name DS subscriptions are made on (--streams_pubsub_channel). */
  pubsubChannel: string;
  /** JWT header name (x-<param>) to allow in CORS, "" when JWT is off. */
  jwtHeader: string;
  /** A closed SSE stream the client has not read to the end is cut after this (--ws_write_timeout). */
  closeTimeoutMs: number;
  metrics: Metrics;
  logger: Logger;
}

interface Waiting {
  session: Session;
  deadline: number;
  socket: DsPollSocket;
}

interface Streaming {
  session: Session;
  deadline: number;
}

export class DsTransport implements SseConnectionEvents {
  private readonly polls = new Set<Waiting>();
  private readonly streamsOpen = new Map<SseConnection, Streaming>();
  /** Closed SSE streams whose last events the runtime has not taken yet. */
  private readonly ending = new Set<SseConnection>();
  private readonly log: Logger;
  private readonly allowHeaders: string;
  private readonly requests;
  private readonly pollRequests;
  private readonly sseRequests;

  constructor(
    private readonly opts: Options,
    private readonly deps: DsDeps,
  ) {
    this.log = deps.logger.with({ context: "ds" });
    const m = deps.metrics;
    this.requests = m.counter("ds_requests_total", "The total number of durable streams HEAD/GET requests");
    this.pollRequests = m.counter(
      "ds_poll_requests_total",
      "The total number of durable streams long-poll requests",
    );
    this.sseRequests = m.counter("ds_sse_requests_total", "The total number of durable streams SSE requests");
    const polls = m.gauge("ds_poll_clients_num", "The number of active durable streams long-poll clients");
    const sse = m.gauge("ds_sse_clients_num", "The number of active durable streams SSE clients");
    m.onCollect(() => {
      polls.set(this.polls.size);
      sse.set(this.streamsOpen.size);
    });
    this.allowHeaders = ["X-Signed", "If-None-Match", deps.jwtHeader].filter((h) => h !== "").join(", ");
  }

  /** Whether a request path is below the mount path. */
  matches(pathname: string): boolean {
    const base = this.opts.path;
    return pathname === base || pathname.startsWith(`${base}/`);
  }

  readonly handle = async (req: Request, url: URL, remote: string): Promise<Response> => {
    const cors = this.corsFor(req);
    if (req.method === "OPTIONS") return new Response(null, { status: 200, headers: cors });
    const base = { ...cors, ...SECURITY_HEADERS, "X-AnyCable-Version": VERSION_STRING };
    const parsed = dsParams(url, this.opts.path, req.headers);
    if (!parsed.ok) {
      this.log.debug("invalid stream request", { error: parsed.error });
      return new Response(null, { status: 400, headers: base });
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      this.log.debug("non-read operations are not supported", { method: req.method });
      return new Response(null, { status: 405, headers: base });
    }
    const refusal = this.deps.gate.refuse(req, "allow");
    if (refusal) {
      for (const [k, v] of Object.entries(base)) refusal.headers.set(k, v);
      return refusal;
    }
    const p = parsed.value;
    const { sid, clientSid, headers: env } = this.deps.gate.identify(req, remote);
    const request: ConnectionRequest = {
      sid,
      url: req.url,
      headers: env,
      protocol: "",
      encoder: DS_ENCODER,
      oneWay: true,
    };
    if (clientSid) request.clientSid = true;
    if (this.opts.skipAuth) request.identifiers = `ds::${sid}`;
    const cursor = nextCursor(p.cursor, Date.now());
    const sse = req.method === "GET" && p.live === "sse";
    const conn = sse ? new SseConnection(this) : undefined;
    const socket = conn ? new DsSseSocket(conn, cursor) : new DsPollSocket();
    const session = this.deps.node.open(request, socket);
    if (conn) conn.session = session;
    // The client may go away while it waits (authentication, a long poll): the session goes with it.
    const abandon = () => {
      if (conn) return conn.cancel();
      (socket as DsPollSocket).expire();
      this.end(session);
    };
    req.signal.addEventListener("abort", abandon);
    try {
      const refused = await this.admit(session, p, socket instanceof DsPollSocket ? socket : undefined);
      if (refused) return new Response(null, { status: refused, headers: base });
      if (req.method === "HEAD") return await this.head(session, p, base);
      this.requests.inc();
      if (conn && socket instanceof DsSseSocket) return await this.stream(session, p, conn, socket, base);
      return await this.read(
        session,
        p,
        socket as DsPollSocket,
        cursor,
        base,
        req.headers.get("if-none-match"),
      );
    } finally {
      req.signal.removeEventListener("abort", abandon);
    }
  };

  /** Authentication and the stream's authorization: a status to refuse with, or undefined. */
  private async admit(
    session: Session,
    p: DsParams,
    poll: DsPollSocket | undefined,
  ): Promise<number | undefined> {
    const { node } = this.deps;
    await node.settled(session);
    if (session.state !== "connected") {
      const shutdown = poll ? poll.closeCode === CloseCode.goingAway : node.isShuttingDown;
      this.log.debug("unauthenticated", { sid: session.sid });
      this.end(session);
      return shutdown ? 503 : 401;
    }
    const verified = this.deps.streams.verifiedStream(this.identifier(p));
    // A signed name must name the stream of the path: its history is what the request reads
    // (anycable-go checks only that the signature is valid, then reads the path's stream).
    if (!verified.ok || verified.value.stream !== p.stream) {
      this.log.debug("unauthorized", {
        sid: session.sid,
        error: verified.ok ? "signed stream name does not match the path" : verified.error,
      });
      this.end(session);
      return 401;
    }
    return undefined;
  }

  private identifier(p: DsParams): string {
    const id: Record<string, string> = { channel: this.deps.pubsubChannel, stream_name: p.stream };
    if (p.signed !== "") id.signed_stream_name = p.signed;
    return JSON.stringify(id);
  }

  private async head(session: Session, p: DsParams, base: Record<string, string>): Promise<Response> {
    const tail = await this.tail(p.stream);
    this.end(session);
    if (tail === undefined) return new Response(null, { status: 500, headers: base });
    return new Response(null, {
      status: 200,
      headers: {
        ...base,
        "Content-Type": "application/json",
        "Cache-Control": "no-store",
        [OFFSET_HEADER]: tail,
      },
    });
  }

  /** Catch-up and long-poll reads. */
  private async read(
    session: Session,
    p: DsParams,
    socket: DsPollSocket,
    cursor: string,
    base: Record<string, string>,
    ifNoneMatch: string | null,
  ): Promise<Response> {
    const headers = { ...base, ...JSON_HEADERS, [CURSOR_HEADER]: cursor };
    const live = p.live === "long-poll";
    // Subscribed before history is read: a message published meanwhile is either in history or
    // comes to the socket (anycable-go subscribes after reading, and loses what came in between).
    if (live && !(await this.subscribe(session, p))) return this.failed(session, base);
    const history = await this.history(p);
    if (history === undefined) {
      this.end(session);
      return new Response(null, { status: 410, headers: base });
    }
    if (history.length > 0 || !live) {
      const tail = history.length > 0 ? positionOf(history[history.length - 1]!) : await this.tail(p.stream);
      this.end(session);
      if (tail === undefined) return new Response(null, { status: 500, headers: base });
      const answer: Record<string, string> = {
        ...headers,
        [OFFSET_HEADER]: tail,
        [UP_TO_DATE_HEADER]: "true",
      };
      if (!live) {
        // A catch-up answer is the same for as long as the messages it holds are (DS caching):
        // a client or CDN that has it revalidates with If-None-Match and gets 304.
        answer.ETag = catchUpEtag(history, tail);
        if (etagMatches(ifNoneMatch, answer.ETag))
          return new Response(null, { status: 304, headers: answer });
      }
      return new Response(jsonBatch(historyItems(history)), { status: 200, headers: answer });
    }
    this.pollRequests.inc();
    const waiting: Waiting = { session, deadline: Date.now() + this.opts.pollIntervalMs, socket };
    this.polls.add(waiting);
    await socket.settled();
    this.polls.delete(waiting);
    const shutdown = socket.first === undefined && socket.closeCode === CloseCode.goingAway;
    this.end(session);
    if (socket.first !== undefined) {
      return new Response(jsonBatch([socket.first.item]), {
        status: 200,
        headers: { ...headers, [OFFSET_HEADER]: socket.first.token, [UP_TO_DATE_HEADER]: "true" },
      });
    }
    if (shutdown) return new Response(null, { status: 410, headers: base });
    // No content within --ds_poll_interval. The position stays the client's, said again with
    // the cursor so a client goes on long-polling (anycable-go sends none of the three headers:
    // a DS client then makes a catch-up read first).
    const offset = p.epoch !== "" ? encodeOffset(p.offset, p.epoch) : await this.tail(p.stream);
    return new Response(null, {
      status: 204,
      headers: {
        ...base,
        [CURSOR_HEADER]: cursor,
        ...(offset === undefined ? {} : { [OFFSET_HEADER]: offset, [UP_TO_DATE_HEADER]: "true" }),
      },
    });
  }

  private async stream(
    session: Session,
    p: DsParams,
    conn: SseConnection,
    socket: DsSseSocket,
    base: Record<string, string>,
  ): Promise<Response> {
    if (!(await this.subscribe(session, p))) {
      conn.discard();
      return this.failed(session, base);
    }
    const history = await this.history(p);
    if (history === undefined || session.isClosed) {
      conn.discard();
      this.end(session);
      return new Response(null, { status: history === undefined ? 410 : 503, headers: base });
    }
    this.sseRequests.inc();
    let epoch = p.epoch;
    let offset = p.offset;
    if (history.length > 0) {
      const last = history[history.length - 1]!;
      epoch = last.epoch ?? "";
      offset = last.offset ?? 0;
      conn.send(sseDataEvent(historyItems(history)) + sseControlEvent(positionOf(last), socket.cursor, true));
    } else {
      // Nothing to catch up on: a control event still tells the position the stream starts from
      // (the client's, or the tail for -1 / 0 / now), up to date (anycable-go sends nothing
      // until the next message).
      const position = p.epoch !== "" ? encodeOffset(p.offset, p.epoch) : await this.tail(p.stream);
      if (position !== undefined) conn.send(sseControlEvent(position, socket.cursor, true));
    }
    const complete = socket.release(epoch, offset);
    this.streamsOpen.set(conn, { session, deadline: Date.now() + this.opts.sseTtlMs });
    conn.answer();
    if (!complete) {
      // More came while history was read than are held: the client resumes from what it has.
      this.log.debug("too many messages while reading history, ending the stream", { sid: session.sid });
      this.finish(conn, session);
    }
    return new Response(conn.stream, { status: 200, headers: { ...base, ...SSE_HEADERS } });
  }

  private async subscribe(session: Session, p: DsParams): Promise<boolean> {
    const outcome = await this.deps.node.subscribe(session, {
      command: "subscribe",
      identifier: this.identifier(p),
    });
    if (outcome !== "confirmed") this.log.debug("failed to subscribe", { sid: session.sid, outcome });
    return outcome === "confirmed";
  }

  private failed(session: Session, base: Record<string, string>): Response {
    const shutdown = this.deps.node.isShuttingDown;
    this.end(session);
    return new Response(null, { status: shutdown ? 503 : 500, headers: base });
  }

  /** What the offset asks for (anycable-go's fetchHistory); undefined when it cannot be served (410). */
  private async history(p: DsParams): Promise<StreamMessage[] | undefined> {
    const { broker } = this.deps;
    let res: StreamMessage[] | { error: string };
    if (p.rawOffset === START_OFFSET || p.rawOffset === "0") res = await broker.historySince(p.stream, 0);
    else if (p.rawOffset === NOW_OFFSET) return [];
    else if (p.epoch === "") res = { error: "no epoch in the offset" };
    else res = await broker.historyFrom(p.stream, p.epoch, p.offset);
    if (isHistoryError(res)) {
      this.log.debug("failed to fetch history", { stream: p.stream, error: res.error });
      return undefined;
    }
    return res;
  }

  /**
   * The offset of the stream's last message ("0" for none). anycable-go asks its broker for the
   * tail position; here it is the last message history still holds (the same until it expires).
   */
  private async tail(stream: string): Promise<string | undefined> {
    const res = await this.deps.broker.historySince(stream, 0);
    if (isHistoryError(res)) {
      this.log.error("failed to get stream metadata", { stream, error: res.error });
      return undefined;
    }
    const last = res[res.length - 1];
    return last ? positionOf(last) : "0";
  }

  /** The request is over: its session ends (the application's Disconnect, when it has one). */
  private end(session: Session): void {
    if (session.isClosed) return;
    this.deps.node.closed(session);
  }

  /** Ends an answered SSE stream from the server side (its TTL, a lost message). */
  private finish(conn: SseConnection, session: Session): void {
    conn.close(CloseCode.normal, "");
    this.end(session);
  }

  private corsFor(req: Request): Record<string, string> {
    const headers = { ...this.deps.cors(req.headers.get("origin")), ...DS_CORS };
    if (this.allowHeaders !== "") {
      headers["Access-Control-Allow-Headers"] =
        `${headers["Access-Control-Allow-Headers"]}, ${this.allowHeaders}`;
    }
    return headers;
  }

  // --- SseConnectionEvents

  gone(conn: SseConnection): void {
    this.streamsOpen.delete(conn);
    this.ending.delete(conn);
    if (conn.session) this.end(conn.session);
  }

  closing(conn: SseConnection): void {
    this.streamsOpen.delete(conn);
    if (!conn.flushed) this.ending.add(conn);
  }

  /** The ticker's pass: long polls past --ds_poll_interval, streams past --ds_sse_ttl, unread closed streams. */
  tick(now: number): void {
    for (const w of this.polls) if (now >= w.deadline) w.socket.expire();
    for (const [conn, s] of this.streamsOpen) if (now >= s.deadline) this.finish(conn, s.session);
    for (const conn of this.ending) {
      if (conn.flushed) this.ending.delete(conn);
      else if (now - conn.closedAt >= this.deps.closeTimeoutMs) {
        this.ending.delete(conn);
        conn.cut();
      }
    }
  }
}

function positionOf(m: StreamMessage): string {
  return encodeOffset(m.offset ?? 0, m.epoch ?? "");
}
