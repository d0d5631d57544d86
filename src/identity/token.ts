// Where a WebSocket client may put its JWT besides the query string: an `X-<param>` header, or a
// `anycable-token.<token>` sub-protocol for browsers that cannot set headers. Runtime-free.

export const TOKEN_PROTOCOL_PREFIX = "anycable-token.";

/**
 * The token a WebSocket upgrade carries outside its URL, as anycable-go's headers extractor reads
 * it: the header wins over the sub-protocol. "" when there is none. The token sub-protocol is never
 * selected (see selectProtocol), so it is not echoed back.
 */
export function tokenFromUpgrade(headers: Headers, headerName: string): string {
  const header = headers.get(headerName);
  if (header) return header;
  const offered = headers.get("sec-websocket-protocol");
  if (!offered?.includes(TOKEN_PROTOCOL_PREFIX)) return "";
  for (const raw of offered.split(",")) {
    const p = raw.trim();
    if (p.startsWith(TOKEN_PROTOCOL_PREFIX)) return p.slice(TOKEN_PROTOCOL_PREFIX.length);
  }
  return "";
}
