// RPC load generator (Bun): K Action Cable clients subscribed to BenchChannel through RPC, each
// performing "echo" in a closed loop (send, wait for the transmission, send again) for a fixed
// time. Prints {"commands","ms","p50","p99","failures"}.
//   bun bench/rpc_loadgen.ts --url ws://127.0.0.1:8080/cable --clients 100 --seconds 10
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    url: { type: "string" },
    clients: { type: "string", default: "100" },
    seconds: { type: "string", default: "10" },
  },
});
const identifier = JSON.stringify({ channel: "BenchChannel" });
const latencies: number[] = [];
let commands = 0;
let failures = 0;
let measuring = false;
let deadline = 0;

function client(): Promise<WebSocket | undefined> {
  return new Promise((resolve) => {
    const ws = new WebSocket(values.url!, ["actioncable-v1-json"]);
    let n = 0;
    const perform = () => {
      ws.send(
        JSON.stringify({
          command: "message",
          identifier,
          data: JSON.stringify({ action: "echo", n: n++, t: performance.now() }),
        }),
      );
    };
    ws.onmessage = (ev) => {
      // Backends order keys differently (serverless-js puts identifier first): parse, it is cheap
      // next to an RPC round trip.
      const msg = JSON.parse(String(ev.data)) as { type?: string; message?: { t: number } };
      if (msg.type === "welcome") ws.send(JSON.stringify({ command: "subscribe", identifier }));
      else if (msg.type === "confirm_subscription") resolve(ws);
      else if (msg.type === "reject_subscription") {
        failures++;
        resolve(undefined);
      } else if (msg.type === undefined && msg.message) {
        if (measuring) {
          latencies.push(performance.now() - msg.message.t);
          commands++;
        }
        if (Date.now() < deadline || !measuring) perform();
      }
    };
    (ws as WebSocket & { start?: () => void }).start = perform;
    ws.onerror = () => {
      failures++;
      resolve(undefined);
    };
  });
}

const sockets = (await Promise.all(Array.from({ length: Number(values.clients) }, client))).filter(
  (s): s is WebSocket => s !== undefined,
);
deadline = Date.now() + Number(values.seconds) * 1000;
measuring = true;
const started = performance.now();
for (const ws of sockets) (ws as WebSocket & { start: () => void }).start();
while (Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
const ms = performance.now() - started;
await new Promise((r) => setTimeout(r, 200));
latencies.sort((a, b) => a - b);
const pct = (p: number) => latencies[Math.max(0, Math.ceil(latencies.length * p) - 1)] ?? Number.NaN;
console.log(JSON.stringify({ commands, ms, p50: pct(0.5), p99: pct(0.99), failures }));
for (const ws of sockets) ws.close();
process.exit(0);
