// A fast AnyCable RPC application over gRPC for benchmarks (Node + @grpc/grpc-js, no recording):
// Connect accepts everyone with a welcome, subscribe confirms BenchChannel (streaming from its
// `stream` parameter when it has one), perform "echo" answers with a transmission carrying the
// request's payload back. Prints its port; a `stats` line on stdin prints the calls made so far.
//   node bench/backends/grpc_backend.mjs
import { fileURLToPath } from "node:url";
import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";

const protoPath = fileURLToPath(new URL("../../proto/anycable/rpc.proto", import.meta.url));
const def = protoLoader.loadSync(protoPath, { keepCase: true, longs: Number, enums: Number, defaults: true });
const pkg = grpc.loadPackageDefinition(def).anycable;
const SUCCESS = 1;

const calls = { Connect: 0, subscribe: 0, unsubscribe: 0, message: 0, Disconnect: 0 };
process.stdin.on("data", (d) => {
  if (d.toString().includes("stats")) console.log(JSON.stringify({ type: "stats", calls }));
});

const server = new grpc.Server();
server.addService(pkg.RPC.service, {
  Connect(call, cb) {
    calls.Connect++;
    // anycable-rb's welcome carries the session id the server sent as metadata (for restores)
    const sid = String(call.metadata.get("sid")[0] ?? "");
    const welcome = JSON.stringify({ type: "welcome", sid });
    cb(null, { status: SUCCESS, identifiers: '{"user":"bench"}', transmissions: [welcome] });
  },
  Command(call, cb) {
    const req = call.request;
    if (req.command in calls) calls[req.command]++;
    if (req.command === "subscribe") {
      const { stream } = JSON.parse(req.identifier);
      cb(null, {
        status: SUCCESS,
        streams: stream ? [stream] : [],
        transmissions: [JSON.stringify({ type: "confirm_subscription", identifier: req.identifier })],
      });
      return;
    }
    if (req.command === "message") {
      const data = JSON.parse(req.data);
      cb(null, {
        status: SUCCESS,
        transmissions: [JSON.stringify({ identifier: req.identifier, message: { n: data.n, t: data.t } })],
      });
      return;
    }
    cb(null, { status: SUCCESS, transmissions: [] });
  },
  Disconnect(_call, cb) {
    calls.Disconnect++;
    cb(null, { status: SUCCESS });
  },
});
server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, port) => {
  if (err) throw err;
  console.log(JSON.stringify({ type: "port", port }));
});
