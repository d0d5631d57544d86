// Runs the plaintext gRPC test backend in its own Bun process, so that what it sends when killed
// (GOAWAY, resets) comes from a real separate peer. Prints {"port"}; stdin lines "stop" / "start"
// kill it and bring it back on the same port, answering "stopped" / "started".
import { startGrpcBackend } from "./grpc_backend.ts";

const backend = await startGrpcBackend();
console.log(JSON.stringify({ port: backend.port }));
let buf = "";
process.stdin.on("data", async (d) => {
  buf += d.toString();
  let nl = buf.indexOf("\n");
  while (nl >= 0) {
    const cmd = buf.slice(0, nl).trim();
    buf = buf.slice(nl + 1);
    nl = buf.indexOf("\n");
    if (cmd === "stop") {
      await backend.stop();
      console.log("stopped");
    } else if (cmd === "start") {
      await backend.start();
      console.log("started");
    }
  }
});
process.stdin.on("end", () => process.exit(0));
