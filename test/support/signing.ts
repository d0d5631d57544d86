// Test-side signing, written from the documented algorithms rather than shared with src/, so a
// misunderstanding in the server cannot hide behind the same code in the tests.
import { Buffer } from "node:buffer";
import { createHmac } from "node:crypto";

/** Rails MessageVerifier, as the signed-streams docs spell it out (Node.js version). */
export function signStream(name: unknown, key: string): string {
  const encoded = Buffer.from(JSON.stringify(name)).toString("base64");
  const digest = createHmac("sha256", key).update(encoded).digest("hex");
  return `${encoded}--${digest}`;
}

function b64url(data: string | Buffer): string {
  return Buffer.from(data).toString("base64url");
}

/** A compact JWT with any header, payload and HMAC hash: also for tokens jose refuses to make. */
export function rawJwt(
  header: Record<string, unknown>,
  payload: unknown,
  key: string,
  hash: "sha256" | "sha384" | "sha512" | "none" = "sha256",
): string {
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
  if (hash === "none") return `${input}.`;
  return `${input}.${b64url(createHmac(hash, key).update(input).digest())}`;
}

export const nowSec = (): number => Math.floor(Date.now() / 1000);
