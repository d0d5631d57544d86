// The OCPP executor inside an in-process node, with an application controller that plays the OCPP
// channel's contract under a non-default name (--ocpp_channel=EvChannel): what the application is
// asked when a station boots and calls, what the station is sent (CallResult / CallError / Call
// frames), remote commands and the station's answers to them, and the protocol's own errors.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { loadConfig } from "../../src/config/index.ts";
import { Hub } from "../../src/hub/hub.ts";
import { Metrics } from "../../src/metrics/registry.ts";
import type { ChannelContext, ConnectionContext, Controller } from "../../src/node/controller.ts";
import { Node } from "../../src/node/node.ts";
import { OcppExecutor, stationIdOf, UNSUPPORTED_PROTOCOL_CLOSE } from "../../src/protocols/ocpp/executor.ts";
import { fromConfig, Ocpp } from "../../src/protocols/ocpp/index.ts";
import { OCPP_PROTOCOL } from "../../src/protocols/ocpp/protocol.ts";
import { FakeSocket, nodeBroker, silentLogger } from "../support/fake_node.ts";

const CHANNEL = "EvChannel";
const NOW = Date.UTC(2026, 0, 2, 3, 4, 5);
const NOW_ISO = "2026-01-02T03:04:05.000Z";

interface Call {
  kind: string;
  identifier?: string;
  data?: Record<string, unknown>;
  url?: string;
}

interface AppOpts {
  refuse?: boolean;
  rejectSubscribe?: boolean;
}

/**
 * The application: streams `ev/<sn>` on subscribe; `authorize` answers with its own Ack, `boom`
 * (DataTransfer with vendorId "boom") fails, every other action transmits nothing.
 */
function application(calls: Call[], opts: AppOpts = {}): Controller {
  return {
    async authenticate(ctx: ConnectionContext) {
      calls.push({ kind: "connect", url: ctx.env.url });
      if (opts.refuse) {
        return {
          status: "failure",
          identifiers: "",
          transmissions: ['{"type":"disconnect","reason":"unauthorized","reconnect":false}'],
        };
      }
      return { status: "success", identifiers: '{"station":"x"}', transmissions: ['{"type":"welcome"}'] };
    },
    async subscribe(ctx: ChannelContext) {
      calls.push({ kind: "subscribe", identifier: ctx.identifier });
      if (opts.rejectSubscribe) {
        return {
          status: "failure",
          transmissions: [JSON.stringify({ identifier: ctx.identifier, type: "reject_subscription" })],
        };
      }
      const sn = (JSON.parse(ctx.identifier) as { sn: string }).sn;
      return {
        status: "success",
        transmissions: [JSON.stringify({ identifier: ctx.identifier, type: "confirm_subscription" })],
        streams: [`ev/${sn}`],
      };
    },
    async unsubscribe(ctx: ChannelContext) {
      calls.push({ kind: "unsubscribe", identifier: ctx.identifier });
      return { status: "success", transmissions: [], stopAllStreams: true };
    },
    async perform(ctx: ChannelContext, data: string) {
      const d = JSON.parse(data) as Record<string, unknown>;
      calls.push({ kind: "perform", identifier: ctx.identifier, data: d });
      if (d.action === "authorize") {
        const message = { command: "Ack", id: d.id, payload: { idTagInfo: { status: "Accepted" } } };
        return {
          status: "success",
          transmissions: [JSON.stringify({ identifier: ctx.identifier, message })],
        };
      }
      if ((d.payload as Record<string, unknown> | undefined)?.vendorId === "boom") {
        return { status: "error", transmissions: [], errorMsg: "boom" };
      }
      return { status: "success", transmissions: [] };
    },
    async disconnect() {
      calls.push({ kind: "disconnect" });
    },
  };
}

