// The HTTP request behind HTTP RPC. fetch keeps connections alive on both runtimes and is the fast
// path; node:https is only used when the RPC server's certificate needs a custom CA or no
// verification, which fetch cannot express the same way on Bun and Deno.
import type { Agent as HttpsAgent } from "node:https";

export interface PostResponse {
  status: number;
  text(): Promise<string>;
}

export interface HttpPoster {
  /** Rejects with an error named "TimeoutError" when `timeoutMs` passes first. */
  post(url: string, headers: Record<string, string>, body: string, timeoutMs?: number): Promise<PostResponse>;
  close?(): Promise<void>;
}

export const fetchPoster: HttpPoster = {
  async post(url, headers, body, timeoutMs) {
    const signal =
      timeoutMs !== undefined ? AbortSignal.timeout(Math.max(1, Math.ceil(timeoutMs))) : undefined;
    try {
      const res = await fetch(url, { method: "POST", headers, body, signal });
      return { status: res.status, text: () => res.text() };
    } catch (err) {
      if (signal?.aborted) throw timeoutError();
      throw err;
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
    async post(url, headers, body, timeoutMs) {
      const https = await import("node:https");
      const a = await getAgent();
      return new Promise<PostResponse>((resolve, reject) => {
        // a deadline for the whole exchange, like Go's context deadline (not an idle timeout)
        const timer =
          timeoutMs !== undefined
            ? setTimeout(() => req.destroy(timeoutError()), Math.max(1, Math.ceil(timeoutMs)))
            : undefined;
        const req = https.request(
          url,
          { method: "POST", headers: { ...headers, "content-length": Buffer.byteLength(body) }, agent: a },
          (res) => {
            const chunks: Buffer[] = [];
            const done = new Promise<string>((ok, fail) => {
              res.on("data", (c: Buffer) => chunks.push(c));
              res.on("end", () => {
                clearTimeout(timer);
                ok(Buffer.concat(chunks).toString("utf8"));
              });
              res.on("error", (err) => {
                clearTimeout(timer);
                fail(err);
              });
            });
            resolve({ status: res.statusCode ?? 0, text: () => done });
          },
        );
        req.on("error", (err) => {
          clearTimeout(timer);
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
