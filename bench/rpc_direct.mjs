// The RPC baseline: a direct @grpc/grpc-js client calling Command ("message"/echo) on the same
// backend with a fixed number of calls in flight, for a fixed time. Prints {"calls","ms","p99"}.
//   node bench/rpc_direct.mjs --port 50051 --concurrency 28 --seconds 10
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";

const { values } = parseArgs({
  options: {
    port: { type: "string" },
    concurrency: { type: "string", default: "28" },
    seconds: { type: "string", default: "10" },
  },
});
const protoPath = fileURLToPath(new URL("../proto/anycable/rpc.proto", import.meta.url));
const def = protoLoader.loadSync(protoPath, { keepCase: true, longs: Number, enums: Number, defaults: true });
const pkg = grpc.loadPackageDefinition(def).anycable;
const client = new pkg.RPC(`127.0.0.1:${values.port}`, grpc.credentials.createInsecure());
const identifier = JSON.stringify({ channel: "BenchChannel" });
const deadline = Date.now() + Number(values.seconds) * 1000;
const latencies = [];
let calls = 0;

function one() {
  return new Promise((resolve, reject) => {
    const t = performance.now();
    const data = JSON.stringify({ action: "echo", n: calls, t });
    client.Command(
      {
        command: "message",
        identifier,
        connection_identifiers: '{"user":"bench"}',
        data,
        env: { url: "ws://x/cable", headers: {} },
      },
      (err) => {
        if (err) reject(err);
        else {
          latencies.push(performance.now() - t);
          calls++;
          resolve();
        }
      },
    );
  });
}

const started = performance.now();
await Promise.all(
  Array.from({ length: Number(values.concurrency) }, async () => {
    while (Date.now() < deadline) await one();
  }),
);
const ms = performance.now() - started;
latencies.sort((a, b) => a - b);
console.log(JSON.stringify({ calls, ms, p99: latencies[Math.ceil(latencies.length * 0.99) - 1] }));
client.close();
