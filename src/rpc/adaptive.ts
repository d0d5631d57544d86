// Adaptive RPC concurrency (--rpc_concurrency=0; AnyCable Pro's feature as its docs describe it):
// the limit follows two signals, sampled once per interval by the cable's ticker. ResourceExhausted
// answers mean the limit is above what the RPC servers can take: it drops multiplicatively, and
// this signal wins over the other. Calls waiting for a slot while every slot is busy mean the limit
// is too small for the traffic: it grows additively. Otherwise it stays. Always within [min, max].
// (AIMD, as TCP congestion control: fast to back off, careful to grow.)

export interface AdaptiveOptions {
  initial: number;
  min: number;
  max: number;
}

/** The one-line startup error when the bounds do not fit together, or undefined. */
export function adaptiveProblem(o: AdaptiveOptions): string | undefined {
  for (const [name, v] of [
    ["rpc_concurrency_initial", o.initial],
    ["rpc_concurrency_min", o.min],
    ["rpc_concurrency_max", o.max],
  ] as const) {
    if (!Number.isInteger(v) || v < 1) return `--${name} must be a positive integer, got ${v}`;
  }
  if (o.min > o.max)
    return `--rpc_concurrency_min (${o.min}) must not exceed --rpc_concurrency_max (${o.max})`;
  if (o.initial < o.min || o.initial > o.max) {
    return `--rpc_concurrency_initial (${o.initial}) must be between --rpc_concurrency_min (${o.min}) and --rpc_concurrency_max (${o.max})`;
  }
  return undefined;
}

/** What the controller observed during one interval. */
export interface Sample {
  /** ResourceExhausted answers received. */
  exhausted: number;
  /** Calls waiting for a slot at the end of the interval. */
  pending: number;
  /** Calls holding a slot at the end of the interval. */
  busy: number;
}

const DECREASE_FACTOR = 0.75;
const INCREASE_SHARE = 0.1;

export class AdaptiveConcurrency {
  private current: number;

  constructor(private readonly o: AdaptiveOptions) {
    this.current = o.initial;
  }

  get capacity(): number {
    return this.current;
  }

  /** The limit for the next interval. */
  next(s: Sample): number {
    const { min, max } = this.o;
    if (s.exhausted > 0) {
      this.current = Math.max(min, Math.floor(this.current * DECREASE_FACTOR));
    } else if (s.pending > 0 && s.busy >= this.current) {
      // grow by a tenth (at least one), but not past what is actually waiting
      const step = Math.min(s.pending, Math.max(1, Math.round(this.current * INCREASE_SHARE)));
      this.current = Math.min(max, this.current + step);
    }
    return this.current;
  }
}
