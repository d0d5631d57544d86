// When something fails for everyone at once (the RPC backend goes down, a flood of stalled request
// bodies times out), logging each failure would bury everything else in the log. The first failure
// of a burst is logged, later ones are counted and summarised at most once per window, and the
// first success after a burst says how many failed.
import type { LogAttrs, Logger } from "./logger.ts";

export interface BurstLogOptions {
  /** Logged at info on the first success after a burst. */
  recovered?: string;
  /** The attribute counting the failures of the burst in that line. */
  countKey?: string;
  level?: "error" | "warn";
  windowMs?: number;
  now?: () => number;
}

export class BurstLog {
  private failures = 0;
  private suppressed = 0;
  private lastLoggedAt = 0;
  private readonly recovered: string;
  private readonly countKey: string;
  private readonly level: "error" | "warn";
  private readonly windowMs: number;
  private readonly now: () => number;

  constructor(
    private readonly log: Logger,
    opts: BurstLogOptions = {},
  ) {
    this.recovered = opts.recovered ?? "RPC calls succeed again";
    this.countKey = opts.countKey ?? "failed_calls";
    this.level = opts.level ?? "error";
    this.windowMs = opts.windowMs ?? 5_000;
    this.now = opts.now ?? Date.now;
  }

  /** Failures since the last success. */
  get failing(): number {
    return this.failures;
  }

  failure(msg: string, attrs: LogAttrs): void {
    this.failures++;
    const t = this.now();
    if (this.failures === 1 || t - this.lastLoggedAt >= this.windowMs) {
      const more = this.suppressed > 0 ? { suppressed: this.suppressed } : undefined;
      this.log[this.level](msg, { ...attrs, ...more });
      this.suppressed = 0;
      this.lastLoggedAt = t;
    } else {
      this.suppressed++;
    }
  }

  success(): void {
    if (this.failures === 0) return;
    this.log.info(this.recovered, { [this.countKey]: this.failures });
    this.failures = 0;
    this.suppressed = 0;
  }
}
