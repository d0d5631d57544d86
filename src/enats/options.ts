// Option rows: The embedded NATS server.
import { tmpdir } from "node:os";
import { join } from "node:path";
import { nanoid } from "../config/derive.ts";
import type { Config, OptionSpec } from "../config/schema.ts";

export const ENATS_OPTIONS = [
  {
    name: "embed_nats",
    key: "embed_nats",
    type: "bool",
    default: false,
    env: ["ANYCABLE_EMBED_NATS"],
    toml: "embedded_nats.enabled",
    category: "EMBEDDED NATS:",
    description: "Start an embedded NATS server and use it for pub/sub",
    hidden: false,
    deprecated: null,
    served: true,
  },
  {
    name: "enats_addr",
    key: "enats_addr",
    type: "string",
    default: "nats://127.0.0.1:4222",
    env: ["ANYCABLE_ENATS_ADDR"],
    toml: "embedded_nats.service_addr",
    category: "EMBEDDED NATS:",
    description: "Client listen address of the embedded NATS server",
    hidden: true,
    deprecated: null,
    served: true,
  },
  {
    name: "enats_cluster",
    key: "enats_cluster",
    type: "string",
    default: "",
    env: ["ANYCABLE_ENATS_CLUSTER"],
    toml: "embedded_nats.cluster_addr",
    category: "EMBEDDED NATS:",
    description: "Cluster listen address of the embedded NATS server",
    hidden: true,
    deprecated: null,
    served: true,
  },
  {
    name: "enats_cluster_name",
    key: "enats_cluster_name",
    type: "string",
    default: "anycable-cluster",
    env: ["ANYCABLE_ENATS_CLUSTER_NAME"],
    toml: "embedded_nats.cluster_name",
    category: "EMBEDDED NATS:",
    description: "Name of the embedded NATS cluster",
    hidden: false,
    deprecated: null,
    served: true,
  },
  {
    name: "enats_cluster_routes",
    key: "enats_cluster_routes",
    type: "list",
    default: [],
    env: ["ANYCABLE_ENATS_CLUSTER_ROUTES"],
    toml: "embedded_nats.routes",
    category: "EMBEDDED NATS:",
    description: "Comma-separated addresses of other cluster members",
    hidden: false,
    deprecated: null,
    served: true,
  },
  {
    name: "enats_gateway",
    key: "enats_gateway",
    type: "string",
    default: "",
    env: ["ANYCABLE_ENATS_GATEWAY"],
    toml: "embedded_nats.gateway_addr",
    category: "EMBEDDED NATS:",
    description: "Gateway listen address of the embedded NATS server",
    hidden: true,
    deprecated: null,
    served: true,
  },
  {
    name: "enats_gateways",
    key: "enats_gateways",
    type: "list",
    default: [],
    env: ["ANYCABLE_ENATS_GATEWAYS"],
    toml: "embedded_nats.gateways",
    category: "EMBEDDED NATS:",
    description: "Known gateways separated by semicolons, each as name:url[,url...] (e.g. a:gw1,gw2;b:gw3)",
    hidden: false,
    deprecated: null,
    served: true,
    separator: ";",
  },
  {
    name: "enats_gateway_advertise",
    key: "enats_gateway_advertise",
    type: "string",
    default: "",
    env: ["ANYCABLE_ENATS_GATEWAY_ADVERTISE"],
    toml: "embedded_nats.gateway_advertise",
    category: "EMBEDDED NATS:",
    description: "Gateway address advertised to other clusters",
    hidden: false,
    deprecated: null,
    served: true,
  },
  {
    name: "enats_store_dir",
    key: "enats_store_dir",
    type: "string",
    default: "",
    env: ["ANYCABLE_ENATS_STORE_DIR"],
    toml: "embedded_nats.jetstream_store_dir",
    category: "EMBEDDED NATS:",
    description: "Directory for JetStream data of the embedded server",
    hidden: true,
    deprecated: null,
    served: true,
  },
  {
    name: "enats_server_name",
    key: "enats_server_name",
    type: "string",
    default: "",
    env: ["ANYCABLE_ENATS_SERVER_NAME"],
    toml: "embedded_nats.name",
    category: "EMBEDDED NATS:",
    description: "Unique name of the embedded NATS server (JetStream needs one; generated when empty)",
    hidden: false,
    deprecated: null,
    served: true,
  },
  {
    name: "enats_debug",
    key: "enats_debug",
    type: "bool",
    default: false,
    env: ["ANYCABLE_ENATS_DEBUG"],
    toml: "embedded_nats.debug",
    category: "EMBEDDED NATS:",
    description: "Show the embedded NATS server's own logs",
    hidden: true,
    deprecated: null,
    served: true,
  },
  {
    name: "enats_trace",
    key: "enats_trace",
    type: "bool",
    default: false,
    env: ["ANYCABLE_ENATS_TRACE"],
    toml: "embedded_nats.trace",
    category: "EMBEDDED NATS:",
    description: "Show protocol traces of the embedded NATS server",
    hidden: true,
    deprecated: null,
    served: true,
  },
  {
    name: "enats_max_payload",
    key: "enats_max_payload",
    type: "int",
    default: 0,
    env: ["ANYCABLE_ENATS_MAX_PAYLOAD"],
    toml: "embedded_nats.max_payload",
    category: "EMBEDDED NATS:",
    description: "Largest message the embedded NATS server accepts (bytes; 0 keeps the 1 MiB NATS default)",
    hidden: false,
    deprecated: null,
    served: true,
  },
  {
    name: "enats_jetstream",
    key: "enats_jetstream",
    type: "bool",
    default: false,
    env: [],
    toml: "embedded_nats.jetstream",
    category: "EMBEDDED NATS:",
    description: "Enable JetStream in the embedded NATS server (the nats broker turns it on)",
    hidden: true,
    deprecated: null,
    served: true,
    flag: false,
  },
  {
    name: "enats_jetstream_ready_timeout",
    key: "enats_jetstream_ready_timeout",
    type: "int",
    default: 30,
    env: [],
    toml: "embedded_nats.jetstream_ready_timeout",
    category: "EMBEDDED NATS:",
    description: "How long to wait for JetStream to become ready (seconds)",
    hidden: true,
    deprecated: null,
    served: false,
    flag: false,
  },
  {
    name: "enats_bin",
    key: "enats_bin",
    type: "string",
    default: "nats-server",
    env: ["ANYCABLE_ENATS_BIN"],
    toml: "embedded_nats.bin",
    category: "EMBEDDED NATS:",
    description:
      "The nats-server executable anycable-ts runs as the embedded NATS server (a path, or a name looked up on PATH)",
    hidden: false,
    deprecated: null,
    served: true,
    extension: true,
  },
] as const satisfies readonly OptionSpec[];

