import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { SignJWT } from "jose";
import { wrapIdentity } from "../../src/identity/factory.ts";
import { JwtIdentifier, MAX_TOKEN_LENGTH, verifyToken } from "../../src/identity/jwt.ts";
import { tokenFromUpgrade } from "../../src/identity/token.ts";
import type {
  ChannelContext,
  CommandResult,
  ConnectionContext,
  ConnectResult,
  Controller,
  SessionEnv,
} from "../../src/node/controller.ts";
import { NullController } from "../../src/node/null_controller.ts";
import { buildChannelRouter } from "../../src/streams/factory.ts";
import { makeNode, open, silentLogger } from "../support/fake_node.ts";
import { nowSec, rawJwt, signStream } from "../support/signing.ts";

const SECRET = "ruby-to-go";
const KEY = new TextEncoder().encode(SECRET);
const IDS = JSON.stringify({ user_id: "15" });
const UNAUTHORIZED = JSON.stringify({ type: "disconnect", reason: "unauthorized", reconnect: false });
const EXPIRED = JSON.stringify({ type: "disconnect", reason: "token_expired", reconnect: false });

async function token(
  claims: Record<string, unknown> = { ext: IDS },
  opts: { alg?: string; key?: string; exp?: number } = {},
): Promise<string> {
  const jwt = new SignJWT(claims).setProtectedHeader({ alg: opts.alg ?? "HS256" });
  jwt.setExpirationTime(opts.exp ?? nowSec() + 3600);
  return jwt.sign(new TextEncoder().encode(opts.key ?? SECRET));
}

const envWith = (url: string, headers: Record<string, string> = {}): SessionEnv => ({
  url,
  headers,
  cstate: {},
  istate: {},
});

/** Records what reaches the application: the RPC fallback, or its absence. */
class SpyController implements Controller {
  connects: string[] = [];
  disconnects: string[] = [];
  /** connection identifiers each application command was called with */
  commandIds: string[] = [];
  async authenticate({ sid }: ConnectionContext): Promise<ConnectResult> {
    this.connects.push(sid);
    return {
      status: "success",
      identifiers: "from-rpc",
      transmissions: [JSON.stringify({ type: "welcome", rpc: true })],
    };
  }
  async subscribe({ identifiers, identifier }: ChannelContext): Promise<CommandResult> {
    this.commandIds.push(identifiers);
    return {
      status: "success",
      transmissions: [JSON.stringify({ type: "confirm_subscription", identifier })],
      disconnectInterest: 1,
    };
  }
  async unsubscribe(): Promise<CommandResult | null> {
    return null;
  }
  async perform(): Promise<CommandResult | null> {
    return null;
  }
  async disconnect({ sid }: ConnectionContext): Promise<void> {
    this.disconnects.push(sid);
  }
}

describe("verifyToken", () => {
  it("accepts HS256, HS384 and HS512 tokens and returns the ext identifiers", async () => {
    for (const alg of ["HS256", "HS384", "HS512"]) {
      assert.deepEqual(await verifyToken(await token({ ext: IDS }, { alg }), KEY), {
        ok: true,
        identifiers: IDS,
      });
    }
  });

  it("reports an expired token only when its signature is valid", async () => {
    const expired = await token({ ext: IDS }, { exp: nowSec() - 60 });
    const verdict = await verifyToken(expired, KEY);
    assert.equal(verdict.ok, false);
    assert.equal(!verdict.ok && verdict.reason, "token_expired");
    const forgedExpired = await token({ ext: IDS }, { exp: nowSec() - 60, key: "other" });
    const forged = await verifyToken(forgedExpired, KEY);
    assert.equal(!forged.ok && forged.reason, "unauthorized");
  });

  it("refuses forged, unsigned, non-HMAC, not-yet-valid, malformed and oversized tokens", async () => {
    const exp = nowSec() + 3600;
    const cases: Record<string, string> = {
      "wrong key": await token({ ext: IDS }, { key: "not-a-valid-secret" }),
      "alg none": rawJwt({ alg: "none", typ: "JWT" }, { ext: IDS, exp }, SECRET, "none"),
      "alg none with a signature": rawJwt({ alg: "none" }, { ext: IDS, exp }, SECRET),
      "RS256 header over an HMAC signature": rawJwt({ alg: "RS256" }, { ext: IDS, exp }, SECRET),
      "HS384 header over an HS256 signature": rawJwt({ alg: "HS384" }, { ext: IDS, exp }, SECRET),
      "future nbf": await token({ ext: IDS, nbf: nowSec() + 600 }),
      "string exp": rawJwt({ alg: "HS256" }, { ext: IDS, exp: "tomorrow" }, SECRET),
      "no ext": await token({ sub: "15" }),
      "object ext": await token({ ext: { user_id: 15 } }),
      "array payload": rawJwt({ alg: "HS256" }, [1, 2], SECRET),
      "non-JSON payload": `${Buffer.from('{"alg":"HS256"}').toString("base64url")}.${Buffer.from("not json").toString("base64url")}.AAAA`,
      "not a JWT": "secret-token-not-a-jwt-at-all",
      "two segments": "a.b",
      "huge ext": await token({ ext: JSON.stringify({ blob: "x".repeat(MAX_TOKEN_LENGTH) }) }),
    };
    for (const [what, t] of Object.entries(cases)) {
      const verdict = await verifyToken(t, KEY);
      assert.deepEqual(verdict.ok ? verdict : verdict.reason, "unauthorized", what);
    }
  });
});

