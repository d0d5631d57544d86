// A Node driven in-process with recording sockets, for unit tests of controllers behind the node.
import { ForwardingHandler } from "../../src/broadcast/handler.ts";
import type { RemoteCommand, StreamPublication } from "../../src/broadcast/publication.ts";
import type { Broker } from "../../src/broker/broker.ts";
import { NoBroker } from "../../src/broker/none.ts";
import { Hub } from "../../src/hub/hub.ts";
import { Logger } from "../../src/log/logger.ts";
import { Metrics } from "../../src/metrics/registry.ts";
import type { Controller } from "../../src/node/controller.ts";
import { type DisconnectMode, Node } from "../../src/node/node.ts";
import type { Session } from "../../src/node/session.ts";
import type { ClientSocket } from "../../src/node/socket.ts";
import { LocalPubSub } from "../../src/pubsub/local.ts";

/**
 * The pipeline the app builds for one node: broker -> local pub/sub -> this node (whispers and
 * presence events go through it). `node` is asked for lazily: the broker is built before it.
 */
export function nodeBroker(
  node: () => Node,
  make: (p: LocalPubSub) => Broker = (p) => new NoBroker(p),
): Broker {
  return make(
    new LocalPubSub({
      broadcast: (m) => node().broadcast(m),
      executeCommand: (c) => node().remoteDisconnect(c.identifier, c.reconnect),
    }),
  );
}

export class FakeSocket implements ClientSocket {
  frames: string[] = [];
  closed?: { code: number; reason: string };
  send(frame: string): number {
    this.frames.push(frame);
    return frame.length;
  }
  bufferedAmount(): number {
    return 0;
  }
  close(code: number, reason: string): void {
    this.closed = { code, reason };
  }
  json(): Record<string, unknown>[] {
    return this.frames.map((f) => JSON.parse(f));
  }
}

export const silentLogger = new Logger("error", "text", {}, { write() {} });

export function makeNode(
  controller: Controller,
  disconnectMode: DisconnectMode = "auto",
  metrics: Metrics = new Metrics(),
  logger: Logger = silentLogger,
) {
  const node: Node = new Node({
    controller,
    hub: new Hub(),
    broker: nodeBroker(() => node),
    metrics,
    logger,
    pongTimeoutMs: 0,
    pingIntervalMs: 0,
    pingPrecision: "s",
    nativePings: false,
    maxPendingBytes: 0,
    writeTimeoutMs: 0,
    disconnectMode,
    maxSubscriptions: 0,
  });
  return { node, metrics };
}

export interface Client {
  session: Session;
  socket: FakeSocket;
  /** Sends one command and waits until the session has processed it. */
  send(cmd: Record<string, unknown>): Promise<void>;
}

/** Opens a session and waits for authentication to finish (however long verification takes). */
export async function open(
  node: Node,
  sid: string,
  url = "ws://localhost/cable",
  headers: Record<string, string> = {},
): Promise<Client> {
  const socket = new FakeSocket();
  const session = node.open({ sid, url, headers, protocol: "actioncable-v1-json" }, socket);
  await session.chain;
  return {
    session,
    socket,
    async send(cmd) {
      const frame = JSON.stringify(cmd);
      node.message(session, frame, frame.length);
      await session.chain;
    },
  };
}

/** Publications straight to the node's clients, as the app wires fan-out broadcasters. */
export function localHandler(node: Node): ForwardingHandler {
  const target = {
    handleBroadcast: (m: StreamPublication) => node.broadcast(m),
    handleCommand: (c: RemoteCommand) => node.remoteDisconnect(c.identifier, c.reconnect),
  };
  return new ForwardingHandler(target, node);
}
