// Load generator for bench/restore.ts (run under Bun): N extended-protocol clients, each
// subscribed to BenchChannel on one of S streams. On command it drops every socket at once
// (no close handshake), reconnects them with ?sid=, asks for the history after the last offset it
// saw, and reports when each client has every message it missed. JSON lines on stdin/stdout.
//   bun bench/restore_client.ts --url ws://127.0.0.1:8080/cable --count 2000 --streams 10
//                               [--restore-url ws://127.0.0.1:8081/cable]
import { parseArgs } from "node:util";
import WebSocket from "ws";

const { values } = parseArgs({
  options: {
    url: { type: "string" },
    count: { type: "string" },
    streams: { type: "string", default: "10" },
    parallel: { type: "string", default: "100" },
    /** Where the clients reconnect (another node of a cluster); default: --url. */
    "restore-url": { type: "string" },
  },
});
const url = values.url!;
const restoreUrl = values["restore-url"] ?? url;
const count = Number(values.count);
const streams = Number(values.streams);
const parallel = Number(values.parallel);
const now = () => performance.timeOrigin + performance.now();
const emit = (obj: unknown) => process.stdout.write(`${JSON.stringify(obj)}\n`);

interface Client {
  ws: WebSocket;
  sid: string;
  identifier: string;
  stream: string;
  epoch: string;
  offset: number;
  /** Offsets received since the drop (live or from history), to count each missed message once. */
  seen: Set<number>;
  /** How many messages it must get after the drop, and when it had them all. */
  expected: number;
  caughtUpAt: number;
  restored: boolean;
}

const clients: Client[] = [];
let phaseStart = 0;

function track(c: Client, raw: string): void {
  const msg = JSON.parse(raw) as Record<string, unknown>;
  if (typeof msg.offset === "number" && msg.identifier === c.identifier) {
    c.epoch = msg.epoch as string;
    if (c.expected > 0) {
      if (msg.offset > c.offset) c.seen.add(msg.offset);
      if (c.caughtUpAt === 0 && c.seen.size >= c.expected) c.caughtUpAt = now();
    } else c.offset = Math.max(c.offset, msg.offset);
  }
}

/** Connects (or reconnects with its sid) and resolves once subscribed or restored. */
function open(c: Client, restore: boolean): Promise<void> {
  return new Promise((resolve) => {
    const ws = new WebSocket(
      restore ? `${restoreUrl}?sid=${encodeURIComponent(c.sid)}` : url,
      "actioncable-v1-ext-json",
    );
    c.ws = ws;
    let done = false;
    const finish = () => {
      if (!done) {
        done = true;
        resolve();
      }
    };
    ws.on("message", (data) => {
      const raw = data.toString();
      if (raw.startsWith('{"type":"welcome"')) {
        const welcome = JSON.parse(raw) as { sid: string; restored?: boolean };
        c.sid = welcome.sid;
        if (restore && welcome.restored) {
          c.restored = true;
          const history = { streams: { [c.stream]: { epoch: c.epoch, offset: c.offset } } };
          ws.send(JSON.stringify({ command: "history", identifier: c.identifier, history }));
          finish();
        } else {
          ws.send(JSON.stringify({ command: "subscribe", identifier: c.identifier }));
        }
        return;
      }
      if (raw.startsWith('{"type":"confirm_subscription"')) {
        finish();
        return;
      }
      if (raw.startsWith('{"type":"ping"')) {
        ws.send('{"command":"pong"}');
        return;
      }
      track(c, raw);
    });
    ws.on("error", finish);
    ws.on("close", finish);
  });
}

async function inLanes(fn: (c: Client) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(parallel, clients.length) }, async () => {
      while (next < clients.length) await fn(clients[next++]!);
    }),
  );
}

for (let i = 0; i < count; i++) {
  const stream = `restore-${i % streams}`;
  clients.push({
    ws: undefined as unknown as WebSocket,
    sid: "",
    identifier: JSON.stringify({ channel: "BenchChannel", stream }),
    stream,
    epoch: "",
    offset: 0,
    seen: new Set(),
    expected: 0,
    caughtUpAt: 0,
    restored: false,
  });
}

let buffer = "";
process.stdin.on("data", async (chunk) => {
  buffer += chunk.toString();
  for (let nl = buffer.indexOf("\n"); nl >= 0; nl = buffer.indexOf("\n")) {
    const line = buffer.slice(0, nl).trim();
    buffer = buffer.slice(nl + 1);
    const [cmd, arg] = line.split(" ");
    if (cmd === "connect") {
      phaseStart = now();
      await inLanes((c) => open(c, false));
      emit({ type: "connected", ms: now() - phaseStart, sids: clients.filter((c) => c.sid).length });
    } else if (cmd === "positions") {
      emit({ type: "positions", known: clients.filter((c) => c.offset > 0).length });
    } else if (cmd === "drop") {
      for (const c of clients) c.ws.terminate();
      emit({ type: "dropped" });
    } else if (cmd === "restore") {
      const missed = Number(arg);
      for (const c of clients) c.expected = missed;
      phaseStart = now();
      await inLanes((c) => open(c, true));
      const deadline = now() + 60_000;
      while (clients.some((c) => c.caughtUpAt === 0) && now() < deadline)
        await new Promise((r) => setTimeout(r, 20));
      const times = clients.filter((c) => c.caughtUpAt > 0).map((c) => c.caughtUpAt - phaseStart);
      emit({
        type: "restored",
        restored: clients.filter((c) => c.restored).length,
        caughtUp: times.length,
        times,
        ms: Math.max(...times),
      });
    } else if (cmd === "close") {
      for (const c of clients) c.ws.close();
      setTimeout(() => process.exit(0), 200);
    }
  }
});
emit({ type: "ready" });
