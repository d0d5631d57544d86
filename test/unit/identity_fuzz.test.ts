// Fuzz-style: thousands of random and mutated tokens and signed stream names. Nothing may throw,
// every refusal must be a documented reply, and anything accepted must pass an independent check.
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { describe, it } from "node:test";
import { SignJWT } from "jose";
import { JwtIdentifier } from "../../src/identity/jwt.ts";
import type { SessionEnv } from "../../src/node/controller.ts";
import { StreamsController } from "../../src/streams/controller.ts";
import { silentLogger } from "../support/fake_node.ts";
import { prng } from "../support/prng.ts";
import { nowSec, rawJwt, signStream } from "../support/signing.ts";

const ROUNDS = 3000;
const SECRET = "fuzz-secret";
const STREAMS_KEY = "fuzz-streams";
const IDS = JSON.stringify({ user: 1 });
const WELCOME = (sid: string) => JSON.stringify({ type: "welcome", sid });
const REFUSALS = new Set([
  JSON.stringify({ type: "disconnect", reason: "unauthorized", reconnect: false }),
  JSON.stringify({ type: "disconnect", reason: "token_expired", reconnect: false }),
]);

const ENV: SessionEnv = { url: "ws://x/cable", headers: {}, cstate: {}, istate: {} };
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ "{}[]:,\\é🎉\u0000';