export interface Options {
  enabled: boolean;
  bin: string;
  serviceAddr: string;
  clusterAddr: string;
  clusterName: string;
  routes: string[];
  gatewayAddr: string;
  gatewayAdvertise: string;
  gateways: string[];
  /** As given, or generated as anycable-go generates it (unique per start). */
  serverName: string;
  /** JetStream's directory: as given, else <tmp>/nats-data/<server name> as anycable-go. */
  storeDir: string;
  /** 0 keeps the NATS default (1 MiB). */
  maxPayload: number;
  debug: boolean;
  trace: boolean;
  /** On with embedded_nats.jetstream, and whenever the nats broker is configured (as anycable-go). */
  jetstream: boolean;
}

/** anycable-go's generated name: the service address with ':' -> '-' and '/' dropped, plus 3 random characters. */
export function generatedServerName(serviceAddr: string): string {
  return `${serviceAddr.replaceAll(":", "-").replaceAll("/", "")}-${nanoid(3)}`;
}

export function fromConfig(c: Config): Options {
  const serverName = c.enats_server_name || generatedServerName(c.enats_addr);
  return {
    enabled: c.embed_nats,
    bin: c.enats_bin,
    serviceAddr: c.enats_addr,
    clusterAddr: c.enats_cluster,
    clusterName: c.enats_cluster_name,
    routes: [...c.enats_cluster_routes],
    gatewayAddr: c.enats_gateway,
    gatewayAdvertise: c.enats_gateway_advertise,
    gateways: [...c.enats_gateways],
    serverName,
    storeDir: c.enats_store_dir || join(tmpdir(), "nats-data", serverName),
    maxPayload: c.enats_max_payload,
    debug: c.enats_debug,
    trace: c.enats_trace,
    jetstream: c.enats_jetstream || c.broker === "nats",
  };
}