describe("JwtIdentifier", () => {
  const identifier = (enforce = false, param = "jid") =>
    new JwtIdentifier({ secret: SECRET, param, enforce }, silentLogger);

  it("identifies by query parameter or X-<param> header, welcoming with the sid", async () => {
    const t = await token();
    const expected: ConnectResult = {
      status: "success",
      identifiers: IDS,
      transmissions: [JSON.stringify({ type: "welcome", sid: "12" })],
    };
    assert.deepEqual(await identifier().identify("12", envWith(`ws://demo/cable?jid=${t}`)), expected);
    assert.deepEqual(await identifier().identify("12", envWith("ws://demo/cable", { "x-jid": t })), expected);
    const custom = identifier(false, "token");
    assert.deepEqual(await custom.identify("12", envWith(`ws://demo/cable?token=${t}`)), expected);
    assert.equal(await custom.identify("12", envWith(`ws://demo/cable?jid=${t}`)), null);
  });

  it("prefers the header over the query, as anycable-go does", async () => {
    const good = await token();
    const bad = await token({ ext: IDS }, { key: "x" });
    const res = await identifier().identify("1", envWith(`ws://d/cable?jid=${bad}`, { "x-jid": good }));
    assert.equal(res?.status, "success");
  });

  it("has no opinion on tokenless clients unless the token is enforced", async () => {
    assert.equal(await identifier().identify("1", envWith("ws://d/cable")), null);
    assert.equal(await identifier().identify("1", envWith("ws://d/cable?jid=")), null);
    assert.deepEqual(await identifier(true).identify("1", envWith("ws://d/cable")), {
      status: "failure",
      identifiers: "",
      transmissions: [UNAUTHORIZED],
    });
  });

  it("answers token_expired and unauthorized with reconnect false", async () => {
    const expired = await token({ ext: IDS }, { exp: nowSec() - 1 });
    const res = await identifier().identify("1", envWith(`ws://d/cable?jid=${expired}`));
    assert.deepEqual(res?.transmissions, [EXPIRED]);
    const bad = await identifier().identify("1", envWith("ws://d/cable?jid=abc.def.ghi"));
    assert.deepEqual(bad?.transmissions, [UNAUTHORIZED]);
  });
});

describe("tokenFromUpgrade", () => {
  it("reads the X-<param> header first, then an anycable-token sub-protocol", () => {
    const h = (init: Record<string, string>) => new Headers(init);
    assert.equal(tokenFromUpgrade(h({ "x-jid": "hdr" }), "x-jid"), "hdr");
    assert.equal(
      tokenFromUpgrade(
        h({ "sec-websocket-protocol": "actioncable-v1-json, anycable-token.abc.def" }),
        "x-jid",
      ),
      "abc.def",
    );
    assert.equal(
      tokenFromUpgrade(h({ "x-jid": "hdr", "sec-websocket-protocol": "anycable-token.sp" }), "x-jid"),
      "hdr",
    );
    assert.equal(tokenFromUpgrade(h({ "sec-websocket-protocol": "actioncable-v1-json" }), "x-jid"), "");
    assert.equal(tokenFromUpgrade(h({}), "x-jid"), "");
  });
});

const SIGNED_ID = JSON.stringify({ channel: "$pubsub", signed_stream_name: signStream("feed", SECRET) });
const APP_ID = JSON.stringify({ channel: "ChatChannel" });
const streamsSettings = {
  publicStreams: false,
  pubsubChannel: "$pubsub",
  secret: SECRET,
  whisper: false,
  presence: true,
  turboSecret: "",
  cableReadySecret: "",
};

