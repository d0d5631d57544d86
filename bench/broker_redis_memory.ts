// Redis memory of the Redis broker (issue 14), beside AnyCable's formula for its Pro Redis broker
// (anycable-go__reliable_streams.md): M_H = (325 + M_i) × L × N_streams, M_S = 350 × N_clients.
// Fills a private redis-server through the broker itself and reads INFO used_memory before and
// after each part: history, sessions, presence.
//   bun bench/broker_redis_memory.ts [--streams 1000] [--limit 100] [--message 100]
//                                    [--sessions 10000] [--presence 10000]
import { spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { createClient } from "redis";
import type { StreamMessage } from "../src/broadcast/publication.ts";
import { RedisBroker } from "../src/broker/redis.ts";
import { Logger } from "../src/log/logger.ts";
import type { PubSub } from "../src/pubsub/pubsub.ts";
import { freePort } from "./lib/targets.ts";

const { values } = parseArgs({
  options: {
    streams: { type: "string", default: "1000" },
    limit: { type: "string", default: "100" },
    message: { type: "string", default: "100" },
    sessions: { type: "string", default: "10000" },
    presence: { type: "string", default: "10000" },
  },
});
const streams = Number(values.streams);
const limit = Number(values.limit);
const messageBytes = Number(values.message);
const sessions = Number(values.sessions);
const presence = Number(values.presence);

const port = await freePort();
const dir = mkdtempSync(join(tmpdir(), "bench-redis-"));
const server = spawn(
  "redis-server",
  ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--dir", dir],
  {
    stdio: "ignore",
  },
);
const url = `redis://127.0.0.1:${port}`;
const probe = createClient({ url });
probe.on("error", () => {});
for (let i = 0; ; i++) {
  try {
    await probe.connect();
    break;
  } catch {
    if (i > 100) throw new Error("redis-server did not start");
    await new Promise((r) => setTimeout(r, 50));
  }
}

let delivered = 0;
const pubsub: PubSub = {
  name: "pubsub (counting)",
  multiNode: false,
  async start() {},
  async shutdown() {},
  subscribe() {},
  unsubscribe() {},
  broadcast(_m: StreamMessage) {
    delivered++;
  },
  broadcastCommand() {},
};
const broker = new RedisBroker(
  {
    redis: {
      url,
      sentinels: "",
      sentinelDiscoveryIntervalSec: 30,
      keepaliveIntervalSec: 30,
      tlsVerify: false,
      tlsCaCertPath: "",
      tlsClientCertPath: "",
      tlsClientKeyPath: "",
      disableCache: false,
      maxReconnectAttempts: 5,
    },
    pubsub,
    historyLimit: limit,
    historyTtlSec: 300,
    sessionsTtlSec: 300,
    presenceTtlSec: 15,
  },
  new Logger("error", "text", {}, { write() {} }),
);
await broker.start(() => {});

const used = async () => Number(/used_memory:(\d+)/.exec(await probe.info("memory"))![1]);
const until = async (n: number) => {
  while (delivered < n) await new Promise((r) => setTimeout(r, 5));
};

// A message as an application broadcasts it: a JSON object of about --message bytes.
const data = JSON.stringify({ text: "x".repeat(Math.max(0, messageBytes - 11)) });
// A session snapshot as the node commits it: one channel with one stream, no state.
const snapshot = JSON.stringify({
  ids: '{"user_id":"123456"}',
  subs: { '{"channel":"ChatChannel","id":"42"}': ["chat_42"] },
  env: {},
  cstate: {},
  istate: {},
});

const base = await used();
const started = performance.now();
let sent = 0;
for (let round = 0; round < limit; round++) {
  for (let s = 0; s < streams; s++) {
    broker.handleBroadcast({ stream: `chat_${s}`, dataJson: data });
    sent++;
  }
  await until(sent);
}
const historyMs = performance.now() - started;
const afterHistory = await used();

for (let i = 0; i < sessions; i += 500) {
  await Promise.all(
    Array.from({ length: Math.min(500, sessions - i) }, (_, j) =>
      broker.commitSession(`sid-${String(i + j).padStart(21, "0")}`, snapshot),
    ),
  );
}
const afterSessions = await used();

for (let i = 0; i < presence; i += 500) {
  await Promise.all(
    Array.from({ length: Math.min(500, presence - i) }, (_, j) =>
      broker.presenceAdd(`room_${(i + j) % 100}`, `sid-p${i + j}`, `user-${i + j}`, {
        name: `User ${i + j}`,
      }),
    ),
  );
}
const afterPresence = await used();

const formulaHistory = (325 + messageBytes) * limit * streams;
const result = {
  redis: (await probe.info("server")).match(/redis_version:(\S+)/)?.[1],
  streams,
  limit,
  messageBytes: data.length,
  publishesPerSec: Math.round(sent / (historyMs / 1000)),
  history: {
    bytes: afterHistory - base,
    perMessage: Math.round((afterHistory - base) / (streams * limit)),
    formula: formulaHistory,
    ratio: Number(((afterHistory - base) / formulaHistory).toFixed(2)),
  },
  sessions: {
    count: sessions,
    snapshotBytes: snapshot.length,
    perSession: Math.round((afterSessions - afterHistory) / sessions),
    formulaPerSession: 350,
  },
  presence: {
    records: presence,
    perRecord: Math.round((afterPresence - afterSessions) / presence),
  },
};
console.log(JSON.stringify(result, null, 2));
await broker.shutdown();
await probe.close();
server.kill("SIGKILL");