function setup(opts: AppOpts & { granular?: boolean } = {}) {
  const calls: Call[] = [];
  const executor = new OcppExecutor(application(calls, opts), {
    path: "/ocpp",
    channel: CHANNEL,
    heartbeatIntervalSec: 45,
    granularActions: opts.granular ?? true,
    logger: silentLogger,
    now: () => NOW,
  });
  const node: Node = new Node({
    controller: executor.controller,
    hub: new Hub(),
    broker: nodeBroker(() => node),
    metrics: new Metrics(),
    logger: silentLogger,
    pongTimeoutMs: 0,
    pingIntervalMs: 0,
    pingPrecision: "s",
    nativePings: false,
    maxPendingBytes: 0,
    writeTimeoutMs: 0,
    disconnectMode: "auto",
    maxSubscriptions: 0,
    executors: new Map([[OCPP_PROTOCOL, executor]]),
  });
  let n = 0;
  const open = async (station = "CP-1") => {
    const socket = new FakeSocket();
    const session = node.open(
      {
        sid: `s${++n}`,
        url: `ws://x/ocpp/${station}`,
        headers: {},
        protocol: OCPP_PROTOCOL,
        encoder: executor.newEncoder(),
      },
      socket,
    );
    await session.chain;
    const send = async (msg: unknown) => {
      const frame = typeof msg === "string" ? msg : JSON.stringify(msg);
      node.message(session, frame, frame.length);
      await session.chain;
    };
    const boot = () =>
      send([
        2,
        "b1",
        "BootNotification",
        { chargePointVendor: "V", chargePointModel: "M", meterSerialNumber: "SN1" },
      ]);
    return { session, socket, send, boot };
  };
  return { node, executor, calls, open };
}

const identifier = (sn: string, station: string) =>
  JSON.stringify({ channel: CHANNEL, sn, station_id: station });

