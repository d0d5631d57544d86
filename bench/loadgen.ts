// Load generator worker (run under Bun): opens many Action Cable clients in one process,
// subscribes each to a $pubsub stream and records, per publication, how many clients got it and
// the latest arrival. Talks to the coordinator with JSON lines on stdin/stdout.
//   bun bench/loadgen.ts --url ws://127.0.0.1:8080/cable --count 5000 --offset 0 --streams 1
// With --transport sse the clients are SSE streams (GET <url>?stream=bench-N, read with fetch;
// the coordinator raises BUN_CONFIG_MAX_HTTP_REQUESTS, Bun's cap on concurrent fetches). With
// --transport pusher they speak the Pusher protocol at <url> (ws://host/app/<key>), each subscribed
// to the public channel bench-N (the same stream as Action Cable's bench-N).
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    url: { type: "string" },
    count: { type: "string" },
    offset: { type: "string", default: "0" },
    streams: { type: "string", default: "1" },
    parallel: { type: "string", default: "100" },
    transport: { type: "string", default: "ws" },
  },
});
const sse = values.transport === "sse";
const pusher = values.transport === "pusher";
const ext = values.transport === "ext";
const url = values.url!;
const count = Number(values.count);
const offset = Number(values.offset);
const streams = Number(values.streams);
const parallel = Number(values.parallel);

const now = () => performance.timeOrigin + performance.now();
const emit = (obj: unknown) => process.stdout.write(`${JSON.stringify(obj)}\n`);

/** seq -> [clients that received it, latest arrival latency in ms] */
const received = new Map<number, [number, number]>();
const sockets: Array<{ close(): void }> = [];
let failures = 0;

function onMessage(ev: MessageEvent): void {
  onData(ev.data as string);
}

/** A Pusher event carries the publication as a JSON string: its quotes arrive escaped. */
function onPusherMessage(ev: MessageEvent): void {
  const data = ev.data as string;
  if (data.includes('"seq":')) onData(data);
  else if (data.includes('\\"seq\\":')) onData(data.replaceAll('\\"', '"'));
}

function openPusherClient(index: number): Promise<void> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url);
    const channel = `bench-${(offset + index) % streams}`;
    let done = false;
    const finish = (ok: boolean) => {
      if (done) return;
      done = true;
      if (!ok) failures++;
      resolve();
    };
    ws.onmessage = (ev) => {
      const data = ev.data as string;
      if (data.includes('"pusher:connection_established"')) {
        ws.send(JSON.stringify({ event: "pusher:subscribe", data: { channel } }));
      } else if (data.includes('"pusher_internal:subscription_succeeded"')) {
        ws.onmessage = onPusherMessage;
        finish(true);
      }
    };
    ws.onerror = () => finish(false);
    ws.onclose = () => finish(false);
    sockets.push(ws);
  });
}

function onData(data: string): void {
  // Cheap extraction instead of JSON.parse per message: keeps client CPU per delivery low.
  const i = data.indexOf('"seq":');
  if (i < 0) return;
  const arrival = now();
  const seq = Number.parseInt(data.slice(i + 6), 10);
  const ti = data.indexOf('"t":', i);
  const t = Number.parseFloat(data.slice(ti + 4));
  const latency = arrival - t;
  const entry = received.get(seq);
  if (entry) {
    entry[0]++;
    if (latency > entry[1]) entry[1] = latency;
  } else received.set(seq, [1, latency]);
}

/** An SSE client: ready at its confirm_subscription event, then every event goes to onData. */
async function openSseClient(index: number): Promise<void> {
  const abort = new AbortController();
  sockets.push({ close: () => abort.abort() });
  try {
    const res = await fetch(`${url}?stream=bench-${(offset + index) % streams}`, { signal: abort.signal });
    if (res.status !== 200 || !res.body) throw new Error(`status ${res.status}`);
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let confirmed = false;
    while (!confirmed) {
      const { done, value } = await reader.read();
      if (done) throw new Error("stream ended");
      buffer += decoder.decode(value, { stream: true });
      confirmed = buffer.includes("event: confirm_subscription");
    }
    // the rest is read in the background; events split over reads are joined first
    (async () => {
      buffer = buffer.slice(buffer.lastIndexOf("\n\n") + 2);
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        buffer += decoder.decode(value, { stream: true });
        const end = buffer.lastIndexOf("\n\n");
        if (end < 0) continue;
        onEvents(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
      }
    })().catch(() => {});
  } catch {
    failures++;
  }
}

function onEvents(events: string): void {
  // one read may hold several events
  for (let i = events.indexOf('"seq":'); i >= 0; i = events.indexOf('"seq":', i + 6)) onData(events.slice(i));
}

