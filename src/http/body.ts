import { BurstLog } from "../log/burst_log.ts";
import type { Logger } from "../log/logger.ts";

// Request bodies the server reads (HTTP broadcasts, the REST API): capped at --max_body_size and
// given a deadline, so that no client can make the server buffer without bound or wait for ever.
// A declared Content-Length over the cap is refused before a byte is read; a chunked body is read
// only until it passes the cap.

export interface BodyLimits {
  /** 0 = no limit. */
  maxBytes: number;
  /** The whole body must arrive within this time (0 = no deadline). */
  timeoutMs: number;
}

/** --max_body_size's default: generous for batched broadcasts, small enough to bound memory. */
export const DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024;

/** The whole body within this time: the listeners' own request deadline (runtime/*.ts). */
export const BODY_TIMEOUT_MS = 10_000;

export type BodyResult =
  | { ok: true; text: string }
  | { ok: false; reason: "too_large" }
  | { ok: false; reason: "timeout" }
  | { ok: false; reason: "failed"; error: unknown };

const decoder = new TextDecoder();

export async function readBody(req: Request, limits: BodyLimits): Promise<BodyResult> {
  const max = limits.maxBytes;
  if (max > 0) {
    const declared = req.headers.get("content-length");
    if (declared !== null && /^\d+$/.test(declared.trim()) && Number(declared) > max) {
      req.body?.cancel().catch(() => {});
      return { ok: false, reason: "too_large" };
    }
  }
  const body = req.body;
  if (!body) return { ok: true, text: "" };
  const reader = body.getReader();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline =
    limits.timeoutMs > 0
      ? new Promise<"timeout">((resolve) => {
          timer = setTimeout(() => resolve("timeout"), limits.timeoutMs);
        })
      : undefined;
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      const next = deadline ? await Promise.race([reader.read(), deadline]) : await reader.read();
      if (next === "timeout") {
        reader.cancel().catch(() => {});
        return { ok: false, reason: "timeout" };
      }
      if (next.done) break;
      size += next.value.byteLength;
      if (max > 0 && size > max) {
        reader.cancel().catch(() => {});
        return { ok: false, reason: "too_large" };
      }
      chunks.push(next.value);
    }
  } catch (error) {
    return { ok: false, reason: "failed", error };
  } finally {
    clearTimeout(timer);
  }
  if (chunks.length === 1) return { ok: true, text: decoder.decode(chunks[0]) };
  const all = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.byteLength;
  }
  return { ok: true, text: decoder.decode(all) };
}

/** 408 for a body that stopped arriving; the connection is closed (the rest may still come). */
export function bodyTimedOut(headers?: HeadersInit): Response {
  const h = new Headers(headers);
  h.set("connection", "close");
  return new Response(null, { status: 408, headers: h });
}

/**
 * 413 for a body over the cap. `Connection: close`, so the client stops sending and the server
 * does not read (or discard) the rest.
 */
export function tooLarge(headers?: HeadersInit): Response {
  const h = new Headers(headers);
  h.set("connection", "close");
  h.set("content-type", "text/plain");
  return new Response("request body too large\n", { status: 413, headers: h });
}

/**
 * readBody for a route, logging its failures once per burst: a flood of stalled bodies timing out
 * together (or a client sending oversized ones) makes one line, not one per request.
 */
export function bodyReader(log: Logger, maxBytes: number): (req: Request) => Promise<BodyResult> {
  const failed = new BurstLog(log, { recovered: "request bodies are read again", countKey: "failed_reads" });
  const refused = new BurstLog(log, {
    level: "warn",
    recovered: "request bodies within --max_body_size again",
    countKey: "refused_bodies",
  });
  return async (req) => {
    const read = await readBody(req, { maxBytes, timeoutMs: BODY_TIMEOUT_MS });
    if (read.ok) {
      failed.success();
      refused.success();
    } else if (read.reason === "too_large") {
      refused.failure("request body too large", { limit: maxBytes });
    } else {
      failed.failure("failed to read request body", {
        error: read.reason === "failed" ? read.error : "timed out",
      });
    }
    return read;
  };
}
