import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { renderOptionsDoc, replaceBetweenMarkers } from "../../release/options-doc.ts";
import { loadConfig } from "../../src/config/load.ts";
import { commands, serverArgs, words } from "../support/readme_commands.ts";

const root = new URL("../../", import.meta.url);
const readme = readFileSync(new URL("README.md", root), "utf8");
const pkg = JSON.parse(readFileSync(new URL("package.json", root), "utf8")) as {
  scripts: Record<string, string>;
};
const exists = (path: string) => existsSync(new URL(path, root));

describe("README", () => {
  it("option reference matches the schema (regenerate: npx bun release/options-doc.ts --write README.md)", () => {
    assert.equal(replaceBetweenMarkers(readme, renderOptionsDoc()), readme);
  });
  it("shows each embedding example exactly as examples/ has it (the e2e suite runs those)", () => {
    for (const name of ["bun.ts", "deno.ts", "hono.ts"]) {
      const example = readFileSync(new URL(`examples/${name}`, root), "utf8");
      assert.ok(readme.includes(`\`\`\`ts\n${example}\`\`\``), `README shows examples/${name}`);
    }
  });
  it("starts with the two commands", () => {
    assert.match(readme, /npm install && npm start/);
    assert.match(readme, /npm test/);
  });

  it("every command it shows runs as written after `npm install` (bun and deno are not on PATH)", () => {
    const all = commands();
    assert.ok(all.length > 30, `found ${all.length} commands`);
    const problems: string[] = [];
    for (const c of all) {
      const [cmd, ...rest] = c.argv;
      if (cmd === "bun" || cmd === "deno" || cmd === "bunx") {
        problems.push(`${c.text}: ${cmd} is not on PATH after npm install (npx ${cmd} ...)`);
      }
      if (cmd === "npm" && rest[0] === "run" && !(rest[1] in pkg.scripts)) {
        problems.push(`${c.text}: no npm script ${rest[1]}`);
      }
      if (cmd === "npx" && rest[0] !== "anycable-ts" && !exists(`node_modules/.bin/${rest[0]}`)) {
        problems.push(`${c.text}: npx ${rest[0]} is not in node_modules/.bin`);
      }
      // files of this repository the command runs
      const runs =
        cmd === "sh"
          ? rest[0]
          : cmd === "npx" && rest[0] === "bun"
            ? rest[1]
            : cmd === "npx" && rest[0] === "deno"
              ? rest.find((w) => /\.ts$/.test(w))
              : undefined;
      if (runs && !runs.startsWith("-") && !exists(runs))
        problems.push(`${c.text}: no file ${runs} in the repo`);
    }
    // the prose too: `bun <file>` / `deno run <file>` in inline code (naming the tools' own
    // subcommands, `bun build --compile` or `deno compile`, is no command to run)
    for (const m of readme.matchAll(/`((?:bun|deno) [^`]*)`/g)) {
      if (!/^(bun|deno) (build|test|compile|check)\b/.test(m[1]))
        problems.push(`\`${m[1]}\`: write npx ${m[1]}`);
    }
    assert.deepEqual(problems, []);
  });

  it("the server commands load their flags, and only those that say so use Redis (others: --broadcast_adapter=http)", () => {
    const servers = commands().flatMap((c) => {
      const args = serverArgs(c);
      if (!args || args.includes("[flags]")) return [];
      return [{ what: c.text.split("\n")[0], args, env: c.env, mentionsRedis: /redis/i.test(c.text) }];
    });
    // `npm start` and the Heroku config vars (the buildpack's web process is bin/anycable-ts)
    const start = words(pkg.scripts.start);
    servers.push({ what: "npm start", args: start.slice(2), env: {}, mentionsRedis: false });
    for (const m of readme.matchAll(/heroku config:set (.*)/g)) {
      const env = Object.fromEntries(
        words(m[1]).map((w) => w.split(/=(.*)/s).slice(0, 2) as [string, string]),
      ) as Record<string, string>;
      servers.push({ what: m[0], args: [], env, mentionsRedis: /redis/i.test(m[0]) });
    }
    assert.ok(servers.length >= 12, `found ${servers.length} server commands`);
    const problems: string[] = [];
    for (const s of servers) {
      const loaded = loadConfig({ argv: s.args, env: s.env, readFile: () => undefined });
      if (loaded.kind === "error") {
        problems.push(`${s.what}: ${loaded.message}`);
        continue;
      }
      if (loaded.kind !== "run") continue;
      const d = loaded.config.derived;
      const redis = d.broadcastAdapters.includes("redis") || d.pubsubAdapter === "redis";
      if (redis && !s.mentionsRedis) {
        problems.push(
          `${s.what}: needs Redis (${d.broadcastAdapters.join(",")}) without saying so: add --broadcast_adapter=http`,
        );
      }
    }
    assert.deepEqual(problems, []);
  });
});
