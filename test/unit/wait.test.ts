// test/support/wait.ts: polling retries ordinary errors until the timeout, but stops at once on
// StopWaiting (a server that died during start-up is reported now, not after its health timeout).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { StopWaiting, waitFor } from "../support/wait.ts";

describe("waitFor", () => {
  it("retries a check that throws until it succeeds", async () => {
    let calls = 0;
    const v = await waitFor(
      () => {
        if (++calls < 3) throw new Error("not yet");
        return "ready";
      },
      "third call",
      5_000,
      1,
    );
    assert.equal(v, "ready");
    assert.equal(calls, 3);
  });

  it("gives up at once on StopWaiting, with its message", async () => {
    let calls = 0;
    const started = Date.now();
    await assert.rejects(
      waitFor(
        () => {
          calls++;
          throw new StopWaiting("the process exited");
        },
        "something that cannot happen any more",
        5_000,
        1,
      ),
      (err: Error) => err instanceof StopWaiting && err.message === "the process exited",
    );
    assert.equal(calls, 1);
    assert.ok(Date.now() - started < 1_000, "no retries until the timeout");
  });
});
