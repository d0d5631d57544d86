// Option rows: The NATS connection shared by the NATS broadcaster, pub/sub and broker.
import type { Config, OptionSpec } from "../config/schema.ts";

export const NATS_OPTIONS = [
  {
    name: "nats_servers",
    key: "nats_servers",
    type: "string",
    default: "nats://127.0.0.1:4222",
    env: ["ANYCABLE_NATS_SERVERS"],
    toml: "nats.servers",
    category: "NATS:",
    description: "Comma-separated NATS server URLs",
    hidden: false,
    deprecated: null,
    served: true,
  },
  {
    name: "nats_dont_randomize_servers",
    key: "nats_dont_randomize_servers",
    type: "bool",
    default: false,
    env: ["ANYCABLE_NATS_DONT_RANDOMIZE_SERVERS"],
    toml: "nats.dont_randomize_servers",
    category: "NATS:",
    description: "Connect to NATS servers in the given order instead of a random one",
    hidden: true,
    deprecated: null,
    served: true,
  },
  {
    name: "nats_max_reconnect_attempts",
    key: "nats_max_reconnect_attempts",
    type: "int",
    default: 5,
    env: [],
    toml: "nats.max_reconnect_attempts",
    category: "NATS:",
    description: "How many times to retry a lost NATS connection",
    hidden: true,
    deprecated: null,
    served: true,
    flag: false,
  },
] as const satisfies readonly OptionSpec[];

export interface Options {
  /** Server URLs without credentials, in the given order. */
  servers: string[];
  /** Credentials found in the URLs (nats.go reads them from there; nats.js needs them apart). */
  user?: string;
  pass?: string;
  token?: string;
  dontRandomize: boolean;
  /** Per server, as nats.go's MaxReconnects: negative means forever. */
  maxReconnectAttempts: number;
}

/**
 * Splits anycable-go's comma-separated `nats_servers` (embedded NATS' address when only it is
 * set) and takes the credentials out of the URLs: `nats://user:pass@host` or `nats://token@host`.
 */
export function fromConfig(c: Config): Options {
  return parseServers(c.derived.natsServers, c.nats_dont_randomize_servers, c.nats_max_reconnect_attempts);
}

export function parseServers(list: string, dontRandomize = false, maxReconnectAttempts = 5): Options {
  const opts: Options = { servers: [], dontRandomize, maxReconnectAttempts };
  for (const raw of list.split(",")) {
    const entry = raw.trim();
    if (entry === "") continue;
    const withScheme = entry.includes("://") ? entry : `nats://${entry}`;
    let url: URL;
    try {
      url = new URL(withScheme);
    } catch {
      opts.servers.push(entry);
      continue;
    }
    if (url.username !== "" && opts.user === undefined && opts.token === undefined) {
      const user = decodeURIComponent(url.username);
      if (url.password !== "") {
        opts.user = user;
        opts.pass = decodeURIComponent(url.password);
      } else {
        opts.token = user;
      }
    }
    url.username = "";
    url.password = "";
    opts.servers.push(`${url.protocol}//${url.host}`);
  }
  return opts;
}

/** The server list as it may be logged: never with credentials. */
export function describeServers(opts: Options): string {
  return opts.servers.join(",");
}