describe("wrapIdentity", () => {
  const settings = (jwtSecret: string, skipAuth = false, enforceJwt = false) => ({
    skipAuth,
    jwtSecret,
    jwtParam: "jid",
    enforceJwt,
  });

  it("returns the application controller untouched when nothing is answered locally", () => {
    const app = new SpyController();
    assert.equal(wrapIdentity(app, settings(""), silentLogger), app);
  });

  it("authenticates JWT sessions without the application and falls back to it without a token", async () => {
    const app = new SpyController();
    const { node, metrics } = makeNode(wrapIdentity(app, settings(SECRET), silentLogger));
    const jwt = await open(node, "s1", `ws://d/cable?jid=${await token()}`);
    assert.deepEqual(jwt.socket.json(), [{ type: "welcome", sid: "s1" }]);
    assert.equal(jwt.session.identifiers, IDS);
    assert.deepEqual(app.connects, [], "no Connect call for a JWT session");
    const plain = await open(node, "s2");
    assert.deepEqual(plain.socket.json(), [{ type: "welcome", rpc: true }]);
    assert.deepEqual(app.connects, ["s2"], "a tokenless client goes to the application");
    // --disconnect_mode=auto: the JWT session needs no Disconnect call, the RPC one does
    node.closed(jwt.session);
    node.closed(plain.session);
    await Promise.resolve();
    assert.deepEqual(app.disconnects, ["s2"]);
    assert.equal(metrics.counterValue("failed_auths_total"), 0);
  });

  it("passes the token's identifiers to application commands; stream-only sessions skip Disconnect", async () => {
    const app = new SpyController();
    const router = buildChannelRouter(app, streamsSettings, silentLogger);
    const { node } = makeNode(wrapIdentity(router, settings(SECRET), silentLogger));
    const url = `ws://d/cable?jid=${await token()}`;
    const streamsOnly = await open(node, "s1", url);
    await streamsOnly.send({ command: "subscribe", identifier: SIGNED_ID });
    assert.equal(streamsOnly.socket.json().at(-1)?.type, "confirm_subscription");
    const withChannel = await open(node, "s2", url);
    await withChannel.send({ command: "subscribe", identifier: SIGNED_ID });
    await withChannel.send({ command: "subscribe", identifier: APP_ID });
    assert.deepEqual(app.commandIds, [IDS], "the ext claim became the connection identifiers");
    node.closed(streamsOnly.session);
    node.closed(withChannel.session);
    await Promise.resolve();
    assert.deepEqual(app.disconnects, ["s2"], "--disconnect_mode=auto: only the RPC-channel session");
    assert.deepEqual(app.connects, []);
  });

  it("under --norpc refuses a tokenless client through the NullController", async () => {
    const { node, metrics } = makeNode(wrapIdentity(new NullController(), settings(SECRET), silentLogger));
    const c = await open(node, "s1");
    assert.deepEqual(c.socket.frames, [UNAUTHORIZED]);
    assert.deepEqual(c.socket.closed, { code: 1000, reason: "Auth Failed" });
    assert.equal(metrics.counterValue("failed_auths_total"), 1);
  });

  it("with --noauth accepts tokenless clients publicly but still refuses bad tokens", async () => {
    const app = new SpyController();
    const { node, metrics } = makeNode(wrapIdentity(app, settings(SECRET, true), silentLogger));
    const anon = await open(node, "anon");
    assert.equal(anon.session.identifiers, JSON.stringify({ sid: "anon" }));
    assert.deepEqual(anon.socket.json(), [{ type: "welcome", sid: "anon" }]);
    const bad = await open(node, "bad", "ws://d/cable?jid=forged.token.here");
    assert.deepEqual(bad.socket.frames, [UNAUTHORIZED]);
    assert.equal(bad.socket.closed?.reason, "Auth Failed");
    assert.deepEqual(app.connects, []);
    assert.equal(metrics.counterValue("failed_auths_total"), 1);
  });

  it("with --enforce_jwt refuses tokenless clients even under --noauth", async () => {
    const app = new SpyController();
    const { node, metrics } = makeNode(wrapIdentity(app, settings(SECRET, true, true), silentLogger));
    const c = await open(node, "s1");
    assert.deepEqual(c.socket.frames, [UNAUTHORIZED]);
    const expired = await open(node, "s2", `ws://d/cable?jid=${await token({ ext: IDS }, { exp: 1 })}`);
    assert.deepEqual(expired.socket.frames, [EXPIRED]);
    assert.deepEqual(app.connects, []);
    assert.equal(metrics.counterValue("failed_auths_total"), 2);
  });
});
