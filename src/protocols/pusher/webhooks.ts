// Pusher webhooks: events batched into `{"time_ms", "events": [...]}` POSTs to --pusher_webhook_url,
// signed as Pusher signs them (X-Pusher-Key, X-Pusher-Signature: hex HMAC-SHA256 of the body under
// the secret), sent one batch at a time in order and retried with backoff when the receiver fails.
// The queue is bounded: past MAX_QUEUED events the oldest are dropped (and logged).
import type { Service } from "../../app/service.ts";
import type { Logger } from "../../log/logger.ts";
import type { WebhookEvent } from "./options.ts";
import { webhookSignature } from "./signatures.ts";

/** One webhook event as Pusher sends it. */
export interface WebhookPayload {
  name: WebhookEvent;
  channel: string;
  user_id?: string;
  event?: string;
  data?: string;
  socket_id?: string;
}

export interface WebhooksOptions {
  url: string;
  appKey: string;
  secret: string;
  events: readonly WebhookEvent[];
  logger: Logger;
  /** Events that arrive within this time go out in one request (ms). */
  batchMs?: number;
  maxBatch?: number;
  maxQueued?: number;
  /** Attempts per batch before it is dropped. */
  attempts?: number;
  /** Wait before retry `n` (1-based), in ms. */
  backoffMs?: (n: number) => number;
  /** Per-request deadline (ms). */
  timeoutMs?: number;
  fetch?: typeof fetch;
  now?: () => number;
}

export const DEFAULT_BATCH_MS = 50;
export const MAX_BATCH = 100;
export const MAX_QUEUED = 10_000;
export const ATTEMPTS = 8;
const REQUEST_TIMEOUT_MS = 5_000;

/** 0.5 s, 1 s, 2 s, ... capped at 30 s: eight attempts span about a minute and a half. */
export function defaultBackoff(n: number): number {
  return Math.min(500 * 2 ** (n - 1), 30_000);
}

export class Webhooks implements Service {
  readonly name = "pusher webhooks";
  private readonly queue: WebhookPayload[] = [];
  private readonly wanted: ReadonlySet<WebhookEvent>;
  private readonly log: Logger;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  /** Aborted on shutdown: ends a backoff wait or a request in flight. */
  private readonly abort = new AbortController();
  private dropped = 0;

  constructor(private readonly o: WebhooksOptions) {
    this.wanted = new Set(o.events);
    this.log = o.logger.with({ context: "pusher" });
  }

  async start(): Promise<void> {
    this.log.info(`Send Pusher webhooks to ${this.o.url} (${[...this.wanted].join(", ") || "no events"})`);
  }

  /** Whether events of this kind are sent (callers skip building payloads nobody wants). */
  wants(name: WebhookEvent): boolean {
    return this.wanted.has(name) && !this.stopped;
  }

  emit(event: WebhookPayload): void {
    if (!this.wants(event.name)) return;
    this.queue.push(event);
    if (this.queue.length > (this.o.maxQueued ?? MAX_QUEUED)) {
      this.queue.shift();
      if (this.dropped++ === 0) this.log.warn("Pusher webhook queue is full: dropping the oldest events");
    }
    if (!this.timer && !this.running) this.timer = setTimeout(this.flush, this.o.batchMs ?? DEFAULT_BATCH_MS);
  }

  private readonly flush = (): void => {
    this.timer = undefined;
    if (this.running || this.queue.length === 0) return;
    this.running = this.pump().finally(() => {
      this.running = undefined;
      if (this.queue.length > 0 && !this.stopped) this.timer = setTimeout(this.flush, 0);
    });
  };

  private async pump(): Promise<void> {
    while (this.queue.length > 0 && !this.stopped) {
      const batch = this.queue.splice(0, this.o.maxBatch ?? MAX_BATCH);
      await this.deliver(batch);
    }
  }

  private async deliver(events: WebhookPayload[]): Promise<void> {
    const now = this.o.now ?? Date.now;
    const body = JSON.stringify({ time_ms: now(), events });
    const attempts = this.o.attempts ?? ATTEMPTS;
    const backoff = this.o.backoffMs ?? defaultBackoff;
    for (let n = 1; n <= attempts && !this.stopped; n++) {
      const error = await this.post(body);
      if (error === undefined) {
        if (n > 1 || this.dropped > 0) this.log.info("Pusher webhooks delivered again", { attempts: n });
        this.dropped = 0;
        return;
      }
      if (n === attempts) {
        this.log.error("Pusher webhook dropped after retries", {
          url: this.o.url,
          events: events.length,
          error,
        });
        return;
      }
      this.log.debug("Pusher webhook failed, retrying", { attempt: n, error });
      await this.sleep(backoff(n));
    }
  }

  /** An error text, or undefined for a 2xx answer. */
  private async post(body: string): Promise<string | undefined> {
    const doFetch = this.o.fetch ?? fetch;
    const signal = AbortSignal.any([
      this.abort.signal,
      AbortSignal.timeout(this.o.timeoutMs ?? REQUEST_TIMEOUT_MS),
    ]);
    try {
      const res = await doFetch(this.o.url, {
        method: "POST",
        body,
        signal,
        headers: {
          "content-type": "application/json",
          "x-pusher-key": this.o.appKey,
          "x-pusher-signature": webhookSignature(this.o.secret, body),
        },
      });
      await res.body?.cancel().catch(() => {});
      return res.ok ? undefined : `status ${res.status}`;
    } catch (err) {
      return (err as Error).message ?? String(err);
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        resolve();
      }
      this.abort.signal.addEventListener("abort", done, { once: true });
    });
  }

  /** Sends what is queued (one attempt per batch) until the deadline, then stops. */
  async shutdown(deadline: AbortSignal): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const onDeadline = () => this.stop();
    deadline.addEventListener("abort", onDeadline, { once: true });
    try {
      if (this.running) await this.running;
      if (this.queue.length > 0 && !deadline.aborted) {
        const events = this.queue.splice(0);
        for (let i = 0; i < events.length && !this.stopped; i += this.o.maxBatch ?? MAX_BATCH) {
          const error = await this.post(
            JSON.stringify({
              time_ms: Date.now(),
              events: events.slice(i, i + (this.o.maxBatch ?? MAX_BATCH)),
            }),
          );
          if (error) this.log.warn("Pusher webhook not delivered at shutdown", { error });
        }
      }
    } finally {
      deadline.removeEventListener("abort", onDeadline);
      this.stop();
    }
  }

  private stop(): void {
    this.stopped = true;
    this.abort.abort();
  }
}
