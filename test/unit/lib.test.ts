import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createCable } from "../../src/lib.ts";

const quiet = { log: { write() {} } };

describe("createCable", () => {
  it("throws one error naming an invalid option or value", () => {
    assert.throws(() => createCable({ port: "eighty" }, quiet), /option "port".*parse error/);
    assert.throws(() => createCable({ no_such_option: 1 }, quiet), /unknown option "no_such_option"/);
    assert.throws(() => createCable({ log_level: "loud" }, quiet), /option "log_level".*must be one of/);
    assert.throws(
      () => createCable({ max_conn: {} as unknown as number }, quiet),
      /option "max_conn": expected a int/,
    );
    assert.throws(() => createCable({ print_config: true }, quiet), /command line/);
  });

  it("accepts flag spellings and TOML-only settings, with the table's conversions", () => {
    const cable = createCable(
      { "max-conn": "0x10", broadcast_adapter: ["http"], api_cors_headers: true, norpc: true },
      quiet,
    );
    assert.equal(cable.config.max_conn, 16);
    assert.deepEqual(cable.config.broadcast_adapter, ["http"]);
    assert.equal(cable.config.api_cors_headers, true);
    assert.equal(cable.config.derived.rpcImpl, "none");
  });

  it("reads ANYCABLE_* variables only from the env it is given", () => {
    assert.equal(createCable({}, { ...quiet, env: { ANYCABLE_PORT: "9191" } }).config.port, 9191);
    assert.equal(createCable({}, quiet).config.port, 8080);
    assert.equal(createCable({ port: 7000 }, { ...quiet, env: { ANYCABLE_PORT: "9191" } }).config.port, 7000);
  });

  it("answers 503 until started, then serves its routes, 404 for the rest, until shut down", async () => {
    const lines: string[] = [];
    const cable = createCable(
      { public: true, norpc: true, broadcast_adapter: "http", port: 1, http_broadcast_port: 1 },
      { log: { write: (l) => lines.push(l) } },
    );
    assert.equal((await cable.fetch(new Request("http://app/health"))).status, 503);
    await cable.start();
    assert.equal((await cable.fetch(new Request("http://app/health"))).status, 200);
    assert.equal((await cable.fetch(new Request("http://app/elsewhere"))).status, 404);
    const pub = await cable.fetch(
      new Request("http://app/_broadcast", { method: "POST", body: '{"stream":"s","data":"1"}' }),
    );
    assert.equal(pub.status, 201);
    await cable.shutdown();
    assert.ok(lines.some((l) => l.includes("Starting embedded AnyCable")));
  });
});
