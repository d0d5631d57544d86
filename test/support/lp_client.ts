// Long polling clients for e2e tests, written from AnyCable's documented protocol
// (long_polling.md): `@anycable/long-polling` is not on the npm registry here. `lpPost` is one
// request; `LpTransport` is an @anycable/core Transport (the poll loop the documented client runs:
// open with a POST, poll again after a cooldown, commands buffered and sent with the next poll,
// which aborts a held one), so the real @anycable/core protocol client can run over it.

export const POLL_ID = "X-Anycable-Poll-ID";

export interface LpAnswer {
  status: number;
  headers: Headers;
  /** The body's JSONL lines, parsed. */
  messages: Array<Record<string, unknown>>;
  /** The body as it came. */
  text: string;
}

/** One POST: commands as JSONL, the poll id when given. */
export async function lpPost(
  url: string,
  opts: {
    id?: string;
    lines?: unknown[];
    body?: string;
    headers?: Record<string, string>;
    signal?: AbortSignal;
  } = {},
): Promise<LpAnswer> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.id) headers[POLL_ID] = opts.id;
  const body =
    opts.body ??
    (opts.lines?.length ? `${opts.lines.map((l) => JSON.stringify(l)).join("\n")}\n` : undefined);
  const res = await fetch(url, { method: "POST", headers, body, signal: opts.signal });
  const text = await res.text();
  // a refusal before the transport (403, 503) is plain text, not JSONL
  const jsonl = res.status === 200 || res.status === 401;
  const messages = jsonl
    ? text
        .split("\n")
        .filter((l) => l !== "")
        .map((l) => JSON.parse(l) as Record<string, unknown>)
    : [];
  return { status: res.status, headers: res.headers, messages, text };
}

type Events = {
  open: () => void;
  close: (err?: Error) => void;
  error: (err: Error) => void;
  data: (payload: string) => void;
};

/** An @anycable/core Transport over long polling. */
export class LpTransport {
  private pollId: string | undefined;
  private connected = false;
  private buffer: string[] = [];
  private inflight: AbortController | undefined;
  private cooldownTimer: ReturnType<typeof setTimeout> | undefined;
  private sendTimer: ReturnType<typeof setTimeout> | undefined;
  private pingTimer: ReturnType<typeof setInterval> | undefined;
  private readonly listeners: { [E in keyof Events]: Set<Events[E]> } = {
    open: new Set(),
    close: new Set(),
    error: new Set(),
    data: new Set(),
  };
  /** Every poll's status, in order (the first request's included). */
  readonly statuses: number[] = [];

  constructor(
    public url: string,
    private readonly opts: { cooldownMs?: number; sendBufferMs?: number } = {},
  ) {}

  displayName(): string {
    return `LongPolling(${this.url})`;
  }

  async open(): Promise<void> {
    const res = await lpPost(this.url);
    this.statuses.push(res.status);
    if (res.status === 401) for (const m of res.messages) this.emit("data", JSON.stringify(m));
    if (res.status !== 200) {
      const err = new Error(`Unexpected status code: ${res.status}`);
      this.emit("close", err);
      throw err;
    }
    this.pollId = res.headers.get(POLL_ID) ?? undefined;
    this.connected = true;
    this.emit("open");
    for (const m of res.messages) this.emit("data", JSON.stringify(m));
    // as the documented client does: the server sends no pings over long polling, and the
    // protocol client's monitor would take the connection for stale without them
    this.pingTimer = setInterval(() => this.emit("data", '{"type":"ping","source":"lp emulation"}'), 1000);
    this.schedule();
  }

  send(data: string): void {
    if (!this.connected) throw new Error("No connection");
    this.buffer.push(data);
    this.sendTimer ??= setTimeout(() => {
      this.sendTimer = undefined;
      if (!this.connected) return;
      clearTimeout(this.cooldownTimer);
      this.cooldownTimer = undefined;
      this.inflight?.abort();
      void this.poll();
    }, this.opts.sendBufferMs ?? 50);
  }

  async close(): Promise<void> {
    if (this.connected) this.closed();
  }

  setURL(url: string): void {
    this.url = url;
  }

  setParam(key: string, value: string): void {
    const u = new URL(this.url);
    u.searchParams.set(key, value);
    this.url = u.toString();
  }

  setToken(value: string, param = "jid"): void {
    this.setParam(param, value);
  }

  on<E extends keyof Events>(event: E, cb: Events[E]): () => void {
    this.listeners[event].add(cb);
    return () => this.listeners[event].delete(cb);
  }

  once<E extends keyof Events>(event: E, cb: Events[E]): () => void {
    const off = this.on(event, ((...args: unknown[]) => {
      off();
      (cb as (...a: unknown[]) => void)(...args);
    }) as Events[E]);
    return off;
  }

  private emit<E extends keyof Events>(event: E, ...args: Parameters<Events[E]>): void {
    for (const cb of [...this.listeners[event]]) (cb as (...a: unknown[]) => void)(...args);
  }

  private schedule(): void {
    if (this.connected) this.cooldownTimer = setTimeout(() => void this.poll(), this.opts.cooldownMs ?? 50);
  }

  private async poll(): Promise<void> {
    this.cooldownTimer = undefined;
    // this poll carries the buffered commands: the send timer must not abort it for them
    clearTimeout(this.sendTimer);
    this.sendTimer = undefined;
    const lines = this.buffer.splice(0);
    const ctl = new AbortController();
    this.inflight = ctl;
    let res: LpAnswer;
    try {
      res = await lpPost(this.url, {
        id: this.pollId,
        body: lines.length ? `${lines.join("\n")}\n` : undefined,
        signal: ctl.signal,
      });
    } catch (err) {
      if (this.inflight === ctl) this.inflight = undefined;
      if ((err as Error).name === "AbortError") return;
      if (this.connected) this.closed(err as Error);
      return;
    }
    if (this.inflight === ctl) this.inflight = undefined;
    this.statuses.push(res.status);
    if (res.status === 200 || res.status === 401)
      for (const m of res.messages) this.emit("data", JSON.stringify(m));
    if (res.status !== 200) {
      if (this.connected) this.closed(new Error(`Unexpected status code: ${res.status}`));
      return;
    }
    this.schedule();
  }

  private closed(err?: Error): void {
    clearTimeout(this.cooldownTimer);
    clearTimeout(this.sendTimer);
    clearInterval(this.pingTimer);
    this.cooldownTimer = undefined;
    this.sendTimer = undefined;
    this.inflight?.abort();
    this.pollId = undefined;
    this.connected = false;
    this.emit("close", err);
  }
}
