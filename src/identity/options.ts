// Option rows: Connection identification without RPC (JWT).
import type { Config, OptionSpec } from "../config/schema.ts";

export const IDENTITY_OPTIONS = [
  {
    name: "jwt_id_key",
    key: "jwt_id_key",
    type: "string",
    default: "",
    env: ["ANYCABLE_JWT_ID_KEY"],
    toml: null,
    category: "JWT:",
    description: "[Deprecated] Old name of jwt_secret",
    hidden: true,
    deprecated: "jwt_secret",
    served: true,
  },
  {
    name: "jwt_secret",
    key: "jwt_secret",
    type: "string",
    default: "",
    env: ["ANYCABLE_JWT_SECRET"],
    toml: "jwt.secret",
    category: "JWT:",
    description: "Key used to verify JWT tokens (derived from secret when empty)",
    hidden: false,
    deprecated: null,
    served: true,
  },
  {
    name: "jwt_id_param",
    key: "jwt_id_param",
    type: "string",
    default: "",
    env: ["ANYCABLE_JWT_ID_PARAM"],
    toml: null,
    category: "JWT:",
    description: "[Deprecated] Old name of jwt_param",
    hidden: true,
    deprecated: "jwt_param",
    served: true,
  },
  {
    name: "jwt_param",
    key: "jwt_param",
    type: "string",
    default: "jid",
    env: ["ANYCABLE_JWT_PARAM"],
    toml: "jwt.param",
    category: "JWT:",
    description: "Query parameter (or X-<param> header) that carries the token",
    hidden: false,
    deprecated: null,
    served: true,
  },
  {
    name: "jwt_id_enforce",
    key: "jwt_id_enforce",
    type: "bool",
    default: false,
    env: ["ANYCABLE_JWT_ID_ENFORCE"],
    toml: null,
    category: "JWT:",
    description: "[Deprecated] Old name of enforce_jwt",
    hidden: true,
    deprecated: "enforce_jwt",
    served: true,
  },
  {
    name: "enforce_jwt",
    key: "enforce_jwt",
    type: "bool",
    default: false,
    env: ["ANYCABLE_ENFORCE_JWT"],
    toml: "jwt.force",
    category: "JWT:",
    description: "Reject connections that carry no token",
    hidden: false,
    deprecated: null,
    served: true,
  },
] as const satisfies readonly OptionSpec[];

export interface Options {
  /** HMAC key for JWTs; "" turns JWT identification off. */
  jwtSecret: string;
  /** Query parameter carrying the token; the header is `X-<param>`. */
  jwtParam: string;
  /** Refuse connections that carry no token. */
  enforceJwt: boolean;
  /** Public mode / --noauth: every tokenless connection is accepted. */
  skipAuth: boolean;
}

export function fromConfig(c: Config): Options {
  const d = c.derived;
  return { jwtSecret: d.jwtSecret, jwtParam: d.jwtParam, enforceJwt: d.enforceJwt, skipAuth: d.skipAuth };
}
