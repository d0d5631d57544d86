// A plain node:http2 server, run by Node in its own process, that answers each gRPC request the
// way its `x-scenario` metadata asks (statuses, headers, trailers, frames, silence), for the
// transport's unit tests. Node, because its HTTP/2 stack behaves like the grpc servers the product
// meets (Bun's node:http2 server kills the connection when a stream arrives after its GOAWAY), and
// apart, because Deno's node:http2 can abort the process (an nghttp2 assertion) when an in-process
// server session receives the client's GOAWAY. Responses are ConnectionResponse messages encoded
// here by hand: {status: SUCCESS, identifiers: "ids", transmissions: [<text>]}.
//
// stdout, one JSON object a line:
//   {"port"}                                              once listening
//   {"event":"session","session":n}                       a new connection
//   {"event":"request","session":n,"stream":id,"scenario","headers","body"}  (body in base64)
//   {"event":"close","session":n,"stream":id,"rstCode"}   a request's stream closed
//   {"event":"ping","session":n}                          a PING arrived
//   {"event":"gone","session":n}                          a connection closed
// stdin lines: "goaway" (GOAWAY on the held stream's connection, letting the held stream finish),
// "release" (answer the held stream).
import { createServer } from "node:http2";

const GRPC = "application/grpc+proto";
const OK = { "grpc-status": "0" };

function varint(n) {
  const out = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return Buffer.from(out);
}

function stringField(field, text) {
  const bytes = Buffer.from(text, "utf8");
  return Buffer.concat([Buffer.from([(field << 3) | 2]), varint(bytes.length), bytes]);
}

/** ConnectionResponse{status: SUCCESS (1), identifiers: "ids", transmissions: [transmission]} */
function body(transmission = "hi") {
  return Buffer.concat([Buffer.from([0x08, 0x01]), stringField(2, "ids"), stringField(3, transmission)]);
}

function frame(message, flag = 0, length = message.length) {
  const out = Buffer.alloc(5 + message.length);
  out[0] = flag;
  out.writeUInt32BE(length, 1);
  message.copy(out, 5);
  return out;
}

function reply(stream, data, trailers) {
  stream.respond({ ":status": 200, "content-type": GRPC }, { waitForTrailers: true });
  stream.on("wantTrailers", () => stream.sendTrailers(trailers));
  stream.end(data);
}

let held;

function answer(stream, scenario) {
  const [name = "ok", arg = ""] = scenario.split(":");
  switch (name) {
    case "ok":
      reply(stream, frame(body()), OK);
      return;
    case "big":
      reply(stream, frame(body("z".repeat(Number(arg)))), OK);
      return;
    case "split": {
      stream.respond({ ":status": 200, "content-type": GRPC }, { waitForTrailers: true });
      stream.on("wantTrailers", () => stream.sendTrailers(OK));
      const f = frame(body("y".repeat(200_000)));
      stream.write(f.subarray(0, 3));
      stream.write(f.subarray(3, 1000));
      stream.end(f.subarray(1000));
      return;
    }
    case "http":
      // a grpc-status here must not count: the HTTP status decides
      stream.respond({ ":status": Number(arg), "grpc-status": "0" }, { endStream: true });
      return;
    case "html":
      stream.respond({ ":status": 200, "content-type": "text/html" });
      stream.end("<html>");
      return;
    case "trailers-only":
      stream.respond(
        { ":status": 200, "content-type": GRPC, "grpc-status": "7", "grpc-message": "go away" },
        { endStream: true },
      );
      return;
    case "trailers-only-no-status":
      stream.respond({ ":status": 200, "content-type": GRPC }, { endStream: true });
      return;
    case "encoded-message":
      reply(stream, undefined, { "grpc-status": "5", "grpc-message": "caf%C3%A9 100%25 %zz" });
      return;
    case "error-with-message":
      reply(stream, frame(body()), { "grpc-status": "14", "grpc-message": "busy" });
      return;
    case "no-status":
      reply(stream, frame(body()), { "x-other": "1" });
      return;
    case "no-trailers":
      stream.respond({ ":status": 200, "content-type": GRPC });
      stream.end(frame(body()));
      return;
    case "no-message":
      reply(stream, undefined, OK);
      return;
    case "two-messages":
      reply(stream, Buffer.concat([frame(body()), frame(body())]), OK);
      return;
    case "compressed":
      reply(stream, frame(body(), 1), OK);
      return;
    case "truncated":
      reply(stream, frame(body()).subarray(0, 9), OK);
      return;
    case "bad-status":
      reply(stream, frame(body()), { "grpc-status": "x" });
      return;
    case "huge-prefix":
      // announces 5 MiB and sends nothing more
      stream.respond({ ":status": 200, "content-type": GRPC });
      stream.write(frame(Buffer.alloc(0), 0, 5 * 1024 * 1024));
      return;
    case "slow":
      setTimeout(() => reply(stream, frame(body()), OK), Number(arg));
      return;
    case "hang":
      return;
    case "hold":
      held = stream;
      return;
    default:
      stream.respond({ ":status": 500 }, { endStream: true });
  }
}

let sessions = 0;
const ids = new WeakMap();
const out = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);

const server = createServer();
server.on("session", (session) => {
  const n = ++sessions;
  ids.set(session, n);
  session.on("error", () => {});
  session.on("ping", () => out({ event: "ping", session: n }));
  session.on("close", () => out({ event: "gone", session: n }));
  out({ event: "session", session: n });
});
server.on("stream", (stream, headers) => {
  const n = ids.get(stream.session);
  stream.on("error", () => {});
  stream.on("close", () => out({ event: "close", session: n, stream: stream.id, rstCode: stream.rstCode }));
  const chunks = [];
  stream.on("data", (c) => chunks.push(c));
  stream.on("end", () => {
    const scenario = String(headers["x-scenario"] ?? "ok");
    const plain = Object.fromEntries(Object.entries(headers));
    out({
      event: "request",
      session: n,
      stream: stream.id,
      scenario,
      headers: plain,
      body: Buffer.concat(chunks).toString("base64"),
    });
    answer(stream, scenario);
  });
});
server.listen(0, "127.0.0.1", () => out({ port: server.address().port }));

let buf = "";
process.stdin.on("data", (d) => {
  buf += d.toString();
  for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
    const cmd = buf.slice(0, nl).trim();
    buf = buf.slice(nl + 1);
    if (cmd === "goaway" && held) held.session?.goaway(0, held.id);
    if (cmd === "release" && held) reply(held, frame(body()), OK);
  }
});
process.stdin.on("end", () => process.exit(0));
