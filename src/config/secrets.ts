import { createHmac } from "node:crypto";

/**
 * Derives a component key from the application secret the way anycable-go
 * (and the AnyCable Ruby/JS SDKs) do: lowercase hex HMAC-SHA256 of a fixed
 * phrase such as "broadcast-cable", "rpc-cable" or "api-cable". Both sides
 * compute it independently, so the algorithm must not change.
 */
export function deriveKey(secret: string, phrase: string): string {
  return createHmac("sha256", secret).update(phrase).digest("hex");
}

export const BROADCAST_KEY_PHRASE = "broadcast-cable";
export const RPC_KEY_PHRASE = "rpc-cable";
export const API_KEY_PHRASE = "api-cable";
