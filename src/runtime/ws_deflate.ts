// permessage-deflate (RFC 7692) for our own WebSocket framing (the Deno listener). Both directions
// run without context takeover: the response always carries server_ and client_no_context_takeover
// (a server may ask for both whatever the client offered, as Bun does), so every message is
// compressed and inflated on its own. That keeps no zlib state per connection (a streaming
// inflater holds ~40 KB) and lets one compressed copy of a broadcast serve every subscriber.
import { Buffer } from "node:buffer";
import { constants, deflateRawSync, inflateRawSync } from "node:zlib";

/** The response header value for an accepted offer. */
export const DEFLATE_RESPONSE = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

const KNOWN_PARAMS = new Set([
  "server_no_context_takeover",
  "client_no_context_takeover",
  "server_max_window_bits",
  "client_max_window_bits",
]);

/**
 * Accepts the first permessage-deflate offer we can honour; undefined when there is none (the
 * connection then runs uncompressed). An offer limiting our window below 15 bits is declined:
 * one compressed copy serves every client, so every client must take the full window.
 */
export function negotiateDeflate(header: string | undefined): string | undefined {
  if (!header) return undefined;
  for (const offer of header.split(",")) {
    const [name, ...params] = offer.split(";").map((p) => p.trim());
    if (name?.toLowerCase() !== "permessage-deflate") continue;
    let ok = true;
    const seen = new Set<string>();
    for (const p of params) {
      if (p === "") continue;
      const [key = "", raw] = p.split("=").map((x) => x.trim());
      const k = key.toLowerCase();
      const value = raw?.replace(/^"(.*)"$/, "$1");
      if (!KNOWN_PARAMS.has(k) || seen.has(k)) ok = false;
      seen.add(k);
      if (k === "server_max_window_bits" && value !== "15") ok = false;
      if (k === "client_max_window_bits" && value !== undefined && !/^(8|9|1[0-5])$/.test(value)) ok = false;
      if ((k === "server_no_context_takeover" || k === "client_no_context_takeover") && value !== undefined) {
        ok = false;
      }
    }
    if (ok) return DEFLATE_RESPONSE;
  }
  return undefined;
}

/** Messages below this size go uncompressed (RSV1 clear): deflate would barely shrink them. */
export const DEFLATE_MIN_SIZE = 128;

const TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff]);

/** A message payload compressed, the trailing 00 00 ff ff removed (RFC 7692 7.2.1). */
export function deflatePayload(payload: Uint8Array): Buffer {
  const out = deflateRawSync(payload, { finishFlush: constants.Z_SYNC_FLUSH });
  return out.subarray(0, out.length - 4);
}

export type Inflated = { ok: true; data: Buffer } | { ok: false; tooBig: boolean; reason: string };

/** A compressed message's payload inflated, at most `maxSize` bytes (0: no limit). */
export function inflatePayload(payload: Buffer, maxSize: number): Inflated {
  try {
    const data = inflateRawSync(Buffer.concat([payload, TAIL]), {
      finishFlush: constants.Z_SYNC_FLUSH,
      ...(maxSize > 0 ? { maxOutputLength: maxSize } : {}),
    });
    return { ok: true, data };
  } catch (err) {
    const tooBig = (err as { code?: string }).code === "ERR_BUFFER_TOO_LARGE";
    return { ok: false, tooBig, reason: tooBig ? "message too big" : "invalid compressed data" };
  }
}
