// The Pusher adapter on two nodes sharing a Redis broker and Redis pub/sub, and again sharing a
// NATS broker and NATS pub/sub (node B under the other runtime): presence members, HTTP API events, client events and terminate_connections across
// nodes, and webhooks decided once for the cluster (channel_occupied when the first subscription
// anywhere appears, channel_vacated when the last one goes, each member once).
import { afterAll, beforeAll, describe, it } from "bun:test";
import assert from "node:assert/strict";
import type PusherJS from "pusher-js";
import {
  APP,
  authEndpoint,
  connected,
  pusherClient,
  pusherSdk,
  recorder,
  webhookReceiver,
} from "../support/pusher_clients.ts";
import { e2eRuntimes, type ServerProcess, type ServerRuntime, startServer } from "../support/server.ts";
import { hasService, type ServiceProcess, startNats, startRedis } from "../support/services.ts";
import { waitFor } from "../support/wait.ts";

const runtimes = e2eRuntimes(["bun", "deno"]);
const otherThan = (r: ServerRuntime): ServerRuntime => runtimes.find((x) => x !== r) ?? r;

/** The engine both nodes share: its broker keeps presence and occupancy, its pub/sub carries the rest. */
const engines = [
  {
    name: "Redis",
    enabled: hasService("redis-server"),
    start: () => startRedis(),
    args: (url: string) => ["--broker=redis", "--pubsub=redis", `--redis_url=${url}`],
  },
  {
    name: "NATS",
    enabled: hasService("nats-server"),
    start: () => startNats(),
    args: (url: string) => ["--broker=nats", "--pubsub=nats", `--nats_servers=${url}`],
  },
];

