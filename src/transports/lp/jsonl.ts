// JSONL codec of the long polling transport: a request body carries one client command per line,
// a response body one server message per line. Runtime-free; errors are values, nothing throws.

export interface Decoded {
  /** The well-formed lines, each one JSON object text, in order. */
  messages: string[];
  /** Lines that were not a JSON object (skipped, counted for logging). */
  malformed: number;
}

/**
 * Splits a request body into commands. Blank lines are ignored, a trailing "\r" is dropped,
 * a line that does not parse as a JSON object counts as malformed and is skipped.
 * At most `maxLines` commands are kept; the rest count as malformed.
 */
export function decodeJsonl(body: string, maxLines = 1024): Decoded {
  const messages: string[] = [];
  let malformed = 0;
  for (const raw of body.split("\n")) {
    const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    if (line.trim() === "") continue;
    if (messages.length >= maxLines || !isJsonObject(line)) {
      malformed++;
      continue;
    }
    messages.push(line);
  }
  return { messages, malformed };
}

/** Joins already-encoded messages into a response body: one per line, newline-terminated. */
export function encodeJsonl(messages: readonly string[]): string {
  if (messages.length === 0) return "";
  return `${messages.join("\n")}\n`;
}

function isJsonObject(line: string): boolean {
  try {
    const v: unknown = JSON.parse(line);
    return typeof v === "object" && v !== null && !Array.isArray(v);
  } catch {
    return false;
  }
}
