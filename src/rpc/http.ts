// HTTP RPC (anycable-go's rpc/http.go): the RPC messages as JSON POSTed to <base>/connect,
// /command and /disconnect. Requests use proto field names and integer enums (what Go's
// encoding/json makes of the generated structs); responses are read leniently: proto or JSON
// names, integer or named enums ("SUCCESS", as some anycable-rb/protobuf combinations emit).
import { type DescMessage, fromJsonString, type MessageShape, toJsonString } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  type CommandMessage,
  CommandMessageSchema,
  type CommandResponse,
  CommandResponseSchema,
  type ConnectionRequest,
  ConnectionRequestSchema,
  type ConnectionResponse,
  ConnectionResponseSchema,
  type DisconnectRequest,
  DisconnectRequestSchema,
  type DisconnectResponse,
  DisconnectResponseSchema,
} from "../../gen/anycable/rpc_pb.ts";
import { compact, type Logger } from "../log/logger.ts";
import { CircuitBreaker, HTTP_RPC_BREAKER } from "./breaker.ts";
import { type CallOptions, callMetadata, type RpcClient } from "./client.ts";
import { fetchPoster, type HttpPoster, nodePoster } from "./http_post.ts";
import { canceledError } from "./retry.ts";
import { isTlsError, nodeTlsOptions, type RpcTlsSettings } from "./tls.ts";

export interface HttpRpcOptions {
  /** Base URL, e.g. http://localhost:3000/_anycable */
  host: string;
  /** Bearer token ("" sends no Authorization header). */
  secret: string;
  tls: RpcTlsSettings;
  logger: Logger;
  /** Injectable transport (tests). */
  poster?: HttpPoster;
  now?: () => number;
}

/** `status` as an integer, field names as in the .proto file, empty fields left out. */
export function encodeRequest<D extends DescMessage>(schema: D, msg: MessageShape<D>): string {
  return toJsonString(schema, msg, { useProtoFieldName: true, enumAsInteger: true });
}

export function decodeResponse<D extends DescMessage>(schema: D, body: string): MessageShape<D> {
  try {
    return fromJsonString(schema, body, { ignoreUnknownFields: true });
  } catch (err) {
    throw new ConnectError(`failed to decode HTTP RPC response: ${(err as Error).message}`, Code.Unknown);
  }
}

export class HttpRpcClient implements RpcClient {
  readonly impl = "http";
  private readonly base: URL;
  private readonly breaker: CircuitBreaker;
  private readonly poster: HttpPoster;
  private readonly headers: Record<string, string>;

  constructor(opts: HttpRpcOptions) {
    this.base = new URL(opts.host);
    this.breaker = new CircuitBreaker(
      HTTP_RPC_BREAKER,
      opts.logger.with({ context: "cb", name: "httrpc" }),
      opts.now,
    );
    const tls = nodeTlsOptions(opts.tls);
    // fetch cannot take a custom CA or skip verification portably: only then node:https is used
    const customTls = this.base.protocol === "https:" && tls && (tls.ca || !tls.rejectUnauthorized);
    this.poster = opts.poster ?? (customTls ? nodePoster(tls) : fetchPoster);
    this.headers = { "content-type": "application/json" };
    if (opts.secret) this.headers.authorization = `Bearer ${opts.secret}`;
  }

  ready(): Error | undefined {
    return this.breaker.state() === "open" ? new Error("http rpc is temporarily unavailable") : undefined;
  }

  async connect(req: ConnectionRequest, opts: CallOptions): Promise<ConnectionResponse> {
    const body = await this.perform("connect", encodeRequest(ConnectionRequestSchema, req), opts);
    return decodeResponse(ConnectionResponseSchema, body);
  }

  async command(req: CommandMessage, opts: CallOptions): Promise<CommandResponse> {
    const body = await this.perform("command", encodeRequest(CommandMessageSchema, req), opts);
    return decodeResponse(CommandResponseSchema, body);
  }

  async disconnect(req: DisconnectRequest, opts: CallOptions): Promise<DisconnectResponse> {
    const body = await this.perform("disconnect", encodeRequest(DisconnectRequestSchema, req), opts);
    return decodeResponse(DisconnectResponseSchema, body);
  }

  async close(): Promise<void> {
    await this.poster.close?.();
  }

  /** anycable-go's status mapping: no response -> Unavailable (retried), 401, 400/422, others. */
  private async perform(method: string, payload: string, opts: CallOptions): Promise<string> {
    const url = joinPath(this.base, method);
    let report: (success: boolean | undefined) => void;
    try {
      report = this.breaker.allow();
    } catch (err) {
      throw new ConnectError((err as Error).message, Code.Unknown);
    }
    const headers = { ...this.headers };
    for (const [k, v] of Object.entries(callMetadata(opts))) headers[`x-anycable-meta-${k}`] = v;
    let res: Awaited<ReturnType<HttpPoster["post"]>>;
    try {
      res = await this.poster.post(url, headers, payload, opts.timeoutMs, opts.signal);
    } catch (err) {
      if (opts.signal?.aborted) {
        // the session closed: not the backend's failure (anycable-go reports it as a timeout)
        report(undefined);
        throw canceledError(err);
      }
      report(false);
      if ((err as Error).name === "TimeoutError")
        throw new ConnectError("request timeout", Code.DeadlineExceeded);
      if (isTlsError(err)) throw new ConnectError((err as Error).message, Code.Unauthenticated);
      throw new ConnectError((err as Error).message, Code.Unavailable, undefined, undefined, err);
    }
    report(true);
    let text: string;
    try {
      text = await res.text();
    } catch (err) {
      throw new ConnectError(`failed to read HTTP RPC response: ${(err as Error).message}`, Code.Unknown);
    }
    if (res.status === 401) throw new ConnectError("http returned 401", Code.Unauthenticated);
    if (res.status === 400 || res.status === 422) throw new ConnectError(compact(text), Code.InvalidArgument);
    if (res.status !== 200) throw new ConnectError(compact(text), Code.Unknown);
    return text;
  }
}

/** Go's url.JoinPath: the method becomes the last path segment under the base path. */
export function joinPath(base: URL, segment: string): string {
  const url = new URL(base.href);
  url.pathname = `${url.pathname.replace(/\/+$/, "")}/${segment}`;
  return url.href;
}
