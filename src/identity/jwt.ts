// JWT identification (anycable-go's identity/jwt.go): a token signed with an HMAC key carries the
// connection identifiers in its `ext` claim, so the connection needs no Connect RPC.
import { jwtVerify } from "jose";
import type { Logger } from "../log/logger.ts";
import type { ConnectResult, SessionEnv } from "../node/controller.ts";
import { DisconnectReason, disconnectMessage, welcomeMessage } from "../protocols/actioncable.ts";
import type { Identifier } from "./identifier.ts";

/** Longer tokens are refused unparsed: real ones are a few hundred bytes, and this bounds the work. */
export const MAX_TOKEN_LENGTH = 8192;

/** anycable-go accepts any HMAC method (golang-jwt's SigningMethodHMAC) and nothing else. */
const HMAC_ALGORITHMS = ["HS256", "HS384", "HS512"];

export interface JwtOptions {
  /** HMAC key (`--jwt_secret`, else `--secret`). */
  secret: string;
  /** Query parameter carrying the token; the header is `X-<param>` (`--jwt_param`). */
  param: string;
  /** Refuse connections without a token (`--enforce_jwt`). */
  enforce: boolean;
}

/** The env header the token travels in (query tokens are read from the URL). */
export function jwtHeaderName(param: string): string {
  return `x-${param}`.toLowerCase();
}

export type TokenVerdict =
  | { ok: true; identifiers: string }
  | { ok: false; reason: "token_expired" | "unauthorized"; error: string };

function refused(reason: "token_expired" | "unauthorized", error: string): TokenVerdict {
  return { ok: false, reason, error };
}

/**
 * Verifies a token; never throws. The signature is checked before the claims, so only a token
 * the key holder issued can be reported as expired.
 */
export async function verifyToken(token: string, key: Uint8Array): Promise<TokenVerdict> {
  if (token.length > MAX_TOKEN_LENGTH) return refused("unauthorized", "token is too long");
  let payload: Record<string, unknown>;
  try {
    ({ payload } = await jwtVerify(token, key, { algorithms: HMAC_ALGORITHMS }));
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (code === "ERR_JWT_EXPIRED") return refused("token_expired", "token has expired");
    return refused("unauthorized", err instanceof Error ? err.message : String(err));
  }
  // anycable-go fails the connection with an internal error here; a protocol refusal is kinder.
  if (typeof payload.ext !== "string") return refused("unauthorized", "token has no identifiers (ext)");
  return { ok: true, identifiers: payload.ext };
}

/** Reads the token from the `x-<param>` header (filled from the request) or the `?<param>=` query. */
export function tokenFromEnv(env: SessionEnv, headerName: string, param: string): string {
  const fromHeader = env.headers[headerName];
  if (fromHeader) return fromHeader;
  try {
    return new URL(env.url).searchParams.get(param) ?? "";
  } catch {
    return "";
  }
}

export class JwtIdentifier implements Identifier {
  private readonly key: Uint8Array;
  private readonly headerName: string;
  private readonly log: Logger;

  constructor(
    private readonly opts: JwtOptions,
    logger: Logger,
  ) {
    this.key = new TextEncoder().encode(opts.secret);
    this.headerName = jwtHeaderName(opts.param);
    this.log = logger.with({ context: "jwt" });
  }

  async identify(sid: string, env: SessionEnv): Promise<ConnectResult | null> {
    const token = tokenFromEnv(env, this.headerName, this.opts.param);
    if (token === "") {
      this.log.debug("no token is found", { sid });
      return this.opts.enforce ? failure(DisconnectReason.unauthorized) : null;
    }
    const verdict = await verifyToken(token, this.key);
    if (!verdict.ok) {
      // The error text comes from the verifier, never from the token itself.
      this.log.debug(verdict.reason === "token_expired" ? "token has expired" : "invalid token", {
        sid,
        error: verdict.error,
      });
      return failure(verdict.reason);
    }
    return {
      status: "success",
      identifiers: verdict.identifiers,
      transmissions: [welcomeMessage(sid)],
    };
  }
}

function failure(reason: string): ConnectResult {
  return { status: "failure", identifiers: "", transmissions: [disconnectMessage(reason, false)] };
}
