// A raw WebSocket client that records every frame, for wire-level assertions.
import WebSocket from "ws";
import { waitFor } from "./wait.ts";

export interface RawClient {
  ws: WebSocket;
  messages: unknown[];
  raw: string[];
  protocol: string;
  closeCode?: number;
  closeReason?: string;
  send(obj: unknown): void;
  sendRaw(data: string | Buffer): void;
  next(
    match: (msg: Record<string, unknown>) => boolean,
    what: string,
    timeoutMs?: number,
  ): Promise<Record<string, unknown>>;
  waitClosed(timeoutMs?: number): Promise<number>;
  close(): void;
}

export function connect(
  url: string,
  protocols: string | string[] = "actioncable-v1-json",
  headers?: Record<string, string>,
): Promise<RawClient> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, { headers });
    const client: RawClient = {
      ws,
      messages: [],
      raw: [],
      protocol: "",
      send: (obj) => ws.send(JSON.stringify(obj)),
      sendRaw: (data) => ws.send(data),
      async next(match, what, timeoutMs = 10_000) {
        let seen = 0;
        return waitFor(
          () => {
            for (; seen < client.messages.length; seen++) {
              const m = client.messages[seen] as Record<string, unknown>;
              if (m && typeof m === "object" && match(m)) {
                client.messages.splice(seen, 1);
                client.raw.splice(seen, 1);
                return m;
              }
            }
            return undefined;
          },
          `${what}; got ${JSON.stringify(client.messages)}`,
          timeoutMs,
          5,
        );
      },
      waitClosed: (timeoutMs = 10_000) => waitFor(() => client.closeCode, "socket close", timeoutMs, 5),
      close: () => ws.close(),
    };
    ws.on("message", (data) => {
      const text = data.toString();
      client.raw.push(text);
      try {
        client.messages.push(JSON.parse(text));
      } catch {
        client.messages.push(text);
      }
    });
    ws.on("close", (code, reason) => {
      client.closeCode = code;
      client.closeReason = reason.toString();
    });
    ws.on("open", () => {
      client.protocol = ws.protocol;
      resolve(client);
    });
    ws.on("error", reject);
    ws.on("unexpected-response", (_req, res) => reject(new Error(`unexpected response ${res.statusCode}`)));
  });
}
