// Option rows: The WebSocket transport.
import type { Config, OptionSpec } from "../../config/schema.ts";

export const WS_OPTIONS = [
  {
    name: "path",
    key: "path",
    type: "list",
    default: ["/cable"],
    env: ["ANYCABLE_PATH"],
    toml: "ws.paths",
    category: "ANYCABLE-GO SERVER:",
    description: "WebSocket endpoint path; several paths may be given separated by commas",
    hidden: false,
    deprecated: null,
    served: true,
  },
  {
    name: "read_buffer_size",
    key: "read_buffer_size",
    type: "int",
    default: 1024,
    env: ["ANYCABLE_READ_BUFFER_SIZE"],
    toml: "ws.read_buffer_size",
    category: "WEBSOCKETS:",
    description: "Size of the WebSocket read buffer (bytes)",
    hidden: true,
    deprecated: null,
    served: true,
  },
  {
    name: "write_buffer_size",
    key: "write_buffer_size",
    type: "int",
    default: 1024,
    env: ["ANYCABLE_WRITE_BUFFER_SIZE"],
    toml: "ws.write_buffer_size",
    category: "WEBSOCKETS:",
    description: "Size of the WebSocket write buffer (bytes)",
    hidden: true,
    deprecated: null,
    served: true,
  },
  {
    name: "max_message_size",
    key: "max_message_size",
    type: "int",
    default: 65536,
    env: ["ANYCABLE_MAX_MESSAGE_SIZE"],
    toml: "ws.max_message_size",
    category: "WEBSOCKETS:",
    description: "Largest incoming WebSocket message accepted (bytes)",
    hidden: true,
    deprecated: null,
    served: true,
  },
  {
    name: "enable_ws_compression",
    key: "enable_ws_compression",
    type: "bool",
    default: false,
    env: ["ANYCABLE_ENABLE_WS_COMPRESSION"],
    toml: "ws.enable_compression",
    category: "WEBSOCKETS:",
    description: "Enable experimental per-message deflate compression",
    hidden: true,
    deprecated: null,
    served: true,
  },
] as const satisfies readonly OptionSpec[];

export interface Options {
  /** WebSocket paths (chi-style patterns). */
  paths: string[];
  /** Frames above this size close the connection with 1009 (0 = no limit). */
  maxMessageSize: number;
  /** Negotiate permessage-deflate (--enable_ws_compression). */
  compression: boolean;
}

export function fromConfig(c: Config): Options {
  return {
    paths: c.derived.paths,
    maxMessageSize: c.max_message_size,
    compression: c.enable_ws_compression,
  };
}
