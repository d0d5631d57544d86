// Option rows: the live status page (anycable-ts only; anycable-go has nothing like it).
import type { Config, OptionSpec } from "../config/schema.ts";
import { deriveKey } from "../config/secrets.ts";

export const STATUS_OPTIONS = [
  {
    name: "status_path",
    key: "status_path",
    type: "string",
    default: "",
    env: ["ANYCABLE_STATUS_PATH"],
    toml: "status.path",
    category: "METRICS:",
    description:
      "Serve a live status page (plots of the last minutes' metrics) at this path of the main port, under a key derived from --secret (open with --public); empty: off",
    hidden: false,
    deprecated: null,
    served: true,
    check: (v) =>
      v === "" || (typeof v === "string" && /^\/[^?#\s]*$/.test(v) && v !== "/")
        ? null
        : "must be a path such as /status",
    extension: true,
  },
] as const satisfies readonly OptionSpec[];

/** The phrase the status page's key is derived with: HMAC-SHA256(secret, phrase), lowercase hex. */
export const STATUS_KEY_PHRASE = "status-cable";

export interface Options {
  /** "" = no status page. */
  path: string;
  /** Public mode: no key asked, and the "try it" panel (subscribe + publish) is offered. */
  public: boolean;
  /** The key requests must present; "" with `public` false means the page is not served. */
  key: string;
}

export function fromConfig(c: Config): Options {
  const secret = c.derived.secret;
  const isPublic = c.public;
  return {
    path: c.status_path.replace(/\/+$/, ""),
    public: isPublic,
    key: isPublic || !secret ? "" : deriveKey(secret, STATUS_KEY_PHRASE),
  };
}
