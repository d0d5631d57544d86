// The Server-Sent Events transport (--sse at --sse_path), as anycable-go's sse/handler.go serves
// it: a GET (EventSource) or POST (JSONL commands) request opens a node session, like a
// WebSocket's, whose replies stream back as events; the request is answered once authentication
// and its subscriptions are decided (401 / 400 otherwise). The stream ends when the client goes
// away, or when the node closes the session (a disconnect, a slow client, the server stopping).
import { BODY_TIMEOUT_MS, readBody } from "../../http/body.ts";
import type { Logger } from "../../log/logger.ts";
import type { Metrics } from "../../metrics/registry.ts";
import type { Node } from "../../node/node.ts";
import type { ConnectionRequest } from "../../node/socket.ts";
import { VERSION_STRING } from "../../version.ts";
import type { CorsHeaders } from "../cors.ts";
import { establish } from "../establish.ts";
import type { RequestGate } from "../request.ts";
import { SseConnection, type SseConnectionEvents } from "./connection.ts";
import { sseEncoder } from "./encoder.ts";
import { commandFromQuery, commandsFromBody, isRaw, MAX_POST_BODY_BYTES, type Parsed } from "./params.ts";

/** The headers of every answer past the method check, as anycable-go sets them before the status. */
const STREAM_HEADERS: Readonly<Record<string, string>> = {
  "X-AnyCable-Version": VERSION_STRING,
  Connection: "keep-alive",
  "Content-Type": "text/event-stream; charset=utf-8",
  "X-Content-Type-Options": "nosniff",
  "X-Accel-Buffering": "no",
  "Cache-Control": "private, no-cache, no-store, must-revalidate, max-age=0",
  Pragma: "no-cache",
  // sic: anycable-go's header name
  Expire: "0",
};

/** How often shutdown looks whether the closed streams have been taken by the runtime. */
const DRAIN_POLL_MS = 10;

export interface SseOptions {
  /** A closed stream the client has not read to the end is cut after this (--ws_write_timeout). */
  closeTimeoutMs: number;
}

export class SseTransport implements SseConnectionEvents {
  /** Answered streams the node has not closed. */
  private readonly open = new Set<SseConnection>();
  /** Streams the node closed whose last events the runtime has not taken yet. */
  private readonly ending = new Set<SseConnection>();
  private readonly log: Logger;

  constructor(
    private readonly node: Node,
    private readonly gate: RequestGate,
    private readonly cors: CorsHeaders,
    private readonly opts: SseOptions,
    metrics: Metrics,
    logger: Logger,
  ) {
    this.log = logger.with({ context: "sse" });
    const clients = metrics.gauge("sse_clients_num", "The number of active SSE clients");
    metrics.onCollect(() => clients.set(this.open.size));
  }

  get clientsCount(): number {
    return this.open.size;
  }

  /** Answers a request at the SSE path. */
  readonly handle = async (req: Request, url: URL, remote: string): Promise<Response> => {
    const cors = this.cors(req.headers.get("origin"));
    if (req.method === "OPTIONS") return new Response(null, { status: 200, headers: cors });
    if (req.method !== "GET" && req.method !== "POST")
      return new Response(null, { status: 405, headers: cors });
    const headers = { ...cors, ...STREAM_HEADERS };
    const refusal = this.gate.refuse(req, "allow");
    if (refusal) {
      for (const [k, v] of Object.entries(cors)) refusal.headers.set(k, v);
      return refusal;
    }
    const { sid, clientSid, headers: env } = this.gate.identify(req, remote);
    const parsed =
      req.method === "GET"
        ? commandFromQuery(url.searchParams, req.headers.get("last-event-id"))
        : await this.readCommands(req);
    if (!parsed.ok) {
      this.log.debug("failed to build subscribe command", { sid, error: parsed.error });
      return new Response(null, {
        status: 400,
        headers: parsed.error === TOO_LARGE ? { ...headers, Connection: "close" } : headers,
      });
    }
    const request: ConnectionRequest = {
      sid,
      url: req.url,
      headers: env,
      protocol: "",
      encoder: sseEncoder({ unwrap: req.method === "GET", raw: isRaw(url.searchParams) }),
      oneWay: true,
    };
    if (clientSid) request.clientSid = true;
    const conn = new SseConnection(this);
    // The client may go away before it is answered (a slow RPC backend): the session goes with it.
    const abandon = () => conn.cancel();
    req.signal.addEventListener("abort", abandon);
    const session = this.node.open(request, conn);
    conn.session = session;
    const result = await establish(this.node, session, parsed.commands, () => conn.closeCode);
    req.signal.removeEventListener("abort", abandon);
    if (conn.ended) return new Response(null, { status: 400, headers });
    if (!result.ok) {
      this.log.debug("SSE request refused", { sid: session.sid, status: result.status, why: result.why });
      conn.discard();
      // the session ends with the request (anycable-go's deferred Disconnect), the RPC Disconnect included
      this.node.closed(session);
      return new Response(null, { status: result.status, headers });
    }
    this.open.add(conn);
    conn.answer();
    this.log.debug("session established", { sid: session.sid });
    return new Response(conn.stream, { status: 200, headers });
  };

  private async readCommands(req: Request): Promise<Parsed> {
    const body = await readBody(req, { maxBytes: MAX_POST_BODY_BYTES, timeoutMs: BODY_TIMEOUT_MS });
    if (!body.ok)
      return {
        ok: false,
        error: body.reason === "too_large" ? TOO_LARGE : `failed to read body: ${body.reason}`,
      };
    return commandsFromBody(body.text);
  }

  // --- SseConnectionEvents

  gone(conn: SseConnection): void {
    this.open.delete(conn);
    this.ending.delete(conn);
    if (conn.session) this.node.closed(conn.session);
  }

  closing(conn: SseConnection): void {
    this.open.delete(conn);
    if (!conn.flushed) this.ending.add(conn);
  }

  /**
   * The ticker's pass: a closed stream whose last events the client has not read within
   * --ws_write_timeout is cut, as a closed WebSocket that does not take its close frame is.
   */
  tick(now: number): void {
    for (const conn of this.ending) {
      if (conn.flushed) this.ending.delete(conn);
      else if (now - conn.closedAt >= this.opts.closeTimeoutMs) {
        this.ending.delete(conn);
        conn.cut();
        this.log.debug("closed SSE stream not read within the write timeout, connection cut", {
          sid: conn.session?.sid,
        });
      }
    }
  }

  /**
   * Stopped after the node (which closed every session) and before the listeners, which cut what
   * is still open: waits until the runtime has taken every closed stream's last events.
   */
  async drain(deadline: AbortSignal): Promise<void> {
    while (!deadline.aborted) {
      this.tick(Date.now());
      if (this.ending.size === 0) break;
      await new Promise((resolve) => setTimeout(resolve, DRAIN_POLL_MS));
    }
    // one more turn for the runtime to write what it took
    await new Promise((resolve) => setTimeout(resolve, DRAIN_POLL_MS));
  }
}

/** readCommands' error for a body over the cap (answered with Connection: close: the rest is unread). */
const TOO_LARGE = "request body too large";
