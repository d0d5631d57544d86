// OCPP 1.6J (--ocpp_path) against the real server process, per runtime: charging stations simulated
// with `ws` speaking OCPP-J (sub-protocol ocpp1.6, [type, id, ...] frames), an application on a
// @grpc/grpc-js backend playing the OCPP channel of AnyCable Pro's docs (stream_for "ev/<sn>",
// authorize answers with its own Ack), and remote commands broadcast through /_broadcast.
import { afterAll, beforeAll, describe, it } from "bun:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import {
  type CommandReq,
  type CommandRes,
  type ConnectReq,
  type ConnectRes,
  type GrpcBackend,
  Status,
  startGrpcBackend,
} from "../support/grpc_backend.ts";
import { publish } from "../support/publish.ts";
import { rawUpgrade } from "../support/raw_ws.ts";
import { e2eRuntimes, type ServerProcess, startServer } from "../support/server.ts";
import { waitFor } from "../support/wait.ts";
import { connect, type RawClient } from "../support/ws_client.ts";

const SECRET = "ocpp-e2e-secret";
const BROADCAST_KEY = createHmac("sha256", SECRET).update("broadcast-cable").digest("hex");
const runtimes = e2eRuntimes(["bun", "deno"]);
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/;

type Frame = unknown[];

/** The OCPP channel, as a gRPC application. */
function ocppApp(backend: GrpcBackend): void {
  backend.onConnect = (req: ConnectReq): ConnectRes => {
    const station = new URL(req.env.url).pathname.split("/").at(-1) ?? "";
    if (station === "banned") {
      return {
        status: Status.FAILURE,
        transmissions: [JSON.stringify({ type: "disconnect", reason: "unauthorized", reconnect: false })],
      };
    }
    return {
      status: Status.SUCCESS,
      identifiers: JSON.stringify({ station }),
      transmissions: [JSON.stringify({ type: "welcome" })],
    };
  };
  backend.onCommand = (req: CommandReq): CommandRes => {
    const id = req.identifier;
    const params = JSON.parse(id) as { channel: string; sn: string; station_id: string };
    if (params.channel !== "OCPPChannel") return { status: Status.ERROR, error_msg: "unknown channel" };
    if (req.command === "subscribe") {
      return {
        status: Status.SUCCESS,
        streams: [`ev/${params.sn}`],
        transmissions: [JSON.stringify({ identifier: id, type: "confirm_subscription" })],
      };
    }
    if (req.command === "unsubscribe") return { status: Status.SUCCESS };
    const data = JSON.parse(req.data) as { action: string; id: string; payload: Record<string, unknown> };
    if (data.action === "authorize") {
      const message = { command: "Ack", id: data.id, payload: { idTagInfo: { status: "Accepted" } } };
      return { status: Status.SUCCESS, transmissions: [JSON.stringify({ identifier: id, message })] };
    }
    if (data.action === "start_transaction") {
      const message = {
        command: "Ack",
        id: data.id,
        payload: { transactionId: 77, idTagInfo: { status: "Accepted" } },
      };
      return { status: Status.SUCCESS, transmissions: [JSON.stringify({ identifier: id, message })] };
    }
    return { status: Status.SUCCESS };
  };
}

