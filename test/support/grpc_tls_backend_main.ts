// Runs the gRPC test backend over TLS in its own Bun process and prints {"port","caFile","ca"}.
// grpc-js's TLS server does not handshake correctly under Deno's node:http2, so the Deno unit
// run (like the Bun one) talks to this process instead of an in-process server.
import { makeTestCerts } from "./certs.ts";
import { startGrpcBackend } from "./grpc_backend.ts";

const certs = makeTestCerts();
const backend = await startGrpcBackend("127.0.0.1", { cert: certs.cert, key: certs.key });
console.log(JSON.stringify({ port: backend.port, caFile: certs.caFile, ca: certs.ca }));
// exits when the parent closes our stdin (or dies)
process.stdin.resume();
process.stdin.on("end", () => process.exit(0));
process.stdin.on("close", () => process.exit(0));
