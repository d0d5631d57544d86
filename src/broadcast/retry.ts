/**
 * anycable-go's reconnect backoff: 250 ms for the first retry, then a random delay between 2^n and
 * 2^(n+1) seconds (whole seconds), so many nodes restarting together do not reconnect in step.
 */
export function nextRetryMs(step: number, random: () => number = Math.random): number {
  if (step === 0) return 250;
  const left = 2 ** step;
  return Math.floor(left + left * random()) * 1000;
}
