// The long polling transport (--poll at --poll_path), as AnyCable Pro documents it
// (long_polling.md): a POST without X-Anycable-Poll-ID opens a node session, authenticated from
// the request like a WebSocket, and is answered at once with the session's first messages and
// its poll id; every later POST carries that id, may carry commands (JSONL), and takes the
// messages queued meanwhile. A poll that finds nothing due is held until messages have waited
// --poll_flush_interval or --poll_interval passes. A session not polled for
// --poll_keepalive_timeout is closed; a request naming it (or any unknown id) gets 401 with a
// `session_expired` disconnect. Sessions live on one node: clusters need sticky sessions.
import { BODY_TIMEOUT_MS, readBody } from "../../http/body.ts";
import type { Logger } from "../../log/logger.ts";
import type { Counter, Metrics } from "../../metrics/registry.ts";
import type { Node } from "../../node/node.ts";
import type { ConnectionRequest } from "../../node/socket.ts";
import { disconnectMessage } from "../../protocols/actioncable.ts";
import { VERSION_STRING } from "../../version.ts";
import type { CorsHeaders } from "../cors.ts";
import { establish } from "../establish.ts";
import type { RequestGate } from "../request.ts";
import { decodeJsonl, encodeJsonl } from "./jsonl.ts";
import type { Options } from "./options.ts";
import { type PollSession, PollSessions } from "./sessions.ts";
import { LpSocket, type LpSocketEvents, type LpState } from "./socket.ts";

export const POLL_ID_HEADER = "X-Anycable-Poll-ID";

const SESSION_EXPIRED = "session_expired";

const LP_HEADERS: Readonly<Record<string, string>> = {
  "X-AnyCable-Version": VERSION_STRING,
  "Content-Type": "text/plain; charset=utf-8",
  "X-Content-Type-Options": "nosniff",
  "Cache-Control": "private, no-cache, no-store, must-revalidate, max-age=0",
};

/**
 * Bounds of one session's queue between polls. The bytes are --ws_max_pending_size's (what a
 * WebSocket may keep unsent), or 16 MiB when that is off; past them the session is let go as
 * too slow.
 */
const MAX_QUEUED_MESSAGES = 65_536;
const NO_PENDING_LIMIT_BYTES = 16 * 1024 * 1024;

/** How often shutdown gives the runtime a turn to write the last answers. */
const DRAIN_TURN_MS = 10;

export interface LpDeps {
  node: Node;
  gate: RequestGate;
  cors: CorsHeaders;
  /** --max-conn (0: none): also the table's capacity. */
  maxConn: number;
  /** --ws_max_pending_size (0: none). */
  maxPendingBytes: number;
  metrics: Metrics;
  logger: Logger;
}

export class LpTransport implements LpSocketEvents {
  private readonly table: PollSessions<LpState>;
  /** Sessions with a held poll: the ticker answers them. */
  private readonly holding = new Set<PollSession<LpState>>();
  private readonly stale: Counter;
  private readonly log: Logger;
  private readonly keepaliveMs: number;
  private readonly intervalMs: number;
  private readonly flushMs: number;

  constructor(
    private readonly opts: Options,
    private readonly deps: LpDeps,
  ) {
    this.log = deps.logger.with({ context: "lp" });
    this.keepaliveMs = opts.keepaliveSec * 1000;
    this.intervalMs = opts.intervalSec * 1000;
    this.flushMs = opts.flushMs;
    this.table = new PollSessions<LpState>(
      deps.maxConn,
      {
        maxMessages: MAX_QUEUED_MESSAGES,
        maxBytes: deps.maxPendingBytes > 0 ? deps.maxPendingBytes : NO_PENDING_LIMIT_BYTES,
      },
      undefined,
      (state) => state.held !== undefined,
    );
    const m = deps.metrics;
    const clients = m.gauge("long_poll_clients_num", "The number of active long polling clients");
    this.stale = m.counter(
      "long_poll_stale_requests_total",
      "The total number of long polling requests for closed or unknown poll sessions",
    );
    m.onCollect(() => clients.set(this.table.size));
  }

