// Rails ActiveSupport::MessageVerifier, the format Rails, turbo-rails, CableReady and the AnyCable
// SDKs sign stream names with: base64(JSON(value)) + "--" + lowercase hex HMAC-SHA256(key, base64).
import { Buffer } from "node:buffer";
import { createHmac, timingSafeEqual } from "node:crypto";

/** Signed names longer than this are refused before any hashing (a stream name is short). */
export const MAX_SIGNED_LENGTH = 8192;

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
/** What `OpenSSL::HMAC.hexdigest` / Go's `%x` produce for SHA-256: nothing else can match. */
const HEX_DIGEST = /^[0-9a-f]{64}$/;

export type Verified = { ok: true; value: unknown } | { ok: false; error: string };

export class MessageVerifier {
  private readonly key: string;

  /** An empty key verifies nothing (anycable-go would accept names signed with the empty key). */
  constructor(key: string) {
    this.key = key;
  }

  get enabled(): boolean {
    return this.key !== "";
  }

  /** Signs a value the way Rails does; used by tests and by anyone embedding anycable-ts. */
  generate(value: unknown): string {
    const encoded = Buffer.from(JSON.stringify(value), "utf8").toString("base64");
    return `${encoded}--${this.digest(encoded)}`;
  }

  /** Never throws: every malformed input is a verification failure. */
  verified(message: string): Verified {
    if (!this.enabled) return { ok: false, error: "no key to verify with" };
    if (typeof message !== "string" || message === "") return { ok: false, error: "message is empty" };
    if (message.length > MAX_SIGNED_LENGTH) return { ok: false, error: "message is too long" };
    const parts = message.split("--");
    if (parts.length !== 2) return { ok: false, error: `message must contain 2 parts, got ${parts.length}` };
    const [data, digest] = parts as [string, string];
    if (!this.validDigest(data, digest)) return { ok: false, error: "invalid signature" };
    // Past this point the data was produced by the key holder; still decode it strictly, as
    // Go's StdEncoding does, instead of Buffer's skip-what-you-cannot-read decoding.
    if (data.length % 4 !== 0 || !BASE64.test(data)) return { ok: false, error: "invalid base64" };
    const json = new TextDecoder().decode(Buffer.from(data, "base64"));
    try {
      return { ok: true, value: JSON.parse(json) as unknown };
    } catch {
      return { ok: false, error: "payload is not JSON" };
    }
  }

  private digest(data: string): string {
    return createHmac("sha256", this.key).update(data).digest("hex");
  }

  /**
   * The shape check looks only at the client's input; the comparison with the expected digest is
   * constant-time, so timing reveals nothing about the key.
   */
  private validDigest(data: string, digest: string): boolean {
    if (!HEX_DIGEST.test(digest)) return false;
    return timingSafeEqual(Buffer.from(this.digest(data), "ascii"), Buffer.from(digest, "ascii"));
  }
}
