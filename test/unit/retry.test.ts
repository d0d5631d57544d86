import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { nextRetryMs } from "../../src/broadcast/retry.ts";

describe("nextRetryMs", () => {
  it("follows anycable-go's backoff: 250ms, then [2^n, 2^(n+1)) whole seconds", () => {
    assert.equal(nextRetryMs(0), 250);
    assert.equal(
      nextRetryMs(1, () => 0),
      2000,
    );
    assert.equal(
      nextRetryMs(1, () => 0.99),
      3000,
    );
    assert.equal(
      nextRetryMs(3, () => 0.5),
      12000,
    );
  });
});
