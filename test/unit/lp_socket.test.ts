import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CloseCode, SOCKET_CLOSING } from "../../src/node/socket.ts";
import { PollSessions } from "../../src/transports/lp/sessions.ts";
import { LpSocket, type LpState } from "../../src/transports/lp/socket.ts";

function socketWith(limits: { maxMessages: number; maxBytes: number }) {
  const closed: string[] = [];
  const socket = new LpSocket({ closed: (poll) => closed.push(poll.id) });
  const table = new PollSessions<LpState>(0, limits, undefined, (s) => s.held !== undefined);
  const made = table.create({ socket, session: undefined, held: undefined }, 0);
  assert.ok(made.ok);
  socket.poll = made.session;
  return { socket, poll: made.session, table, closed };
}

describe("long polling socket", () => {
  it("queues frames for the next poll, text and bytes alike, and reports nothing unsent", () => {
    const { socket, poll } = socketWith({ maxMessages: 10, maxBytes: 1000 });
    assert.equal(socket.send('{"type":"welcome"}'), 18);
    assert.equal(socket.send(new TextEncoder().encode('{"a":1}')), 7);
    assert.equal(socket.bufferedAmount(), 0);
    assert.deepEqual(poll.queue.drain(), ['{"type":"welcome"}', '{"a":1}']);
  });

  it("past its bounds drops the backlog and answers 0, so the too_slow disconnect still gets queued", () => {
    const { socket, poll } = socketWith({ maxMessages: 2, maxBytes: 1000 });
    assert.ok(socket.send("m1") > 0);
    assert.ok(socket.send("m2") > 0);
    assert.equal(socket.send("m3"), 0);
    assert.equal(poll.queue.size, 0);
    assert.ok(socket.send('{"type":"disconnect","reason":"too_slow"}') > 0);
    assert.deepEqual(poll.queue.drain(), ['{"type":"disconnect","reason":"too_slow"}']);
  });

  it("tells the transport once when the node closes it, and refuses frames after", () => {
    const { socket, poll, closed } = socketWith({ maxMessages: 10, maxBytes: 1000 });
    socket.close(CloseCode.normal, "");
    socket.close(CloseCode.normal, "");
    assert.deepEqual(closed, [poll.id]);
    assert.equal(socket.send("late"), SOCKET_CLOSING);
  });

  it("a session with a held poll is never stale; without one it expires after the keepalive timeout", () => {
    const { poll, table } = socketWith({ maxMessages: 10, maxBytes: 1000 });
    poll.data.held = {
      since: 0,
      headers: {},
      signal: new AbortController().signal,
      onAbort: () => {},
      resolve: () => {},
    };
    assert.deepEqual(table.sweep(60_000, 5000), []);
    assert.equal(table.take(poll.id, 60_000, 5000), poll);
    poll.data.held = undefined;
    assert.deepEqual(
      table.sweep(60_000 + 5001, 5000).map((p) => p.id),
      [poll.id],
    );
  });
});