describe("OCPP stations in the node", () => {
  it("the station id is the path segment after the prefix", () => {
    assert.equal(stationIdOf("/ocpp/CP-1", "/ocpp"), "CP-1");
    assert.equal(stationIdOf("/ocpp/CP%201", "/ocpp"), "CP 1");
    assert.equal(stationIdOf("/ocpp/", "/ocpp"), undefined);
    assert.equal(stationIdOf("/ocpp/a/b", "/ocpp"), undefined);
    assert.equal(stationIdOf("/ocppx/a", "/ocpp"), undefined);
    assert.equal(stationIdOf("/ocpp/%E0%A4%A", "/ocpp"), undefined);
  });

  it("BootNotification: connect, subscribe {channel, sn, station_id}, perform boot_notification; default answer with currentTime and interval", async () => {
    const { calls, open, executor } = setup();
    const c = await open();
    assert.deepEqual(calls, []);
    assert.deepEqual(c.socket.frames, []);
    await c.boot();
    const id = identifier("SN1", "CP-1");
    assert.deepEqual(calls, [
      { kind: "connect", url: "ws://x/ocpp/CP-1" },
      { kind: "subscribe", identifier: id },
      {
        kind: "perform",
        identifier: id,
        data: {
          action: "boot_notification",
          id: "b1",
          command: "BootNotification",
          payload: { chargePointVendor: "V", chargePointModel: "M", meterSerialNumber: "SN1" },
        },
      },
    ]);
    // welcome and confirmation have no OCPP frame: the station sees only the CallResult
    assert.deepEqual(c.socket.json(), [
      [3, "b1", { status: "Accepted", currentTime: NOW_ISO, interval: 45 }],
    ]);
    assert.equal(executor.booted, 1);
    // a second BootNotification only performs
    await c.send([2, "b2", "BootNotification", { chargePointVendor: "V", chargePointModel: "M" }]);
    const all: Call[] = calls;
    assert.equal(all.length, 4);
    assert.equal(all[3]?.kind, "perform");
    assert.deepEqual(c.socket.json().at(-1), [
      3,
      "b2",
      { status: "Accepted", currentTime: NOW_ISO, interval: 45 },
    ]);
  });

  it("the serial number falls back to chargePointSerialNumber, then the station id", async () => {
    const { calls, open } = setup();
    const a = await open("A");
    await a.send([2, "1", "BootNotification", { chargePointSerialNumber: "CPS" }]);
    assert.equal(calls[1]?.identifier, identifier("CPS", "A"));
    const b = await open("B");
    await b.send([2, "1", "BootNotification", {}]);
    assert.equal(calls[4]?.identifier, identifier("B", "B"));
  });

  it("later actions perform their snake_case action; the application's own Ack is the CallResult", async () => {
    const { calls, open } = setup();
    const c = await open();
    await c.boot();
    await c.send([
      2,
      "s1",
      "StatusNotification",
      { connectorId: 1, status: "Available", errorCode: "NoError" },
    ]);
    assert.deepEqual(calls.at(-1)?.data, {
      action: "status_notification",
      id: "s1",
      command: "StatusNotification",
      payload: { connectorId: 1, status: "Available", errorCode: "NoError" },
    });
    assert.deepEqual(c.socket.json().at(-1), [3, "s1", { status: "Accepted" }]);
    await c.send([2, "a1", "Authorize", { idTag: "T1" }]);
    assert.equal(calls.at(-1)?.data?.action, "authorize");
    // exactly one answer: the application's, no default one after it
    assert.deepEqual(c.socket.json().slice(-2), [
      [3, "s1", { status: "Accepted" }],
      [3, "a1", { idTagInfo: { status: "Accepted" } }],
    ]);
    await c.send([
      2,
      "t1",
      "StartTransaction",
      { connectorId: 1, idTag: "T1", meterStart: 0, timestamp: NOW_ISO },
    ]);
    assert.equal(calls.at(-1)?.data?.action, "start_transaction");
  });

  it("without granular actions every call performs receive (no action field)", async () => {
    const { calls, open } = setup({ granular: false });
    const c = await open();
    await c.boot();
    assert.deepEqual(Object.keys(calls[2]?.data ?? {}), ["id", "command", "payload"]);
    await c.send([2, "m1", "MeterValues", { connectorId: 1, meterValue: [] }]);
    assert.deepEqual(calls.at(-1)?.data, {
      id: "m1",
      command: "MeterValues",
      payload: { connectorId: 1, meterValue: [] },
    });
  });

  it("Heartbeat is answered with the current time, without asking the application", async () => {
    const { calls, open } = setup();
    const c = await open();
    await c.boot();
    const before = calls.length;
    await c.send([2, "h1", "Heartbeat", {}]);
    assert.equal(calls.length, before);
    assert.deepEqual(c.socket.json().at(-1), [3, "h1", { currentTime: NOW_ISO }]);
  });

  it("a remote command broadcast becomes a Call with a unique id; the station's CallResult performs ack, its CallError performs error", async () => {
    const { node, calls, open } = setup();
    const c = await open();
    const other = await open("CP-2");
    await c.boot();
    await other.send([2, "o", "BootNotification", { meterSerialNumber: "SN2" }]);
    const otherFrames = other.socket.frames.length;
    node.broadcast({
      stream: "ev/SN1",
      dataJson: JSON.stringify({
        command: "TriggerMessage",
        id: "",
        payload: { requestedMessage: "BootNotification" },
      }),
    });
    node.broadcast({
      stream: "ev/SN1",
      dataJson: JSON.stringify({ command: "Reset", payload: { type: "Soft" } }),
    });
    node.broadcast({
      stream: "ev/SN1",
      dataJson: JSON.stringify({ command: "UnlockConnector", id: "mine-1", payload: { connectorId: 1 } }),
    });
    const [call1, call2, call3] = c.socket.json().slice(-3) as unknown as [unknown[], unknown[], unknown[]];
    assert.equal(call1[0], 2);
    assert.equal(typeof call1[1], "string");
    assert.ok((call1[1] as string).length > 0 && (call1[1] as string).length <= 36);
    assert.deepEqual(call1.slice(2), ["TriggerMessage", { requestedMessage: "BootNotification" }]);
    assert.equal(call2[0], 2);
    assert.notEqual(call2[1], call1[1]);
    assert.deepEqual(call2.slice(2), ["Reset", { type: "Soft" }]);
    assert.deepEqual(call3, [2, "mine-1", "UnlockConnector", { connectorId: 1 }]);
    // another station's stream: nothing reached the other one
    assert.equal(other.socket.frames.length, otherFrames);

    const id = identifier("SN1", "CP-1");
    await c.send([3, call1[1], { status: "Accepted" }]);
    assert.deepEqual(calls.at(-1), {
      kind: "perform",
      identifier: id,
      data: { action: "ack", id: call1[1], command: "Ack", payload: { status: "Accepted" } },
    });
    await c.send([4, "mine-1", "NotSupported", "no connector", { hint: 1 }]);
    assert.deepEqual(calls.at(-1), {
      kind: "perform",
      identifier: id,
      data: {
        action: "error",
        id: "mine-1",
        command: "Error",
        code: "NotSupported",
        message: "no connector",
        payload: { hint: 1 },
      },
    });
    // an answer is taken once: a second CallResult for the same id is one for an unknown id
    const performs = calls.length;
    await c.send([3, call1[1], { status: "Accepted" }]);
    assert.equal(calls.length, performs);
    assert.deepEqual(c.socket.json().at(-1), [
      4,
      call1[1],
      "GenericError",
      "CallResult for an unknown message id",
      {},
    ]);
  });

  it("the application's Error transmission is a CallError with its code (GenericError when not OCPP's)", async () => {
    const { node, open } = setup();
    const c = await open();
    await c.boot();
    node.broadcast({
      stream: "ev/SN1",
      dataJson: JSON.stringify({
        command: "Error",
        id: "x1",
        code: "SecurityError",
        message: "nope",
        payload: {},
      }),
    });
    node.broadcast({
      stream: "ev/SN1",
      dataJson: JSON.stringify({ command: "Error", id: "x2", code: "Weird", message: "m" }),
    });
    assert.deepEqual(c.socket.json().slice(-2), [
      [4, "x1", "SecurityError", "nope", {}],
      [4, "x2", "GenericError", "m", {}],
    ]);
  });

  it("malformed frames and unknown actions get the protocol's CallError; a bad CallError is not answered", async () => {
    const { calls, open } = setup();
    const c = await open();
    await c.boot();
    const performs = calls.length;
    const cases: [unknown, unknown[]][] = [
      ["not json", [4, "-1", "FormationViolation", "Message is not valid JSON", {}]],
      [{ a: 1 }, [4, "-1", "FormationViolation", "Message is not a JSON array", {}]],
      [
        [9, "z"],
        [4, "z", "FormationViolation", "Unknown message type id", {}],
      ],
      [
        [2, "z", "Heartbeat"],
        [4, "z", "ProtocolError", "Call must have 4 elements", {}],
      ],
      [
        [2, "z", "Heartbeat", []],
        [4, "z", "FormationViolation", "Payload must be a JSON object", {}],
      ],
      [
        [2, "u1", "FlyToTheMoon", {}],
        [4, "u1", "NotImplemented", "Unknown action FlyToTheMoon", {}],
      ],
      [
        [2, "u2", "Reset", { type: "Hard" }],
        [4, "u2", "NotSupported", "Reset is not an action a charge point initiates", {}],
      ],
      [
        [3, "never-sent", {}],
        [4, "never-sent", "GenericError", "CallResult for an unknown message id", {}],
      ],
    ];
    for (const [frame, answer] of cases) {
      await c.send(frame);
      assert.deepEqual(c.socket.json().at(-1), answer, JSON.stringify(frame));
    }
    const count = c.socket.frames.length;
    await c.send([4, "never-sent", "GenericError", "x", {}]);
    await c.send([4, "bad"]);
    assert.equal(c.socket.frames.length, count);
    assert.equal(calls.length, performs);
    // the session is still served
    assert.equal(c.session.isClosed, false);
    await c.send([2, "h", "Heartbeat", {}]);
    assert.deepEqual(c.socket.json().at(-1), [3, "h", { currentTime: NOW_ISO }]);
  });

  it("a call before BootNotification is a SecurityError, and asks the application nothing", async () => {
    const { calls, open } = setup();
    const c = await open();
    await c.send([2, "h0", "Heartbeat", {}]);
    await c.send([2, "a0", "Authorize", { idTag: "T" }]);
    assert.deepEqual(calls, []);
    assert.deepEqual(c.socket.json(), [
      [4, "h0", "SecurityError", "BootNotification has not been accepted", {}],
      [4, "a0", "SecurityError", "BootNotification has not been accepted", {}],
    ]);
  });

  it("an action the application fails is an InternalError CallError", async () => {
    const { open } = setup();
    const c = await open();
    await c.boot();
    await c.send([2, "d1", "DataTransfer", { vendorId: "boom" }]);
    assert.deepEqual(c.socket.json().at(-1), [
      4,
      "d1",
      "InternalError",
      "The application failed to handle the action",
      {},
    ]);
    assert.equal(c.session.isClosed, false);
  });

  it("a refused station is closed; a rejected subscription answers BootNotification Rejected", async () => {
    {
      const { open } = setup({ refuse: true });
      const c = await open();
      await c.boot();
      assert.ok(c.socket.closed);
      assert.deepEqual(c.socket.frames, []);
    }
    {
      const { calls, open, executor } = setup({ rejectSubscribe: true });
      const c = await open();
      await c.boot();
      assert.deepEqual(
        calls.map((x) => x.kind),
        ["connect", "subscribe"],
      );
      assert.deepEqual(c.socket.json(), [
        [3, "b1", { status: "Rejected", currentTime: NOW_ISO, interval: 45 }],
      ]);
      assert.equal(executor.booted, 0);
      assert.equal(c.session.isClosed, false);
    }
  });

  it("a station that offered only other sub-protocols is closed as it opens", async () => {
    const { node, executor } = setup();
    const socket = new FakeSocket();
    const request = {
      sid: "r1",
      url: "ws://x/ocpp/CP-9",
      headers: {},
      protocol: OCPP_PROTOCOL,
      encoder: executor.newEncoder(),
    };
    executor.refuse(request);
    const session = node.open(request, socket);
    await session.chain;
    assert.equal(socket.closed?.code, UNSUPPORTED_PROTOCOL_CLOSE);
  });

  it("a closed station is forgotten and its channel left", async () => {
    const { node, calls, open, executor } = setup();
    const c = await open();
    await c.boot();
    node.closed(c.session);
    await c.session.chain;
    await node.settled(c.session);
    assert.equal(executor.booted, 0);
    assert.ok(calls.some((x) => x.kind === "disconnect"));
  });
});

