// Option rows: GraphQL over WebSocket (AnyCable Pro's Apollo support: graphql-ws and the legacy
// subscriptions-transport-ws protocol, translated into Action Cable commands on a GraphQL channel).
import type { Config, OptionSpec } from "../../config/schema.ts";

export const GRAPHQL_OPTIONS = [
  {
    name: "graphql_path",
    key: "graphql_path",
    type: "string",
    default: "",
    env: ["ANYCABLE_GRAPHQL_PATH"],
    toml: "graphql.path",
    category: "GRAPHQL:",
    description:
      "Path of the GraphQL WebSocket endpoint (graphql-ws and subscriptions-transport-ws; empty: off)",
    hidden: false,
    deprecated: null,
    served: true,
    // AnyCable Pro's; OSS anycable-go has no such flag
    extension: true,
  },
  {
    name: "graphql_channel",
    key: "graphql_channel",
    type: "string",
    default: "GraphqlChannel",
    env: ["ANYCABLE_GRAPHQL_CHANNEL"],
    toml: "graphql.channel",
    category: "GRAPHQL:",
    description: "GraphQL Ruby channel class name",
    hidden: false,
    deprecated: null,
    served: true,
    extension: true,
  },
  {
    name: "graphql_action",
    key: "graphql_action",
    type: "string",
    default: "execute",
    env: ["ANYCABLE_GRAPHQL_ACTION"],
    toml: "graphql.action",
    category: "GRAPHQL:",
    description: "GraphQL Ruby channel action name",
    hidden: false,
    deprecated: null,
    served: true,
    extension: true,
  },
] as const satisfies readonly OptionSpec[];

export interface Options {
  /** A path is set (the endpoint is off when it is empty, as in AnyCable Pro). */
  enabled: boolean;
  path: string;
  channel: string;
  action: string;
  /** The JWT query parameter when JWT identification is on ("" otherwise): also read from connection params. */
  jwtParam: string;
}

export function fromConfig(c: Config): Options {
  return {
    enabled: c.graphql_path !== "",
    path: c.graphql_path,
    channel: c.graphql_channel,
    action: c.graphql_action,
    jwtParam: c.derived.jwtSecret !== "" ? c.derived.jwtParam : "",
  };
}
