// gRPC target strings as anycable-go (grpc-go) accepts them:
//   host:port | grpc://host:port      one address, resolved by the OS when connecting
//   dns:///host:port                  every A/AAAA record, round-robin, re-resolved periodically
//   grpc-list://h1:p1,h2:p2           a fixed list, round-robin (anycable-go's own resolver)

export type GrpcTarget =
  | { kind: "static"; addresses: string[] }
  | { kind: "dns"; host: string; port: number };

const DEFAULT_DNS_PORT = 443; // grpc-go's default when a dns target has no port

export function parseGrpcTarget(raw: string): GrpcTarget {
  const target = raw.trim();
  if (target.startsWith("grpc-list://")) {
    const addresses = target
      .slice("grpc-list://".length)
      .split(/[,/]/)
      .map((a) => a.trim())
      .filter((a) => a !== "");
    if (addresses.length === 0) throw new Error(`invalid RPC host: ${raw}`);
    for (const a of addresses) splitHostPort(a, raw);
    return { kind: "static", addresses };
  }
  if (target.startsWith("dns:")) {
    // dns:host:port, dns:///host:port or dns://resolver/host:port (the resolver is not supported:
    // the system resolver is used, as it is for every other name)
    let rest = target.slice(4);
    if (rest.startsWith("//")) rest = rest.slice(rest.indexOf("/", 2) + 1);
    const { host, port } = splitHostPort(rest, raw, DEFAULT_DNS_PORT);
    return { kind: "dns", host, port };
  }
  const plain = target.startsWith("grpc://") ? target.slice("grpc://".length) : target;
  if (plain.includes("://")) throw new Error(`unsupported RPC host scheme: ${raw}`);
  const { host, port } = splitHostPort(plain.replace(/\/+$/, ""), raw, DEFAULT_DNS_PORT);
  return { kind: "static", addresses: [joinHostPort(host, port)] };
}

export function splitHostPort(
  address: string,
  raw: string,
  defaultPort?: number,
): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+))(?::(\d+))?$/.exec(address);
  if (!m) throw new Error(`invalid RPC host: ${raw}`);
  const host = m[1] ?? m[2]!;
  const port = m[3] !== undefined ? Number(m[3]) : defaultPort;
  if (port === undefined || port <= 0 || port > 65535) throw new Error(`invalid RPC host (port): ${raw}`);
  return { host, port };
}

/** `host:port` with IPv6 literals bracketed, for URLs. */
export function joinHostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}
