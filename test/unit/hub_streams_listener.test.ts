// The hub tells its StreamsListener (pub/sub) when a stream gets its first local subscriber and
// loses its last one, whatever the number of identifiers and subscribers in between.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Hub, type HubSubscriber, type StreamsListener } from "../../src/hub/hub.ts";
import { jsonEncoder } from "../../src/protocols/json_encoder.ts";

function sub(sid: string): HubSubscriber {
  return { sid, encoder: jsonEncoder, send() {} };
}

function listening(): { hub: Hub; events: string[] } {
  const events: string[] = [];
  const listener: StreamsListener = {
    streamAdded: (s) => events.push(`+${s}`),
    streamRemoved: (s) => events.push(`-${s}`),
  };
  const hub = new Hub();
  hub.setStreamsListener(listener);
  return { hub, events };
}

const CHAT = '{"channel":"ChatChannel"}';
const NOTES = '{"channel":"NotesChannel","id":1}';

describe("Hub streams listener", () => {
  it("reports a stream once on its first subscriber, whatever the identifiers and subscribers", () => {
    const { hub, events } = listening();
    const [a, b] = [sub("a"), sub("b")];
    hub.subscribe(a, "room", CHAT);
    assert.deepEqual(events, ["+room"]);
    hub.subscribe(b, "room", CHAT);
    hub.subscribe(a, "room", NOTES);
    hub.subscribe(a, "room", CHAT); // again: no change
    assert.deepEqual(events, ["+room"]);
    assert.equal(hub.subscribersCount("room"), 3);
  });

  it("reports a stream removed once, when its last subscriber leaves", () => {
    const { hub, events } = listening();
    const [a, b] = [sub("a"), sub("b")];
    hub.subscribe(a, "room", CHAT);
    hub.subscribe(b, "room", CHAT);
    hub.subscribe(b, "room", NOTES);
    hub.unsubscribe(a, "room", CHAT);
    hub.unsubscribe(b, "room", CHAT);
    assert.deepEqual(events, ["+room"], "b is still there under another identifier");
    hub.unsubscribe(b, "room", NOTES);
    assert.deepEqual(events, ["+room", "-room"]);
    hub.unsubscribe(b, "room", NOTES); // already gone
    hub.unsubscribe(a, "room", CHAT);
    assert.deepEqual(events, ["+room", "-room"]);
    assert.equal(hub.streamsCount, 0);
  });

  it("reports the stream again when it is subscribed after removal", () => {
    const { hub, events } = listening();
    const a = sub("a");
    hub.subscribe(a, "room", CHAT);
    hub.unsubscribe(a, "room", CHAT);
    hub.subscribe(a, "room", CHAT);
    hub.subscribe(sub("b"), "room", CHAT);
    assert.deepEqual(events, ["+room", "-room", "+room"]);
  });

  it("tracks each stream on its own and ignores unsubscribes it never saw", () => {
    const { hub, events } = listening();
    const a = sub("a");
    hub.unsubscribe(a, "nowhere", CHAT);
    hub.subscribe(a, "s1", CHAT);
    hub.subscribe(a, "s2", CHAT);
    hub.unsubscribe(sub("stranger"), "s1", CHAT);
    hub.unsubscribe(a, "s1", NOTES);
    hub.unsubscribe(a, "s1", CHAT);
    assert.deepEqual(events, ["+s1", "+s2", "-s1"]);
  });
});
