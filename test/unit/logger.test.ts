import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { compact, Logger } from "../../src/log/logger.ts";

function capture(level: "debug" | "info" | "warn" | "error", format: "text" | "json") {
  const lines: string[] = [];
  const logger = new Logger(level, format, { nodeid: "n1" }, { write: (l) => lines.push(l) });
  return { logger, lines };
}

describe("Logger", () => {
  it("writes anycable-go's text layout: time, level tag, message, attributes", () => {
    const { logger, lines } = capture("info", "text");
    logger.with({ context: "main" }).info("Starting AnyCable", { pid: 42, path: "/a b" });
    assert.match(
      lines[0]!,
      /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} INF Starting AnyCable pid=42 path="\/a b" nodeid=n1 context=main$/,
    );
  });
  it("filters by level", () => {
    const { logger, lines } = capture("warn", "text");
    logger.debug("d");
    logger.info("i");
    logger.warn("w");
    logger.error("e");
    assert.deepEqual(
      lines.map((l) => l.split(" ")[2]),
      ["WRN", "ERR"],
    );
  });
  it("writes JSON lines with slog's keys", () => {
    const { logger, lines } = capture("debug", "json");
    logger.debug("hello", { error: new Error("boom") });
    const rec = JSON.parse(lines[0]!);
    assert.equal(rec.level, "DEBUG");
    assert.equal(rec.msg, "hello");
    assert.equal(rec.nodeid, "n1");
    assert.equal(rec.error, "boom");
    assert.ok(!Number.isNaN(Date.parse(rec.time)));
  });
  it("truncates client data", () => {
    assert.equal(compact("x".repeat(150)).length < 130, true);
    assert.equal(compact("short"), "short");
  });
});
