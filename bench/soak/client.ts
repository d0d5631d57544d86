// Soak worker (Bun): holds `count` Action Cable clients on the soak streams and, on commands from
// the coordinator, reconnects a share of them (half abruptly), moves subscriptions, and reports
// delivery: every publication carries a per-stream sequence number, so a client that stayed
// connected and subscribed must see each stream's numbers without a gap.
//   bun bench/soak/client.ts --url ws://127.0.0.1:8080/cable --count 2500 --offset 0 --streams 50
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    url: { type: "string" },
    count: { type: "string" },
    offset: { type: "string", default: "0" },
    streams: { type: "string", default: "50" },
  },
});
const url = values.url!;
const count = Number(values.count);
const offset = Number(values.offset);
const streams = Number(values.streams);
const emit = (obj: unknown) => process.stdout.write(`${JSON.stringify(obj)}\n`);
const idOf = (s: number) => JSON.stringify({ channel: "$pubsub", stream_name: `soak-${s}` });

interface Client {
  ws?: WebSocket;
  stream: number;
  /** The last sequence number seen on the current stream since the subscription was confirmed. */
  last: number;
  /**
   * Numbers skipped so far: publications are concurrent HTTP requests, so two can be handled out
   * of order; a number still missing once the client is LOST_AFTER numbers past it was lost.
   */
  missing: Set<number>;
  confirmed: boolean;
}

/** At 50 publications/s over 50 streams a stream gets one a second: this is ~5 s of grace. */
const LOST_AFTER = 5;

const clients: Client[] = Array.from({ length: count }, (_, i) => ({
  stream: (offset + i) % streams,
  last: -1,
  missing: new Set(),
  confirmed: false,
}));
let delivered = 0;
/** Numbers that never came to a client that stayed subscribed (from clients that resubscribed since, too). */
let lost = 0;

function gaps(): number {
  let n = lost;
  for (const c of clients) for (const m of c.missing) if (m < c.last - LOST_AFTER) n++;
  return n;
}

/** A new subscription starts a new baseline; what its predecessor still missed for long is lost. */
function rebase(c: Client): void {
  for (const m of c.missing) if (m < c.last - LOST_AFTER) lost++;
  c.missing.clear();
  c.last = -1;
}
let connectFailures = 0;

function open(c: Client): Promise<void> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, ["actioncable-v1-json"]);
    c.ws = ws;
    c.confirmed = false;
    rebase(c);
    let settled = false;
    const done = () => {
      if (!settled) {
        settled = true;
        resolve();
      }
    };
    ws.onmessage = (ev) => {
      const data = ev.data as string;
      if (data.startsWith('{"type":"welcome"')) {
        ws.send(JSON.stringify({ command: "subscribe", identifier: idOf(c.stream) }));
        return;
      }
      if (data.startsWith('{"type":"confirm_subscription"')) {
        c.confirmed = true;
        done();
        return;
      }
      const i = data.indexOf('"seq":');
      if (i < 0 || !c.confirmed) return;
      const seq = Number.parseInt(data.slice(i + 6), 10);
      const si = data.indexOf('"s":');
      const stream = Number.parseInt(data.slice(si + 4), 10);
      if (stream !== c.stream) return;
      delivered++;
      // the first message after a (re)subscription sets the baseline; after that no number may be skipped
      if (c.last >= 0) for (let m = c.last + 1; m < seq; m++) c.missing.add(m);
      c.missing.delete(seq);
      if (seq > c.last) c.last = seq;
    };
    ws.onerror = () => {
      connectFailures++;
      done();
    };
    ws.onclose = () => done();
  });
}

async function openAll(list: Client[], parallel = 100): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(parallel, list.length) }, async () => {
      while (next < list.length) await open(list[next++]!);
    }),
  );
}

function pickShare(share: number): Client[] {
  const n = Math.round(count * share);
  const picked = new Set<number>();
  while (picked.size < n) picked.add(Math.floor(Math.random() * count));
  return [...picked].map((i) => clients[i]!);
}

async function churn(share: number): Promise<void> {
  const list = pickShare(share);
  list.forEach((c, i) => {
    const ws = c.ws;
    c.confirmed = false;
    if (!ws) return;
    // half abruptly (no close handshake), half with a normal close
    if (i % 2 === 0 && "terminate" in ws) (ws as WebSocket & { terminate(): void }).terminate();
    else ws.close();
  });
  await openAll(list, 50);
}

/** Moves a share of clients to another stream: unsubscribe, subscribe, new baseline on confirm. */
function move(share: number): void {
  for (const c of pickShare(share)) {
    if (!c.ws || c.ws.readyState !== WebSocket.OPEN || !c.confirmed) continue;
    c.ws.send(JSON.stringify({ command: "unsubscribe", identifier: idOf(c.stream) }));
    c.stream = (c.stream + 1) % streams;
    c.confirmed = false;
    rebase(c);
    c.ws.send(JSON.stringify({ command: "subscribe", identifier: idOf(c.stream) }));
  }
}

let buffer = "";
process.stdin.on("data", async (chunk) => {
  buffer += chunk.toString();
  for (let nl = buffer.indexOf("\n"); nl >= 0; nl = buffer.indexOf("\n")) {
    const [cmd, arg] = buffer.slice(0, nl).trim().split(" ");
    buffer = buffer.slice(nl + 1);
    if (cmd === "churn") {
      await churn(Number(arg));
      emit({ type: "churned" });
    } else if (cmd === "move") {
      move(Number(arg));
      emit({ type: "moved" });
    } else if (cmd === "report") {
      const connected = clients.filter((c) => c.ws?.readyState === WebSocket.OPEN).length;
      emit({ type: "report", delivered, gaps: gaps(), connected, connectFailures });
    } else if (cmd === "close") {
      for (const c of clients) c.ws?.close();
      setTimeout(() => process.exit(0), 200);
    }
  }
});

await openAll(clients);
emit({ type: "ready", connectFailures });