/** An ext client's session id and last seen position of its stream (as @anycable/web tracks them). */
interface ExtState {
  sid: string;
  epoch: string;
  offset: number;
}
const extStates: ExtState[] = [];
/** As @anycable/web: history since the client's creation, in UNIX seconds. */
const historySince = Math.floor(Date.now() / 1000);

/** Cheap extraction of a string field's value ("key":"value"), or "" without it. */
function stringField(data: string, key: string): string {
  const i = data.lastIndexOf(`"${key}":"`);
  if (i < 0) return "";
  const from = i + key.length + 4;
  return data.slice(from, data.indexOf('"', from));
}

function openExtClient(index: number): Promise<void> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, ["actioncable-v1-ext-json"]);
    const identifier = JSON.stringify({
      channel: "$pubsub",
      stream_name: `bench-${(offset + index) % streams}`,
    });
    const state: ExtState = { sid: "", epoch: "", offset: 0 };
    extStates.push(state);
    let done = false;
    const finish = (ok: boolean) => {
      if (done) return;
      done = true;
      if (!ok) failures++;
      resolve();
    };
    const onExtMessage = (ev: MessageEvent) => {
      const data = ev.data as string;
      onData(data);
      // the stream's position comes after the message (`..."stream_id":..,"epoch":..,"offset":N}`)
      const oi = data.lastIndexOf('"offset":');
      if (oi < 0) return;
      state.offset = Number.parseInt(data.slice(oi + 9), 10);
      const epoch = stringField(data, "epoch");
      if (epoch !== state.epoch) state.epoch = epoch;
    };
    ws.onmessage = (ev) => {
      const data = ev.data as string;
      if (data.startsWith('{"type":"welcome"')) {
        state.sid = stringField(data, "sid");
        ws.send(JSON.stringify({ command: "subscribe", identifier, history: { since: historySince } }));
      } else if (data.includes('"type":"reject_subscription"') || data.includes('"type":"reject_history"')) {
        finish(false);
      } else if (data.includes('"type":"confirm_history"')) {
        ws.onmessage = onExtMessage;
        finish(true);
      }
    };
    ws.onerror = () => finish(false);
    ws.onclose = () => finish(false);
    sockets.push(ws);
  });
}

function openClient(index: number): Promise<void> {
  if (sse) return openSseClient(index);
  if (pusher) return openPusherClient(index);
  if (ext) return openExtClient(index);
  return new Promise((resolve) => {
    const ws = new WebSocket(url, ["actioncable-v1-json"]);
    const identifier = JSON.stringify({
      channel: "$pubsub",
      stream_name: `bench-${(offset + index) % streams}`,
    });
    let done = false;
    const finish = (ok: boolean) => {
      if (done) return;
      done = true;
      if (!ok) failures++;
      resolve();
    };
    ws.onmessage = (ev) => {
      const data = ev.data as string;
      if (data.startsWith('{"type":"welcome"')) {
        ws.send(JSON.stringify({ command: "subscribe", identifier }));
      } else if (data.startsWith('{"type":"confirm_subscription"')) {
        ws.onmessage = onMessage;
        finish(true);
      }
    };
    ws.onerror = () => finish(false);
    ws.onclose = () => finish(false);
    sockets.push(ws);
  });
}

async function connectAll(): Promise<void> {
  const started = now();
  let next = 0;
  const lanes = Array.from({ length: Math.min(parallel, count) }, async () => {
    while (next < count) await openClient(next++);
  });
  await Promise.all(lanes);
  // ext clients: how many got a session id (each has a session snapshot in the broker)
  const sids = ext ? extStates.filter((s) => s.sid !== "").length : undefined;
  emit({ type: "ready", ms: now() - started, failures, sids });
}

let buffer = "";
process.stdin.on("data", (chunk) => {
  buffer += chunk.toString();
  let nl = buffer.indexOf("\n");
  while (nl >= 0) {
    const line = buffer.slice(0, nl).trim();
    buffer = buffer.slice(nl + 1);
    nl = buffer.indexOf("\n");
    if (line === "report") {
      // ext clients also say how many saw an epoch and offset (delivered with history metadata)
      const positioned = ext ? extStates.filter((s) => s.epoch !== "" && s.offset > 0).length : undefined;
      emit({ type: "report", received: [...received.entries()], positioned });
    } else if (line === "sid") emit({ type: "sid", sid: extStates[0]?.sid ?? "" });
    else if (line === "reset") received.clear();
    else if (line === "close") {
      for (const ws of sockets) ws.close();
      emit({ type: "closed" });
      setTimeout(() => process.exit(0), 200);
    }
  }
});

await connectAll();
