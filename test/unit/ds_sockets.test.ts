// The Durable Streams sockets: a long poll answered by the first live message (or a close), and an
// SSE stream holding live messages while history is written, releasing only those history lacked.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CloseCode } from "../../src/node/socket.ts";
import { DS_ENCODER } from "../../src/transports/ds/encoder.ts";
import { DsPollSocket, DsSseSocket, MAX_HELD_FRAMES } from "../../src/transports/ds/sockets.ts";
import { SseConnection } from "../../src/transports/sse/connection.ts";

const frame = (offset: number, epoch: string, data: unknown) => {
  const f = DS_ENCODER.encodeBroadcast("id", JSON.stringify(data), { offset, epoch });
  assert.equal(typeof f, "string");
  return f as string;
};

const events = { gone() {}, closing() {} };

async function readAll(conn: SseConnection): Promise<string> {
  conn.answer();
  conn.close(CloseCode.normal, "");
  return new Response(conn.stream).text();
}

describe("DsPollSocket", () => {
  it("keeps the first live message and wakes the waiting request", async () => {
    const s = new DsPollSocket();
    const waited = s.settled();
    s.send(frame(3, "e1", { n: 3 }));
    s.send(frame(4, "e1", { n: 4 }));
    await waited;
    assert.deepEqual(s.first, { offset: 3, epoch: "e1", token: "3::e1", item: '{"n":3}' });
  });

  it("a close ends the wait with its code and nothing", async () => {
    const s = new DsPollSocket();
    const waited = s.settled();
    s.close(CloseCode.goingAway);
    await waited;
    assert.equal(s.first, undefined);
    assert.equal(s.closeCode, CloseCode.goingAway);
    await s.settled(); // settled again at once
  });
});

describe("DsSseSocket", () => {
  it("releases held messages past history's last offset, then streams live ones", async () => {
    const conn = new SseConnection(events);
    const s = new DsSseSocket(conn, "42");
    s.send(frame(2, "e1", { n: 2 }));
    s.send(frame(3, "e1", { n: 3 }));
    assert.equal(s.release("e1", 2), true);
    s.send(frame(4, "e1", { n: 4 }));
    const text = await readAll(conn);
    assert.equal(
      text,
      'event: data\ndata:[{"n":3}]\n\nevent: control\ndata:{"streamNextOffset":"3::e1","streamCursor":"42"}\n\n' +
        'event: data\ndata:[{"n":4}]\n\nevent: control\ndata:{"streamNextOffset":"4::e1","streamCursor":"42"}\n\n',
    );
  });

  it("releases everything when history was empty and had no epoch", async () => {
    const conn = new SseConnection(events);
    const s = new DsSseSocket(conn, "");
    s.send(frame(1, "e1", "a"));
    assert.equal(s.release("", 0), true);
    assert.match(
      await readAll(conn),
      /^event: data\ndata:\["a"\]\n\nevent: control\ndata:\{"streamNextOffset":"1::e1"\}/,
    );
  });

  it("says so when more came while holding than it keeps", () => {
    const s = new DsSseSocket(new SseConnection(events), "");
    for (let i = 1; i <= MAX_HELD_FRAMES + 1; i++) s.send(frame(i, "e1", i));
    assert.equal(s.release("e1", 0), false);
  });
});