  get path(): string {
    return this.opts.path;
  }

  get clientsCount(): number {
    return this.table.size;
  }

  /** Answers a request at the long polling path. */
  readonly handle = async (req: Request, _url: URL, remote: string): Promise<Response> => {
    const cors = this.corsFor(req);
    if (req.method === "OPTIONS") return new Response(null, { status: 200, headers: cors });
    if (req.method !== "POST") return new Response(null, { status: 405, headers: cors });
    const headers = { ...cors, ...LP_HEADERS };
    const pollId = req.headers.get(POLL_ID_HEADER);
    let poll: PollSession<LpState> | undefined;
    if (pollId !== null) {
      poll = this.table.take(pollId, Date.now(), this.keepaliveMs);
      if (!poll) {
        this.stale.inc();
        req.body?.cancel().catch(() => {});
        this.log.debug("poll for an unknown or expired session", { poll_id: pollId });
        return new Response(encodeJsonl([disconnectMessage(SESSION_EXPIRED, true)]), {
          status: 401,
          headers,
        });
      }
    }
    const body = await readBody(req, { maxBytes: this.opts.maxRequestSize, timeoutMs: BODY_TIMEOUT_MS });
    if (!body.ok) {
      this.log.debug("failed to read poll request body", { reason: body.reason });
      if (body.reason === "too_large")
        return new Response(null, { status: 413, headers: { ...headers, Connection: "close" } });
      return new Response(null, { status: 400, headers });
    }
    const { messages, malformed } = decodeJsonl(body.text);
    if (malformed > 0) this.log.debug("skipped malformed JSONL lines", { count: malformed });
    return poll
      ? this.poll(poll, messages, req.signal, headers)
      : this.connect(req, remote, messages, headers);
  };

  /** The first request: a new session, answered once authentication and the commands it carries ran. */
  private async connect(
    req: Request,
    remote: string,
    commands: string[],
    headers: Record<string, string>,
  ): Promise<Response> {
    const refusal = this.deps.gate.refuse(req, "allow");
    if (refusal) {
      for (const [k, v] of Object.entries(headers)) if (k.startsWith("Access-")) refusal.headers.set(k, v);
      return refusal;
    }
    const node = this.deps.node;
    const socket = new LpSocket(this);
    const created = this.table.create({ socket, session: undefined, held: undefined }, Date.now());
    if (!created.ok) return new Response("Too many connections\n", { status: 503, headers });
    const poll = created.session;
    socket.poll = poll;
    const { sid, clientSid, headers: env } = this.deps.gate.identify(req, remote);
    const request: ConnectionRequest = { sid, url: req.url, headers: env, protocol: "", pingIntervalSec: 0 };
    if (clientSid) request.clientSid = true;
    // The client may go away before it is answered (a slow RPC backend): the session goes with it.
    let abandoned = false;
    const abandon = () => {
      abandoned = true;
      this.end(poll);
    };
    req.signal.addEventListener("abort", abandon);
    const session = node.open(request, socket);
    poll.data.session = session;
    const result = await establish(node, session, [], () => socket.closeCode);
    if (result.ok && !abandoned) {
      for (const line of commands) node.message(session, line, line.length);
      await node.settled(session);
    }
    req.signal.removeEventListener("abort", abandon);
    if (abandoned) return new Response(null, { status: 400, headers });
    const out = encodeJsonl(poll.queue.drain());
    if (!result.ok) {
      this.log.debug("long polling request refused", {
        sid: session.sid,
        status: result.status,
        why: result.why,
      });
      this.end(poll);
      return new Response(out, { status: result.status, headers });
    }
    poll.queue.touch(Date.now());
    // closed meanwhile (a disconnect right after the commands): the client gets the rest, no session
    if (socket.closeCode >= 0) {
      this.end(poll);
      return new Response(out, { status: 200, headers });
    }
    this.log.debug("long polling session established", { sid: session.sid });
    return new Response(out, { status: 200, headers: { ...headers, [POLL_ID_HEADER]: poll.id } });
  }

