// Test-side SSE helpers, written from the event stream format (not shared with src/): a reader
// of a fetch response's events, and a fetch for the `eventsource` client whose connections the
// test can drop and whose reconnects it can hold.

export interface SseEvent {
  /** "message" when the event has no `event:` field. */
  event: string;
  data: string;
  id?: string;
  retry?: number;
  /** The event's lines as they came. */
  raw: string;
}

/** Parses one event block (the lines before a blank line) as the HTML spec's SSE parser does. */
export function parseEvent(block: string): SseEvent {
  const out: SseEvent = { event: "message", data: "", raw: block };
  const data: string[] = [];
  for (const line of block.split(/\r\n|\r|\n/)) {
    if (line === "" || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") out.event = value;
    else if (field === "data") data.push(value);
    else if (field === "id") out.id = value;
    else if (field === "retry" && /^\d+$/.test(value)) out.retry = Number(value);
  }
  out.data = data.join("\n");
  return out;
}

/** Reads a streamed response event by event. */
export class SseReader {
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  private readonly decoder = new TextDecoder();
  private buffer = "";
  /** Every event read so far. */
  readonly events: SseEvent[] = [];
  ended = false;

  constructor(readonly response: Response) {
    if (!response.body) throw new Error(`no body (status ${response.status})`);
    this.reader = response.body.getReader();
  }

  /** The next event, or undefined when the stream ended; fails after `timeoutMs`. */
  async next(timeoutMs = 10_000): Promise<SseEvent | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const end = this.buffer.indexOf("\n\n");
      if (end >= 0) {
        const event = parseEvent(this.buffer.slice(0, end));
        this.buffer = this.buffer.slice(end + 2);
        this.events.push(event);
        return event;
      }
      if (this.ended) return undefined;
      const left = deadline - Date.now();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => resolve("timeout"), Math.max(left, 0));
      });
      const read = await Promise.race([this.reader.read(), timeout]);
      clearTimeout(timer);
      if (read === "timeout")
        throw new Error(`no SSE event within ${timeoutMs}ms; so far: ${JSON.stringify(this.events)}`);
      if (read.done) {
        this.ended = true;
        continue;
      }
      this.buffer += this.decoder.decode(read.value, { stream: true });
    }
  }

  /** Reads until an event matches (returning it), failing if the stream ends first. */
  async until(match: (e: SseEvent) => boolean, what: string, timeoutMs = 10_000): Promise<SseEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const e = await this.next(Math.max(deadline - Date.now(), 1));
      if (!e) throw new Error(`stream ended before ${what}; got: ${JSON.stringify(this.events)}`);
      if (match(e)) return e;
    }
  }

  /** Reads to the end of the stream; the events read on the way. */
  async rest(timeoutMs = 10_000): Promise<SseEvent[]> {
    const start = this.events.length;
    while ((await this.next(timeoutMs)) !== undefined);
    return this.events.slice(start);
  }

  cancel(): Promise<void> {
    return this.reader.cancel().catch(() => {});
  }
}

/**
 * A fetch for `new EventSource(url, { fetch })`: records each request's URL and headers, lets the
 * test drop the open connection (the client sees a network error and reconnects) and hold the
 * next connection attempt until it opens the gate.
 */
export class DroppableFetch {
  readonly requests: Array<{ url: string; headers: Record<string, string> }> = [];
  private live: Array<() => void> = [];
  private held: Promise<void> | undefined;
  private release: (() => void) | undefined;
  /** Extra request headers (e.g. X-JID). */
  headers: Record<string, string> = {};

  readonly fetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const headers: Record<string, string> = {};
    new Headers(init?.headers).forEach((v, k) => {
      headers[k] = v;
    });
    Object.assign(headers, this.headers);
    this.requests.push({ url: String(input), headers });
    if (this.held) await this.held;
    const res = await fetch(input, { ...init, headers });
    const body = res.body;
    if (!body) return res;
    const reader = body.getReader();
    let controller!: ReadableStreamDefaultController<Uint8Array>;
    const wrapped = new ReadableStream<Uint8Array>({
      start(c) {
        controller = c;
      },
      async pull(c) {
        try {
          const { done, value } = await reader.read();
          if (done) c.close();
          else c.enqueue(value);
        } catch (err) {
          c.error(err);
        }
      },
      cancel(reason) {
        return reader.cancel(reason);
      },
    });
    this.live.push(() => {
      reader.cancel().catch(() => {});
      try {
        controller.error(new TypeError("network error (dropped by the test)"));
      } catch {
        // already over
      }
    });
    return new Response(wrapped, { status: res.status, statusText: res.statusText, headers: res.headers });
  };

  /** Cuts every open connection; the next attempts wait until `open()` when `hold` is set. */
  drop(hold = false): void {
    if (hold) {
      this.held = new Promise((resolve) => {
        this.release = resolve;
      });
    }
    for (const cut of this.live) cut();
    this.live = [];
  }

  open(): void {
    this.release?.();
    this.held = undefined;
    this.release = undefined;
  }
}
