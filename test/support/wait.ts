/**
 * Thrown by a `waitFor` check when waiting longer cannot help (the process it polls has exited):
 * `waitFor` rethrows it at once instead of retrying until the timeout.
 */
export class StopWaiting extends Error {
  override name = "StopWaiting";
}

/** Polls `check` until it returns a truthy value or the timeout passes (no fixed sleeps). */
export async function waitFor<T>(
  check: () => T | Promise<T>,
  what: string,
  timeoutMs = 10_000,
  everyMs = 20,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      if (err instanceof StopWaiting) throw err;
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs}ms waiting for ${what}${last ? ` (last error: ${last})` : ""}`,
      );
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