  /** A later request of a live session: its commands go to the node, its answer takes the queue. */
  private poll(
    poll: PollSession<LpState>,
    commands: string[],
    signal: AbortSignal,
    headers: Record<string, string>,
  ): Response | Promise<Response> {
    const state = poll.data;
    // A new poll while one is held: the client gave that one up (it aborts it to send commands),
    // so it is answered empty and the messages go to this one.
    if (state.held) this.answer(poll, false);
    const session = state.session;
    if (session && state.socket.closeCode < 0) {
      for (const line of commands) this.deps.node.message(session, line, line.length);
    }
    const now = Date.now();
    if (state.socket.closeCode >= 0 || poll.queue.due(now, this.flushMs)) {
      const out = encodeJsonl(poll.queue.drain());
      poll.queue.touch(now);
      if (state.socket.closeCode >= 0) this.end(poll);
      return new Response(out, { status: 200, headers });
    }
    return new Promise<Response>((resolve) => {
      const onAbort = () => {
        if (state.held?.resolve !== resolve) return;
        state.held = undefined;
        this.holding.delete(poll);
        poll.queue.touch(Date.now());
        resolve(new Response(null, { status: 400, headers }));
      };
      state.held = { since: now, headers, signal, onAbort, resolve };
      this.holding.add(poll);
      this.log.debug("poll held", { sid: session?.sid });
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** Answers the session's held poll: with what is queued, or empty (a poll the client replaced). */
  private answer(poll: PollSession<LpState>, withMessages: boolean): void {
    const state = poll.data;
    const held = state.held;
    if (!held) return;
    state.held = undefined;
    this.holding.delete(poll);
    held.signal.removeEventListener("abort", held.onAbort);
    const out = withMessages ? encodeJsonl(poll.queue.drain()) : "";
    poll.queue.touch(Date.now());
    held.resolve(new Response(out, { status: 200, headers: held.headers }));
    // a closed session's last messages are out: its id is unknown from now on
    if (withMessages && state.socket.closeCode >= 0) this.table.remove(poll.id);
  }

  /** The session is over for this transport: out of the table, and closed on the node. */
  private end(poll: PollSession<LpState>): void {
    this.table.remove(poll.id);
    this.holding.delete(poll);
    const session = poll.data.session;
    if (session) this.deps.node.closed(session);
  }

  // --- LpSocketEvents

  closed(poll: PollSession<LpState>): void {
    if (poll.data.held) this.answer(poll, true);
  }

  /** The ticker's pass over held polls: due messages, or the poll interval passed. */
  tick(now: number): void {
    for (const poll of this.holding) {
      const held = poll.data.held;
      if (!held) this.holding.delete(poll);
      else if (poll.queue.due(now, this.flushMs) || now - held.since >= this.intervalMs)
        this.answer(poll, true);
    }
  }

  /** Once a second: sessions not polled within --poll_keepalive_timeout are closed. */
  sweep(now: number): void {
    for (const poll of this.table.sweep(now, this.keepaliveMs)) {
      const session = poll.data.session;
      if (!session) continue;
      if (poll.data.socket.closeCode < 0)
        this.log.debug("long polling session expired", { sid: session.sid });
      this.deps.node.closed(session);
    }
  }

  /**
   * Stopped after the node, which closed every session (so every held poll was answered with its
   * `server_restart`), and before the listeners: answers what is left and gives the runtime a turn.
   * The closed sessions stay in the table, so a poll that comes before the listeners stop still
   * gets its `server_restart`.
   */
  async drain(_deadline: AbortSignal): Promise<void> {
    for (const poll of this.holding) this.answer(poll, true);
    await new Promise((resolve) => setTimeout(resolve, DRAIN_TURN_MS));
  }

  private corsFor(req: Request): Record<string, string> {
    const headers = this.deps.cors(req.headers.get("origin"));
    headers["Access-Control-Allow-Headers"] = `${headers["Access-Control-Allow-Headers"]}, ${POLL_ID_HEADER}`;
    headers["Access-Control-Expose-Headers"] = POLL_ID_HEADER;
    return headers;
  }
}