function fuzzer(seed: number) {
  const rnd = prng(seed);
  const int = (n: number) => Math.floor(rnd() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  const randomString = (max: number) => {
    let s = "";
    const len = int(max);
    for (let i = 0; i < len; i++) s += pick([...ALPHABET]);
    return s;
  };
  const mutate = (s: string): string => {
    switch (int(6)) {
      case 0: {
        const i = int(s.length);
        return s.slice(0, i) + pick([...ALPHABET]) + s.slice(i + 1);
      }
      case 1:
        return s.slice(0, int(s.length));
      case 2: {
        const i = int(s.length);
        return s.slice(0, i) + randomString(8) + s.slice(i);
      }
      case 3:
        return s + s.slice(int(s.length));
      case 4:
        return s.split("").reverse().join("");
      default:
        return s.replace(/[A-Za-z]/, (c) => (c === c.toUpperCase() ? c.toLowerCase() : c.toUpperCase()));
    }
  };
  return { rnd, int, pick, randomString, mutate };
}

/** Independent acceptance check: HMAC alg, signature over the first two segments, claims. */
function tokenIsValid(token: string): boolean {
  const parts = token.split(".");
  if (parts.length !== 3) return false;
  try {
    const header = JSON.parse(Buffer.from(parts[0]!, "base64url").toString("utf8"));
    const hash = { HS256: "sha256", HS384: "sha384", HS512: "sha512" }[String(header.alg)];
    if (!hash) return false;
    const mac = createHmac(hash, SECRET).update(`${parts[0]}.${parts[1]}`).digest();
    if (!mac.equals(Buffer.from(parts[2]!, "base64url"))) return false;
    const payload = JSON.parse(Buffer.from(parts[1]!, "base64url").toString("utf8"));
    return typeof payload.ext === "string" && (payload.exp === undefined || payload.exp > nowSec());
  } catch {
    return false;
  }
}

async function seedTokens(): Promise<string[]> {
  const key = new TextEncoder().encode(SECRET);
  const exp = nowSec() + 3600;
  return [
    await new SignJWT({ ext: IDS }).setProtectedHeader({ alg: "HS256" }).setExpirationTime(exp).sign(key),
    await new SignJWT({ ext: IDS }).setProtectedHeader({ alg: "HS512" }).setExpirationTime(exp).sign(key),
    await new SignJWT({ ext: IDS }).setProtectedHeader({ alg: "HS256" }).setExpirationTime(1).sign(key),
    rawJwt({ alg: "none" }, { ext: IDS, exp }, SECRET, "none"),
    rawJwt({ alg: "HS256" }, { ext: IDS, exp }, "wrong"),
    rawJwt({ alg: "HS256" }, { ext: IDS, nbf: exp }, SECRET),
    rawJwt({ alg: "HS256" }, { ext: "x".repeat(9000) }, SECRET),
  ];
}

describe("fuzz: JWT identification", () => {
  it(`survives ${ROUNDS} random and mutated tokens and accepts only valid ones`, async () => {
    const f = fuzzer(0xc0ffee);
    const seeds = await seedTokens();
    const identifier = new JwtIdentifier({ secret: SECRET, param: "jid", enforce: false }, silentLogger);
    let accepted = 0;
    let refused = 0;
    for (let i = 0; i < ROUNDS; i++) {
      let token: string;
      switch (f.int(4)) {
        case 0:
          token = f.randomString(200);
          break;
        case 1:
          token = rawJwt(
            { alg: f.pick(["HS256", "HS384", "HS512", "none", "RS256", "ES256", "", "hs256"]) },
            f.pick([{ ext: IDS }, { ext: 1 }, "str", null, [], { ext: IDS, exp: "soon" }]),
            f.pick([SECRET, "other", ""]),
            f.pick(["sha256", "sha384", "sha512", "none"] as const),
          );
          break;
        default:
          token = f.mutate(f.pick(seeds));
      }
      const sid = `s${i}`;
      const viaHeader = f.rnd() < 0.5;
      const env: SessionEnv = {
        url: viaHeader ? "ws://h/cable" : `ws://h/cable?jid=${encodeURIComponent(token)}`,
        headers: viaHeader ? { "x-jid": token } : {},
        cstate: {},
        istate: {},
      };
      const res = await identifier.identify(sid, env);
      if (token === "") {
        assert.equal(res, null);
        continue;
      }
      assert.ok(res, `an answer for ${JSON.stringify(token)}`);
      if (res.status === "success") {
        accepted++;
        assert.ok(tokenIsValid(token), `accepted an invalid token: ${JSON.stringify(token)}`);
        assert.deepEqual(res.transmissions, [WELCOME(sid)]);
        assert.equal(res.identifiers, IDS);
      } else {
        refused++;
        assert.equal(res.status, "failure");
        assert.equal(res.transmissions.length, 1);
        assert.ok(REFUSALS.has(res.transmissions[0]!), res.transmissions[0]);
      }
    }
    // sanity: the valid seeds and the refusals were both exercised
    assert.ok(accepted > 0 && refused > ROUNDS / 2, `accepted ${accepted}, refused ${refused}`);
  });
});

function nameIsValid(signed: string): string | undefined {
  const parts = signed.split("--");
  if (parts.length !== 2) return undefined;
  const digest = createHmac("sha256", STREAMS_KEY).update(parts[0]!).digest("hex");
  if (digest !== parts[1]) return undefined;
  try {
    const value = JSON.parse(Buffer.from(parts[0]!, "base64").toString("utf8"));
    return typeof value === "string" ? value : undefined;
  } catch {
    return undefined;
  }
}

describe("fuzz: signed stream names", () => {
  it(`survives ${ROUNDS} random and mutated names and accepts only valid ones`, async () => {
    const f = fuzzer(0xbadc0de);
    const controller = new StreamsController({ secret: STREAMS_KEY, publicStreams: false });
    const seeds = [
      signStream("chat/1", STREAMS_KEY),
      signStream("ünïcødé 🎉", STREAMS_KEY),
      signStream(["chat", 1], STREAMS_KEY),
      signStream({ stream: "x" }, STREAMS_KEY),
      signStream("chat/1", "wrong"),
    ];
    let accepted = 0;
    for (let i = 0; i < ROUNDS; i++) {
      let signed: string;
      switch (f.int(4)) {
        case 0:
          signed = f.randomString(120);
          break;
        case 1: {
          // correctly signed random strings must always be accepted, exactly
          const name = f.randomString(40);
          signed = signStream(name, STREAMS_KEY);
          break;
        }
        default:
          signed = f.mutate(f.pick(seeds));
      }
      const identifier = JSON.stringify({
        channel: "$pubsub",
        signed_stream_name: f.rnd() < 0.95 ? signed : 7,
      });
      const res = await controller.subscribe({ sid: "sid", env: ENV, identifiers: "{}", identifier });
      const expected =
        typeof JSON.parse(identifier).signed_stream_name === "string" ? nameIsValid(signed) : undefined;
      if (res.status === "success") {
        accepted++;
        assert.notEqual(expected, undefined, `accepted an invalid name: ${JSON.stringify(signed)}`);
        assert.deepEqual(res.streams, [expected]);
      } else {
        assert.equal(expected === undefined || signed === "", true, `refused a valid name: ${signed}`);
        assert.deepEqual(res.transmissions, [JSON.stringify({ type: "reject_subscription", identifier })]);
      }
    }
    assert.ok(accepted > ROUNDS / 10, `accepted ${accepted}`);
  });
});
