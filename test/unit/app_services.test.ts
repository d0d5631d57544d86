// ServiceList: the root's ordered lifecycle (start in order, stop in reverse, roll back a failed start).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type Service, ServiceList } from "../../src/app/service.ts";
import { Logger } from "../../src/log/logger.ts";

interface Probe extends Service {
  fatal?: (err: Error) => void;
  deadline?: AbortSignal;
}

function recorder() {
  const events: string[] = [];
  const lines: string[] = [];
  const log = new Logger("debug", "text", {}, { write: (l) => lines.push(l) });
  const service = (name: string, fail: { start?: boolean; shutdown?: boolean } = {}): Probe => {
    const s: Probe = {
      name,
      async start(fatal) {
        events.push(`start ${name}`);
        s.fatal = fatal;
        if (fail.start) throw new Error(`${name} cannot bind`);
      },
      async shutdown(deadline) {
        events.push(`stop ${name}`);
        s.deadline = deadline;
        if (fail.shutdown) throw new Error(`${name} is stuck`);
      },
    };
    return s;
  };
  return { events, lines, log, service };
}

describe("ServiceList", () => {
  it("starts in the order added and shuts down in reverse", async () => {
    const { events, log, service } = recorder();
    const list = new ServiceList(log);
    for (const n of ["pubsub", "broker", "listeners", "node"]) list.add(service(n));
    assert.deepEqual(list.names, ["pubsub", "broker", "listeners", "node"]);
    await list.start(() => {});
    await list.shutdown(AbortSignal.timeout(1000));
    assert.deepEqual(events, [
      "start pubsub",
      "start broker",
      "start listeners",
      "start node",
      "stop node",
      "stop listeners",
      "stop broker",
      "stop pubsub",
    ]);
  });

  it("on a failed start stops those already started, in reverse, and rethrows naming the service", async () => {
    const { events, log, service } = recorder();
    const list = new ServiceList(log);
    list.add(service("a"));
    list.add(service("b"));
    list.add(service("listeners", { start: true }));
    list.add(service("never"));
    await assert.rejects(
      list.start(() => {}),
      {
        message: "listeners failed to start: listeners cannot bind",
      },
    );
    assert.deepEqual(events, ["start a", "start b", "start listeners", "stop b", "stop a"]);
    // Nothing is left running: a later shutdown stops nothing twice.
    await list.shutdown(AbortSignal.timeout(1000));
    assert.deepEqual(events, ["start a", "start b", "start listeners", "stop b", "stop a"]);
  });

  it("keeps stopping the others when one fails to shut down, and logs which", async () => {
    const { events, lines, log, service } = recorder();
    const list = new ServiceList(log);
    for (const s of [service("a"), service("b", { shutdown: true }), service("c")]) list.add(s);
    await list.start(() => {});
    await list.shutdown(AbortSignal.timeout(1000));
    assert.deepEqual(events.slice(3), ["stop c", "stop b", "stop a"]);
    const warn = lines.filter((l) => / WRN /.test(l));
    assert.equal(warn.length, 1);
    assert.match(warn[0], / WRN b failed to shut down error="b is stuck"/);
  });

  it("passes the root's fatal callback and the shutdown deadline to every service", async () => {
    const { log, service } = recorder();
    const list = new ServiceList(log);
    const a = service("a");
    const b = service("b");
    list.add(a);
    list.add(b);
    const fatals: Error[] = [];
    await list.start((e) => fatals.push(e));
    b.fatal?.(new Error("redis gone"));
    a.fatal?.(new Error("nats gone"));
    assert.deepEqual(
      fatals.map((e) => e.message),
      ["redis gone", "nats gone"],
    );
    const deadline = AbortSignal.timeout(1000);
    await list.shutdown(deadline);
    assert.equal(a.deadline, deadline);
    assert.equal(b.deadline, deadline);
  });

  it("stops each started service once, however often shutdown is called", async () => {
    const { events, log, service } = recorder();
    const list = new ServiceList(log);
    list.add(service("a"));
    await list.start(() => {});
    await list.shutdown(AbortSignal.timeout(1000));
    await list.shutdown(AbortSignal.timeout(1000));
    assert.deepEqual(events, ["start a", "stop a"]);
  });
});
