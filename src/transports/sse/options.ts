// Option rows: The Server-Sent Events transport.
import type { Config, OptionSpec } from "../../config/schema.ts";

export const SSE_OPTIONS = [
  {
    name: "sse",
    key: "sse",
    type: "bool",
    default: false,
    env: ["ANYCABLE_SSE"],
    toml: "sse.enabled",
    category: "SERVER-SENT EVENTS:",
    description: "Serve Server-Sent Events clients",
    hidden: false,
    deprecated: null,
    served: true,
  },
  {
    name: "sse_path",
    key: "sse_path",
    type: "string",
    default: "/events",
    env: ["ANYCABLE_SSE_PATH"],
    toml: "sse.path",
    category: "SERVER-SENT EVENTS:",
    description: "Path of the Server-Sent Events endpoint",
    hidden: false,
    deprecated: null,
    served: true,
  },
] as const satisfies readonly OptionSpec[];

export interface Options {
  enabled: boolean;
  path: string;
}

export function fromConfig(c: Config): Options {
  return { enabled: c.sse, path: c.sse_path };
}
