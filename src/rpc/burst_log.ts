// When the backend goes down every call fails at once; logging each failure would bury everything
// else in the log. The first failure of a burst is logged, later ones are counted and summarised at
// most once per window, and the first success after a burst says how many calls failed.
import type { LogAttrs, Logger } from "../log/logger.ts";

export class BurstLog {
  private failures = 0;
  private suppressed = 0;
  private lastLoggedAt = 0;

  constructor(
    private readonly log: Logger,
    private readonly windowMs = 5_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Failed calls since the last success. */
  get failing(): number {
    return this.failures;
  }

  failure(msg: string, attrs: LogAttrs): void {
    this.failures++;
    const t = this.now();
    if (this.failures === 1 || t - this.lastLoggedAt >= this.windowMs) {
      const more = this.suppressed > 0 ? { suppressed: this.suppressed } : undefined;
      this.log.error(msg, { ...attrs, ...more });
      this.suppressed = 0;
      this.lastLoggedAt = t;
    } else {
      this.suppressed++;
    }
  }

  success(): void {
    if (this.failures === 0) return;
    this.log.info("RPC calls succeed again", { failed_calls: this.failures });
    this.failures = 0;
    this.suppressed = 0;
  }
}
