// Option rows: OCPP 1.6J (AnyCable Pro's EV charging station support: stations at
// --ocpp_path/{station_id}, translated into Action Cable commands on the OCPP channel).
import type { Config, OptionSpec } from "../../config/schema.ts";

export const OCPP_OPTIONS = [
  {
    name: "ocpp_path",
    key: "ocpp_path",
    type: "string",
    default: "",
    env: ["ANYCABLE_OCPP_PATH"],
    toml: "ocpp.path",
    category: "OCPP:",
    description:
      "WebSocket endpoint path prefix to accept OCPP connections (stations at <path>/{station_id}; empty: off)",
    hidden: false,
    deprecated: null,
    served: true,
    // AnyCable Pro's; OSS anycable-go has no such flag
    extension: true,
  },
  {
    name: "ocpp_channel",
    key: "ocpp_channel",
    type: "string",
    default: "OCPPChannel",
    env: ["ANYCABLE_OCPP_CHANNEL"],
    toml: "ocpp.channel",
    category: "OCPP:",
    description: "Action Cable channel class name to use at the Ruby side to manage OCPP connections",
    hidden: false,
    deprecated: null,
    served: true,
    extension: true,
  },
  {
    name: "ocpp_heartbeat_interval",
    key: "ocpp_heartbeat_interval",
    type: "int",
    default: 30,
    env: ["ANYCABLE_OCPP_HEARTBEAT_INTERVAL"],
    toml: "ocpp.heartbeat_interval",
    category: "OCPP:",
    description:
      "Default heartbeat interval in seconds (the interval of the default BootNotification answer)",
    hidden: false,
    deprecated: null,
    served: true,
    min: 1,
    extension: true,
  },
  {
    name: "ocpp_granular_actions",
    key: "ocpp_granular_actions",
    type: "bool",
    default: true,
    env: ["ANYCABLE_OCPP_GRANULAR_ACTIONS"],
    toml: "ocpp.granular_actions",
    category: "OCPP:",
    description:
      'Translate each OCPP command into its own channel action ("BootNotification" -> #boot_notification); false: all go to #receive',
    hidden: false,
    deprecated: null,
    served: true,
    extension: true,
  },
] as const satisfies readonly OptionSpec[];

export interface Options {
  /** A path is set (the endpoint is off when it is empty, as in AnyCable Pro). */
  enabled: boolean;
  /** The prefix, without a trailing slash: stations connect at `${path}/${station_id}`. */
  path: string;
  channel: string;
  heartbeatIntervalSec: number;
  granularActions: boolean;
}

export function fromConfig(c: Config): Options {
  return {
    enabled: c.ocpp_path !== "",
    // "/ocpp/" and "ocpp" both mean /ocpp; "/" puts stations at /{station_id}
    path: c.ocpp_path === "" ? "" : `/${c.ocpp_path.replace(/^\/+|\/+$/g, "")}`.replace(/^\/$/, ""),
    channel: c.ocpp_channel,
    heartbeatIntervalSec: c.ocpp_heartbeat_interval,
    granularActions: c.ocpp_granular_actions,
  };
}
