// Makes one gRPC call on a GrpcChannel (port in argv) and then leaves the channel open: the process
// must still exit, because an idle connection does not keep it alive. Prints the call's status.
import { create } from "@bufbuild/protobuf";
import { ConnectionRequestSchema, RPC } from "../../gen/anycable/rpc_pb.ts";
import { GrpcChannel } from "../../src/rpc/grpc_transport.ts";

const channel = new GrpcChannel({ address: `127.0.0.1:${process.argv[2]}` });
const res = await channel.unary(RPC.method.connect, create(ConnectionRequestSchema, {}), { sid: "idle" });
console.log(`status=${res.status} open=${channel.openConnections()}`);
