// A plain node-redis client for tests that look at Redis from the outside (PUBSUB NUMSUB, XLEN,
// XADD as an application would): no reconnects, errors surface as rejections.
import { createClient } from "redis";

export async function redisProbe(url: string) {
  const c = createClient({ url, socket: { reconnectStrategy: false } });
  // node-redis throws an unhandled 'error' event without a listener
  c.on("error", () => {});
  await c.connect();
  return c;
}

export type RedisProbe = Awaited<ReturnType<typeof redisProbe>>;

/** How many clients are subscribed to `channel` (PUBSUB NUMSUB). */
export async function numSub(c: RedisProbe, channel: string): Promise<number> {
  const reply = (await c.sendCommand(["PUBSUB", "NUMSUB", channel])) as [string, number];
  return Number(reply[1]);
}
