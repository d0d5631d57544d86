// actioncable-v1-json and actioncable-v1-ext-json: text frames, the functions of actioncable.ts.
import { broadcastMessage, decodeCommand, replyJson } from "./actioncable.ts";
import type { BroadcastMeta, DecodeResult, Encoder, Frame, Reply } from "./encoder.ts";

const utf8 = new TextDecoder();

export class JsonEncoder implements Encoder {
  readonly id = "json";
  readonly binary = false;

  decode(frame: Frame): DecodeResult {
    // anycable-go reads a frame's bytes whatever its kind: JSON in a binary frame is still JSON.
    return decodeCommand(typeof frame === "string" ? frame : utf8.decode(frame));
  }

  encodeReply(reply: Reply): Frame | undefined {
    try {
      return replyJson(reply);
    } catch {
      return undefined; // a bigint or a cycle in `message`
    }
  }

  /** Sent as it came, like anycable-go: the backend already speaks this format. */
  encodeTransmission(json: string): Frame {
    return json;
  }

  encodeBroadcast(identifier: string, dataJson: string, meta?: BroadcastMeta): Frame {
    return broadcastMessage(identifier, dataJson, meta?.type, meta);
  }
}

export const jsonEncoder: Encoder = new JsonEncoder();
