// README's commands run as a newcomer types them after `npm install` (bun is not on PATH):
// `npm start` serves /health, a WebSocket subscribe and the README's broadcast; every
// `npx bun src/main.ts ...` command README shows starts a server that answers /health and stops on
// SIGTERM. Ports are moved off the README's fixed 8080/8090 (env for `npm start`, flags appended
// after the README's for the others) so runs side by side cannot collide.

import { afterEach, describe, it } from "bun:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { freePort } from "../support/ports.ts";
import { publish } from "../support/publish.ts";
import { commands } from "../support/readme_commands.ts";
import { e2eRuntimes, ROOT } from "../support/server.ts";
import { StopWaiting, waitFor } from "../support/wait.ts";
import { connect } from "../support/ws_client.ts";

const runtimes = e2eRuntimes(["bun"]);

interface Started {
  proc: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
}

/** Runs a command line in its own process group (npm and npx start children of their own). */
function startGroup(argv: string[], env: Record<string, string>): Started {
  const proc = spawn(argv[0], argv.slice(1), {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", NO_COLOR: "1", ...env },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  let out = "";
  proc.stdout?.on("data", (d) => {
    out += d.toString();
  });
  proc.stderr?.on("data", (d) => {
    out += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => proc.on("exit", (code) => resolve(code)));
  return { proc, output: () => out, exited };
}

async function healthy(url: string, s: Started): Promise<void> {
  let gone = false;
  s.exited.then(() => {
    gone = true;
  });
  await waitFor(
    async () => {
      if (gone) throw new StopWaiting(`exited before ${url} answered:\n${s.output()}`);
      return (await fetch(url).catch(() => undefined))?.status === 200;
    },
    url,
    30_000,
    50,
  );
}

const groups: Started[] = [];
afterEach(() => {
  for (const g of groups.splice(0)) {
    try {
      process.kill(-g.proc.pid!, "SIGKILL");
    } catch {
      // gone already
    }
  }
});

for (const runtime of runtimes) {
  describe(`[${runtime}] README commands`, () => {
    it("npm start: /health, a public-stream subscribe, the README's broadcast body; SIGTERM stops it", async () => {
      const port = await freePort();
      const broadcastPort = await freePort();
      const s = startGroup(["npm", "start"], {
        ANYCABLE_PORT: String(port),
        ANYCABLE_HTTP_BROADCAST_PORT: String(broadcastPort),
      });
      groups.push(s);
      await healthy(`http://localhost:${port}/health`, s);
      const c = await connect(`ws://localhost:${port}/cable`);
      await c.next((m) => m.type === "welcome", "welcome");
      const id = JSON.stringify({ channel: "$pubsub", stream_name: "chat" });
      c.send({ command: "subscribe", identifier: id });
      await c.next((m) => m.type === "confirm_subscription", "confirm");
      const res = await publish(`http://localhost:${broadcastPort}/_broadcast`, {
        stream: "chat",
        data: JSON.stringify({ text: "hello" }),
      });
      assert.equal(res.status, 201);
      assert.deepEqual((await c.next((m) => m.identifier === id, "broadcast")).message, { text: "hello" });
      process.kill(-s.proc.pid!, "SIGTERM");
      assert.equal((await c.next((m) => m.type === "disconnect", "server_restart")).reason, "server_restart");
      await s.exited;
    });

    const fromSource = commands().filter(
      (c) =>
        c.argv[0] === "npx" &&
        c.argv[1] === "bun" &&
        c.argv[2] === "src/main.ts" &&
        !c.argv.includes("[flags]"),
    );
    it(`every \`npx bun src/main.ts ...\` README shows starts and serves /health (${fromSource.length} commands)`, async () => {
      assert.ok(fromSource.length >= 6, `found ${fromSource.length}`);
      for (const c of fromSource) {
        const port = await freePort();
        const broadcastPort = await freePort();
        const s = startGroup(
          [...c.argv, "--host=127.0.0.1", `--port=${port}`, `--http_broadcast_port=${broadcastPort}`],
          c.env,
        );
        groups.push(s);
        await healthy(`http://127.0.0.1:${port}/health`, s);
        process.kill(-s.proc.pid!, "SIGTERM");
        await s.exited;
        assert.doesNotMatch(s.output(), /ERR fatal|failed to start/, `${c.text}\n${s.output()}`);
      }
    });
  });
}