for (const runtime of runtimes) {
  const other = otherThan(runtime);

  for (const engine of engines)
    describe.if(engine.enabled)(
      `[${runtime}] Pusher cluster over ${engine.name} (node B under ${other})`,
      () => {
        let engineProcess: ServiceProcess;
        let a: ServerProcess;
        let b: ServerProcess;
        const sdk = pusherSdk(0);
        let auth: Awaited<ReturnType<typeof authEndpoint>>;
        let hooks: Awaited<ReturnType<typeof webhookReceiver>>;
        const clients: PusherJS[] = [];

        const client = async (node: ServerProcess, user = "1") => {
          const c = pusherClient(node.port, { authUrl: auth.url, user, name: user });
          clients.push(c);
          await connected(c);
          return c;
        };
        const subscribed = async (c: PusherJS, channel: string) => {
          const r = recorder(c.subscribe(channel));
          await r.next("pusher:subscription_succeeded", `subscription to ${channel}`);
          return r;
        };
        const count = (name: string, channel: string) =>
          hooks.delivered().filter((e) => e.name === name && e.channel === channel).length;

        beforeAll(async () => {
          engineProcess = await engine.start();
          auth = await authEndpoint(sdk);
          hooks = await webhookReceiver(sdk);
          const args = [
            "--norpc",
            `--pusher_app_id=${APP.appId}`,
            `--pusher_app_key=${APP.key}`,
            `--pusher_secret=${APP.secret}`,
            ...engine.args(engineProcess.url),
            "--broadcast_adapter=http",
            "--presence_ttl=2",
            `--pusher_webhook_url=${hooks.url}`,
          ];
          [a, b] = await Promise.all([startServer(runtime, { args }), startServer(other, { args })]);
        });
        afterAll(async () => {
          for (const c of clients) c.disconnect();
          await Promise.all([a?.stop(), b?.stop()]);
          await engineProcess?.stop();
          await auth?.close();
          await hooks?.close();
        });

        it("presence members, events and client events cross nodes", async () => {
          const alice = await client(a, "alice");
          const bob = await client(b, "bob");
          const ra = await subscribed(alice, "presence-team");
          const rb = await subscribed(bob, "presence-team");
          const members = rb.events.find((e) => e.event === "pusher:subscription_succeeded")?.data as {
            members: Record<string, unknown>;
          };
          assert.deepEqual(members.members, { alice: { name: "alice" }, bob: { name: "bob" } });
          assert.deepEqual((await ra.next("pusher:member_added")).data, { id: "bob", info: { name: "bob" } });
          for (const node of [a, b]) {
            const res = await pusherSdk(node.port).get({ path: "/channels/presence-team/users" });
            const ids = ((await res.json()) as { users: { id: string }[] }).users.map((u) => u.id).sort();
            assert.deepEqual(ids, ["alice", "bob"]);
          }
          // an event through node A's API reaches bob on node B, except when it names his socket
          await pusherSdk(a.port).trigger("presence-team", "hello", { from: "api" });
          assert.deepEqual((await rb.next("hello")).data, { from: "api" });
          await pusherSdk(a.port).trigger(
            "presence-team",
            "skip-bob",
            {},
            { socket_id: bob.connection.socket_id },
          );
          await pusherSdk(a.port).trigger("presence-team", "marker", {});
          await rb.next("marker");
          assert.ok(!rb.names().includes("skip-bob"));
          // a client event from node A reaches node B with the sender's user_id
          alice.channel("presence-team").trigger("client-wave", { hand: "left" });
          const wave = await rb.next("client-wave");
          assert.deepEqual(wave.data, { hand: "left" });
          bob.unsubscribe("presence-team");
          assert.deepEqual((await ra.next("pusher:member_removed")).data, {
            id: "bob",
            info: { name: "bob" },
          });
          alice.unsubscribe("presence-team");
        });

        it("webhooks: occupied and vacated once for the cluster, each member once", async () => {
          const ch = "presence-cluster-hooks";
          const one = await client(a, "m1");
          const two = await client(b, "m2");
          await subscribed(one, ch);
          await hooks.waitFor((e) => e.name === "channel_occupied" && e.channel === ch, "channel_occupied");
          await subscribed(two, ch);
          await hooks.waitFor(
            (e) => e.name === "member_added" && e.channel === ch && e.user_id === "m2",
            "member m2",
          );
          one.unsubscribe(ch);
          await hooks.waitFor((e) => e.name === "member_removed" && e.user_id === "m1", "member m1 removed");
          two.unsubscribe(ch);
          await hooks.waitFor((e) => e.name === "channel_vacated" && e.channel === ch, "channel_vacated");
          // each node sends its events in order, so a duplicate would have come before the vacated one
          assert.equal(count("channel_occupied", ch), 1, JSON.stringify(hooks.delivered()));
          assert.equal(count("channel_vacated", ch), 1);
          assert.equal(
            hooks.delivered().filter((e) => e.name === "member_added" && e.channel === ch).length,
            2,
          );
          for (const call of hooks.calls) assert.ok(call.valid);
        });

        it("terminate_connections on node A ends a user's sessions on node B", async () => {
          const c = await client(b, "term-user");
          c.signin();
          await waitFor(
            () =>
              (c.user as unknown as { serverToUserChannel?: { subscribed: boolean } }).serverToUserChannel
                ?.subscribed,
            "signed in",
          );
          const got: unknown[] = [];
          c.user.bind("note", (d: unknown) => got.push(d));
          await pusherSdk(a.port).sendToUser("term-user", "note", { n: 1 });
          assert.deepEqual(await waitFor(() => got[0], "sendToUser across nodes"), { n: 1 });
          const errors: unknown[] = [];
          c.connection.bind("error", (e: unknown) => errors.push(e));
          await pusherSdk(a.port).terminateUserConnections("term-user");
          const e = await waitFor(() => errors[0], "terminated");
          assert.equal((e as { data: { code: number } }).data.code, 4009);
          await waitFor(
            () => c.connection.state === "disconnected" || c.connection.state === "failed",
            "disconnected",
          );
        });
      },
    );
}
