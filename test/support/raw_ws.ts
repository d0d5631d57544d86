// A hand-rolled WebSocket handshake over a TCP socket, for what real clients refuse to do
// (accept a handshake without a selected protocol) or must not do (stop reading).
import { connect, type Socket } from "node:net";

export interface RawUpgrade {
  socket: Socket;
  status: number;
  headers: Record<string, string>;
  /** Bytes received after the handshake response. */
  rest: Buffer;
}

export function maskedTextFrame(text: string): Buffer {
  const payload = Buffer.from(text);
  const mask = Buffer.from([1, 2, 3, 4]);
  const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!));
  let head: Buffer;
  if (payload.length < 126) head = Buffer.from([0x81, 0x80 | payload.length]);
  else {
    head = Buffer.from([0x81, 0x80 | 126, 0, 0]);
    head.writeUInt16BE(payload.length, 2);
  }
  return Buffer.concat([head, mask, masked]);
}

/** Reads the first unmasked server text frame out of `buf` (small frames only). */
export function firstTextFrame(buf: Buffer): string | undefined {
  if (buf.length < 2) return undefined;
  let len = buf[1]! & 0x7f;
  let offset = 2;
  if (len === 126) {
    if (buf.length < 4) return undefined;
    len = buf.readUInt16BE(2);
    offset = 4;
  }
  if (buf.length < offset + len) return undefined;
  return buf.subarray(offset, offset + len).toString();
}

export function rawUpgrade(port: number, path: string, protocols?: string): Promise<RawUpgrade> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    let buf = Buffer.alloc(0);
    let done = false;
    socket.on("error", reject);
    socket.on("connect", () => {
      socket.write(
        `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
          (protocols ? `Sec-WebSocket-Protocol: ${protocols}\r\n` : "") +
          "\r\n",
      );
    });
    socket.on("data", (d) => {
      buf = Buffer.concat([buf, d]);
      if (done) return;
      const end = buf.indexOf("\r\n\r\n");
      if (end < 0) return;
      done = true;
      const [statusLine, ...lines] = buf.subarray(0, end).toString().split("\r\n");
      const headers: Record<string, string> = {};
      for (const l of lines) {
        const i = l.indexOf(":");
        headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
      }
      const result: RawUpgrade = {
        socket,
        status: Number(statusLine!.split(" ")[1]),
        headers,
        get rest() {
          return buf.subarray(end + 4);
        },
      };
      resolve(result);
    });
  });
}
