// The HTTP request behind HTTP RPC. fetch keeps connections alive on both runtimes and is the fast
// path; node:https is only used when the RPC server's certificate needs a custom CA or no
// verification, which fetch cannot express the same way on Bun and Deno.
import type { Agent as HttpsAgent } from "node:https";

export interface PostResponse {
  status: number;
  text(): Promise<string>;
}

export interface HttpPoster {
  /**
   * Rejects with an error named "TimeoutError" when `timeoutMs` passes first; aborting `signal`
   * (the session closed) cancels the request, including reading the response.
   */
  post(
    url: string,
    headers: Record<string, string>,
    body: string,
    timeoutMs?: number,
    signal?: AbortSignal,
  ): Promise<PostResponse>;
  close?(): Promise<void>;
}

/**
 * One request's deadline and cancellation: `abort` fires on either; `cleanup` stops the timer and
 * detaches from the session's signal (which outlives the request).
 */
function requestScope(
  timeoutMs: number | undefined,
  signal: AbortSignal | undefined,
  abort: (why: "timeout" | "canceled") => void,
) {
  let timedOut = false;
  const timer =
    timeoutMs !== undefined
      ? setTimeout(
          () => {
            timedOut = true;
            abort("timeout");
          },
          Math.max(1, Math.ceil(timeoutMs)),
        )
      : undefined;
  const onCancel = () => abort("canceled");
  signal?.addEventListener("abort", onCancel);
  if (signal?.aborted) onCancel();
  return {
    timedOut: () => timedOut,
    cleanup: () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onCancel);
    },
  };
}

export const fetchPoster: HttpPoster = {
  async post(url, headers, body, timeoutMs, signal) {
    const controller = new AbortController();
    const scope = requestScope(timeoutMs, signal, () => controller.abort());
    try {
      const res = await fetch(url, { method: "POST", headers, body, signal: controller.signal });
      return {
        status: res.status,
        // the deadline and the cancellation cover reading the body too
        text: () =>
          res
            .text()
            .catch((err) => {
              throw scope.timedOut() ? timeoutError() : err;
            })
            .finally(scope.cleanup),
      };
    } catch (err) {
      scope.cleanup();
      throw scope.timedOut() ? timeoutError() : err;
    }
  },
};

function timeoutError(): Error {
  const err = new Error("request timeout");
  err.name = "TimeoutError";
  return err;
}

export function nodePoster(tls: { ca?: string; rejectUnauthorized: boolean }): HttpPoster {
  let agent: HttpsAgent | undefined;
  const getAgent = async () => {
    if (!agent) {
      const https = await import("node:https");
      agent = new https.Agent({ keepAlive: true, ...tls });
    }
    return agent;
  };
  return {
    async post(url, headers, body, timeoutMs, signal) {
      const https = await import("node:https");
      const a = await getAgent();
      return new Promise<PostResponse>((resolve, reject) => {
        const req = https.request(
          url,
          { method: "POST", headers: { ...headers, "content-length": Buffer.byteLength(body) }, agent: a },
          (res) => {
            const chunks: Buffer[] = [];
            const done = new Promise<string>((ok, fail) => {
              res.on("data", (c: Buffer) => chunks.push(c));
              res.on("end", () => {
                scope.cleanup();
                ok(Buffer.concat(chunks).toString("utf8"));
              });
              res.on("error", (err) => {
                scope.cleanup();
                fail(err);
              });
            });
            resolve({ status: res.statusCode ?? 0, text: () => done });
          },
        );
        // a deadline for the whole exchange, like Go's context deadline (not an idle timeout)
        const scope = requestScope(timeoutMs, signal, (why) =>
          req.destroy(why === "timeout" ? timeoutError() : new Error("request canceled")),
        );
        req.on("error", (err) => {
          scope.cleanup();
          reject(err);
        });
        req.end(body);
      });
    },
    async close() {
      agent?.destroy();
    },
  };
}