for (const runtime of runtimes) {
  describe(`[${runtime}] OCPP 1.6J: ws stations against an OCPP channel`, () => {
    let backend: GrpcBackend;
    let server: ServerProcess;
    let base = "";
    const stations: RawClient[] = [];
    const broadcast = (stream: string, message: unknown) =>
      publish(`${server.url}/_broadcast`, { stream, data: JSON.stringify(message) }, BROADCAST_KEY);
    const station = async (id: string, protocol: string | string[] = "ocpp1.6") => {
      const c = await connect(`${base}/${id}`, protocol);
      stations.push(c);
      return c;
    };
    /** The station's next frame of `type` (for `id` when given). */
    const frame = async (c: RawClient, type: number, id?: string): Promise<Frame> =>
      (await c.next(
        (m) => {
          const f = m as unknown as Frame;
          return Array.isArray(f) && f[0] === type && (id === undefined || f[1] === id);
        },
        `frame ${type} ${id ?? ""}`,
      )) as unknown as Frame;
    const boot = async (c: RawClient, sn: string) => {
      c.send([
        2,
        `boot-${sn}`,
        "BootNotification",
        { chargePointVendor: "V", chargePointModel: "M", meterSerialNumber: sn },
      ]);
      return frame(c, 3, `boot-${sn}`);
    };
    const performs = () => backend.callsOf("Command", "message").map((c) => c.request as CommandReq);

    beforeAll(async () => {
      backend = await startGrpcBackend();
      ocppApp(backend);
      server = await startServer(runtime, {
        args: [
          `--rpc_host=${backend.address}`,
          `--secret=${SECRET}`,
          "--ocpp_path=/ocpp",
          "--ocpp_heartbeat_interval=42",
          "--broadcast_adapter=http",
        ],
      });
      base = `ws://127.0.0.1:${server.port}/ocpp`;
    });
    afterAll(async () => {
      for (const c of stations) c.close();
      await server?.stop();
      await backend?.stop();
    });

    it("announces the endpoint, and serves the options (no 'not served yet' line)", () => {
      assert.match(
        server.output(),
        new RegExp(
          `Handle OCPP v1\\.6 WebSocket connections at http://127\\.0\\.0\\.1:${server.port}/ocpp/\\{station_id\\}`,
        ),
      );
      assert.doesNotMatch(server.output(), /option ocpp.* not served yet/);
    });

    it("BootNotification: ocpp1.6 negotiated, Connect + subscribe + boot_notification, the default answer", async () => {
      backend.calls.length = 0;
      const c = await station("CP-1");
      assert.equal(c.protocol, "ocpp1.6");
      const answer = await boot(c, "SN-1");
      assert.equal(answer.length, 3);
      const payload = answer[2] as Record<string, unknown>;
      assert.equal(payload.status, "Accepted");
      assert.equal(payload.interval, 42);
      assert.match(String(payload.currentTime), ISO);
      const [conn] = backend.callsOf("Connect");
      assert.equal(new URL((conn!.request as ConnectReq).env.url).pathname, "/ocpp/CP-1");
      const [sub] = backend.callsOf("Command", "subscribe").map((x) => x.request as CommandReq);
      assert.deepEqual(JSON.parse(sub!.identifier), {
        channel: "OCPPChannel",
        sn: "SN-1",
        station_id: "CP-1",
      });
      const [perform] = performs();
      assert.equal(perform!.identifier, sub!.identifier);
      assert.deepEqual(JSON.parse(perform!.data), {
        action: "boot_notification",
        id: "boot-SN-1",
        command: "BootNotification",
        payload: { chargePointVendor: "V", chargePointModel: "M", meterSerialNumber: "SN-1" },
      });
      // welcome and confirm_subscription have no OCPP frame
      assert.deepEqual(c.messages, []);
    });

    it("actions: snake_case performs, the application's Acks, default acks, Heartbeat", async () => {
      const c = await station("CP-2");
      await boot(c, "SN-2");
      backend.calls.length = 0;
      c.send([2, "a1", "Authorize", { idTag: "TAG" }]);
      assert.deepEqual(await frame(c, 3, "a1"), [3, "a1", { idTagInfo: { status: "Accepted" } }]);
      c.send([
        2,
        "t1",
        "StartTransaction",
        { connectorId: 1, idTag: "TAG", meterStart: 0, timestamp: "2026-01-01T00:00:00Z" },
      ]);
      assert.deepEqual(await frame(c, 3, "t1"), [
        3,
        "t1",
        { transactionId: 77, idTagInfo: { status: "Accepted" } },
      ]);
      c.send([2, "s1", "StatusNotification", { connectorId: 1, status: "Charging", errorCode: "NoError" }]);
      assert.deepEqual(await frame(c, 3, "s1"), [3, "s1", { status: "Accepted" }]);
      assert.deepEqual(
        performs().map((p) => (JSON.parse(p.data) as { action: string }).action),
        ["authorize", "start_transaction", "status_notification"],
      );
      const before = performs().length;
      c.send([2, "h1", "Heartbeat", {}]);
      const hb = await frame(c, 3, "h1");
      assert.match(String((hb[2] as { currentTime: string }).currentTime), ISO);
      assert.equal(performs().length, before);
    });

    it("remote commands: a broadcast becomes a Call with a unique id; the CallResult performs ack, the CallError error", async () => {
      const c = await station("CP-3");
      const other = await station("CP-4");
      await boot(c, "SN-3");
      await boot(other, "SN-4");
      backend.calls.length = 0;
      await broadcast("ev/SN-3", {
        command: "TriggerMessage",
        id: "",
        payload: { requestedMessage: "StatusNotification" },
      });
      await broadcast("ev/SN-3", { command: "Reset", payload: { type: "Soft" } });
      const call1 = await frame(c, 2);
      const call2 = await frame(c, 2);
      assert.deepEqual(call1.slice(2), ["TriggerMessage", { requestedMessage: "StatusNotification" }]);
      assert.deepEqual(call2.slice(2), ["Reset", { type: "Soft" }]);
      assert.match(String(call1[1]), /^[0-9a-f-]{36}$/);
      assert.notEqual(call1[1], call2[1]);
      c.send([3, call1[1], { status: "Accepted" }]);
      c.send([4, call2[1], "NotSupported", "soft reset unsupported", {}]);
      await waitFor(() => (performs().length >= 2 ? true : undefined), "ack and error performed");
      const [ack, error] = performs().map((p) => JSON.parse(p.data));
      assert.deepEqual(ack, { action: "ack", id: call1[1], command: "Ack", payload: { status: "Accepted" } });
      assert.deepEqual(error, {
        action: "error",
        id: call2[1],
        command: "Error",
        code: "NotSupported",
        message: "soft reset unsupported",
        payload: {},
      });
      // the other station got nothing of it
      other.send([2, "h", "Heartbeat", {}]);
      await frame(other, 3, "h");
      assert.deepEqual(other.messages, []);
    });

    it("bad input: the protocol's CallErrors, nothing else breaks, other stations unaffected", async () => {
      const c = await station("CP-5");
      const other = await station("CP-6");
      await boot(c, "SN-5");
      await boot(other, "SN-6");
      c.sendRaw("not json");
      assert.deepEqual(await frame(c, 4, "-1"), [
        4,
        "-1",
        "FormationViolation",
        "Message is not valid JSON",
        {},
      ]);
      c.send([2, "z1", "Heartbeat"]);
      assert.deepEqual(await frame(c, 4, "z1"), [4, "z1", "ProtocolError", "Call must have 4 elements", {}]);
      c.send([2, "u1", "FlyToTheMoon", {}]);
      assert.deepEqual(await frame(c, 4, "u1"), [
        4,
        "u1",
        "NotImplemented",
        "Unknown action FlyToTheMoon",
        {},
      ]);
      c.send([3, "nobody-asked", { status: "Accepted" }]);
      assert.deepEqual(await frame(c, 4, "nobody-asked"), [
        4,
        "nobody-asked",
        "GenericError",
        "CallResult for an unknown message id",
        {},
      ]);
      // still served, and the other station too
      c.send([2, "h2", "Heartbeat", {}]);
      await frame(c, 3, "h2");
      other.send([2, "h3", "Heartbeat", {}]);
      await frame(other, 3, "h3");
      assert.equal(c.closeCode, undefined);
      assert.equal(other.closeCode, undefined);
      assert.deepEqual(other.messages, []);
    });

    it("a call before BootNotification is a SecurityError; a refused station is closed", async () => {
      const c = await station("CP-7");
      c.send([2, "early", "Heartbeat", {}]);
      assert.deepEqual(await frame(c, 4, "early"), [
        4,
        "early",
        "SecurityError",
        "BootNotification has not been accepted",
        {},
      ]);
      const banned = await station("banned");
      banned.send([2, "b", "BootNotification", { chargePointVendor: "V", chargePointModel: "M" }]);
      await banned.waitClosed();
      assert.deepEqual(banned.messages, []);
    });

    it("sub-protocols: none offered is served; only others offered: handshake without one, then closed; no station id: 404", async () => {
      const none = await station("CP-8", []);
      assert.equal(none.protocol, "");
      none.send([2, "h", "Heartbeat", {}]);
      await frame(none, 4, "h");
      // ws refuses a handshake answered without the sub-protocol it asked for: a hand-rolled one
      const raw = await rawUpgrade(server.port, "/ocpp/CP-9", "ocpp2.0.1");
      try {
        assert.equal(raw.status, 101);
        assert.equal(raw.headers["sec-websocket-protocol"], undefined);
        // then a close frame (opcode 8) with 1002
        const close = await waitFor(() => (raw.rest.length >= 4 ? raw.rest : undefined), "close frame");
        assert.equal(close[0], 0x88);
        assert.equal(close.readUInt16BE(2), 1002);
      } finally {
        raw.socket.destroy();
      }
      const missing = await fetch(`http://127.0.0.1:${server.port}/ocpp/`);
      assert.equal(missing.status, 404);
      await missing.text();
    });
  });
}
