// @anycable/core and raw clients for the extended protocol (actioncable-v1-ext-json), shared by the
// reliable-streams and broker e2e files. Core clients run over a `ws` subclass that records every
// socket and frame (wire-level checks), and their reconnects can be held by a gate
// (transportConfigurator) instead of timed — or sent to another node of a cluster.
import assert from "node:assert/strict";
import type { Cable, Channel } from "@anycable/core";
import WS from "ws";
import { waitFor } from "./wait.ts";
import { connect, type RawClient } from "./ws_client.ts";

export const EXT = "actioncable-v1-ext-json";

export type Msg = Record<string, unknown>;
export interface Meta {
  stream: string;
  epoch: string;
  offset: number;
}

// --- @anycable/core over a `ws` subclass that records every socket and frame

/** What a cable's sockets did: the URL each was opened with, the frames in and out. */
export interface Wire {
  urls: string[];
  sockets: WS[];
  inbound: Msg[][];
  outbound: Msg[][];
}

export const newWire = (): Wire => ({ urls: [], sockets: [], inbound: [], outbound: [] });

export function recordingWS(wire: Wire) {
  return class RecordingWS extends WS {
    constructor(address: string, protocols?: string | string[], options?: WS.ClientOptions) {
      super(address, protocols, options);
      wire.sockets.push(this);
      wire.urls.push(address);
      const inbound: Msg[] = [];
      const outbound: Msg[] = [];
      wire.inbound.push(inbound);
      wire.outbound.push(outbound);
      this.on("message", (data) => inbound.push(JSON.parse(data.toString()) as Msg));
      const send = this.send.bind(this) as (...args: unknown[]) => void;
      this.send = ((data: unknown, ...rest: unknown[]) => {
        outbound.push(JSON.parse(String(data)) as Msg);
        send(data, ...rest);
      }) as WS["send"];
    }
  };
}

/** Holds a cable's reconnects (through its transportConfigurator) while the gate is shut. */
export class Gate {
  reached = 0;
  private waiting: Promise<void> | undefined;
  private release: (() => void) | undefined;
  shut(): void {
    this.waiting = new Promise((r) => {
      this.release = r;
    });
  }
  open(): void {
    this.release?.();
    this.waiting = undefined;
  }
  pass = async (): Promise<void> => {
    this.reached++;
    await this.waiting;
  };
}

export const cables: Cable[] = [];

export async function coreCable(
  url: string,
  wire: Wire,
  opts: {
    token?: string;
    gate?: Gate;
    pongs?: boolean;
    /** A reconnect goes to this server (ws URL) instead, keeping the query (the ?sid= to restore). */
    reconnectTo?: () => string | undefined;
  } = {},
): Promise<Cable> {
  const { createCable } = await import("@anycable/core");
  const gate = opts.gate;
  const cable = createCable(url, {
    websocketImplementation: recordingWS(wire),
    protocol: EXT,
    auth: opts.token ? { token: opts.token } : undefined,
    logLevel: "error",
    // reconnect quickly (the default backoff starts at one to two ping intervals)
    reconnectStrategy: () => 100,
    transportConfigurator: async (transport, { initial }) => {
      if (initial) return;
      if (gate) await gate.pass();
      const target = opts.reconnectTo?.();
      if (target) {
        const ws = transport as unknown as { url: string; setURL(url: string): void };
        const next = new URL(ws.url);
        next.host = new URL(target).host;
        ws.setURL(next.toString());
      }
    },
    protocolOptions: opts.pongs ? { pongs: true } : undefined,
  });
  cables.push(cable);
  return cable;
}

export function closeCables(): void {
  for (const c of cables.splice(0)) c.disconnect();
}

export interface Delivery {
  msg: unknown;
  meta: Meta | undefined;
}

export function collect(channel: Channel): { deliveries: Delivery[]; infos: string[] } {
  const deliveries: Delivery[] = [];
  const infos: string[] = [];
  channel.on("message", (msg: unknown, meta?: unknown) => {
    deliveries.push({ msg, meta: meta as Meta | undefined });
  });
  channel.on("info", (ev: { type: string }) => {
    infos.push(ev.type);
  });
  return { deliveries, infos };
}

/** The deliveries de-duplicated by (epoch, offset), in arrival order. */
export function unique(deliveries: Delivery[]): Delivery[] {
  const seen = new Set<string>();
  return deliveries.filter((d) => {
    const key = d.meta ? `${d.meta.epoch}/${d.meta.offset}` : JSON.stringify(d.msg);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

// --- raw clients

export const pubId = (stream: string) => JSON.stringify({ channel: "$pubsub", stream_name: stream });

export async function extClient(url: string, headers?: Record<string, string>, protocol = EXT) {
  const c = await connect(url, protocol, headers);
  const welcome = await c.next((m) => m.type === "welcome" || m.type === "disconnect", "welcome");
  assert.equal(welcome.type, "welcome", JSON.stringify(welcome));
  return { c, welcome };
}

export async function subscribeRaw(c: RawClient, identifier: string, extra: Msg = {}): Promise<void> {
  c.send({ command: "subscribe", identifier, ...extra });
  await c.next(
    (m) => m.identifier === identifier && m.type === "confirm_subscription",
    `confirm ${identifier}`,
  );
}

/** Answers every ping with a `pong` command, as an extended-protocol client should. */
export function autoPong(c: RawClient): void {
  c.ws.on("message", (data) => {
    if ((JSON.parse(data.toString()) as Msg).type === "ping") c.send({ command: "pong" });
  });
}

/**
 * Every frame (pings left out) up to and including the first one `last` matches, removed from
 * the client's buffer: the exact sequence the server sent.
 */
export async function framesUntil(c: RawClient, last: (m: Msg) => boolean, what: string): Promise<Msg[]> {
  const index = () => c.messages.findIndex((m) => typeof m === "object" && m !== null && last(m as Msg));
  try {
    await waitFor(() => index() >= 0, what);
  } catch (err) {
    // what arrived by the deadline, not by the start of the wait
    throw new Error(`${(err as Error).message}; got ${JSON.stringify(c.messages)}`);
  }
  const taken = c.messages.splice(0, index() + 1) as Msg[];
  c.raw.splice(0, taken.length);
  return taken.filter((m) => m.type !== "ping");
}