describe("OCPP options and endpoint", () => {
  const optsOf = (argv: string[]) => {
    const loaded = loadConfig({ argv, env: {}, readFile: () => undefined });
    if (loaded.kind !== "run") throw new Error(JSON.stringify(loaded));
    return fromConfig(loaded.config);
  };

  it("off by default; the prefix normalised; the other options as given", () => {
    assert.deepEqual(optsOf([]), {
      enabled: false,
      path: "",
      channel: "OCPPChannel",
      heartbeatIntervalSec: 30,
      granularActions: true,
    });
    assert.equal(optsOf(["--ocpp_path=/ocpp/"]).path, "/ocpp");
    assert.equal(optsOf(["--ocpp_path=ocpp"]).path, "/ocpp");
    assert.equal(optsOf(["--ocpp_path=/ev/ocpp"]).path, "/ev/ocpp");
    const root = optsOf(["--ocpp_path=/"]);
    assert.deepEqual([root.enabled, root.path], [true, ""]);
    const o = optsOf([
      "--ocpp_path=/ocpp",
      "--ocpp_channel=EvChannel",
      "--ocpp_heartbeat_interval=60",
      "--ocpp_granular_actions=false",
    ]);
    assert.deepEqual(o, {
      enabled: true,
      path: "/ocpp",
      channel: "EvChannel",
      heartbeatIntervalSec: 60,
      granularActions: false,
    });
  });

  it("takes the paths under its prefix; at / only WebSocket upgrades", () => {
    const app = application([]);
    const upgrade = new Request("http://x/", { headers: { upgrade: "websocket" } });
    const plain = new Request("http://x/");
    const ocpp = new Ocpp(optsOf(["--ocpp_path=/ocpp"]), app, silentLogger);
    assert.equal(ocpp.matches("/ocpp/CP-1", plain), true);
    assert.equal(ocpp.matches("/ocpp", upgrade), false);
    assert.equal(ocpp.matches("/ocppx/CP-1", upgrade), false);
    const root = new Ocpp(optsOf(["--ocpp_path=/"]), app, silentLogger);
    assert.equal(root.matches("/CP-1", upgrade), true);
    assert.equal(root.matches("/health", plain), false);
  });
});
