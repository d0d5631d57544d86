// The compiled executables: every target exists with the right executable header, and the host
// binary runs the smoke suite (welcome, subscribe, broadcast, graceful shutdown) from an empty dir.

import { describe, it } from "bun:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, openSync, readSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { outputName, TARGETS } from "../../release/build.ts";
import { publish } from "../support/publish.ts";
import { e2eRuntimes, ROOT, startServer } from "../support/server.ts";
import { connect } from "../support/ws_client.ts";

const enabled = e2eRuntimes(["binary"]).length > 0;

function header(path: string, n: number): Buffer {
  const fd = openSync(path, "r");
  const buf = Buffer.alloc(n);
  readSync(fd, buf, 0, n, 0);
  return buf;
}

/** The ELF program interpreter (PT_INTERP) of a 64-bit little-endian executable. */
function elfInterpreter(path: string): string | undefined {
  const h = header(path, 64);
  const phoff = Number(h.readBigUInt64LE(32));
  const phentsize = h.readUInt16LE(54);
  const phnum = h.readUInt16LE(56);
  const table = header(path, phoff + phentsize * phnum).subarray(phoff);
  for (let i = 0; i < phnum; i++) {
    const ph = table.subarray(i * phentsize);
    if (ph.readUInt32LE(0) !== 3) continue; // PT_INTERP
    const offset = Number(ph.readBigUInt64LE(8));
    const size = Number(ph.readBigUInt64LE(32));
    return header(path, offset + size)
      .subarray(offset, offset + size)
      .toString("latin1")
      .replace(/\0+$/, "");
  }
  return undefined;
}

/** The load command types of a 64-bit Mach-O executable. */
function machoCommands(path: string): number[] {
  const h = header(path, 32);
  const ncmds = h.readUInt32LE(16);
  const table = header(path, 32 + h.readUInt32LE(20));
  const out: number[] = [];
  for (let i = 0, off = 32; i < ncmds; i++) {
    out.push(table.readUInt32LE(off));
    off += table.readUInt32LE(off + 4);
  }
  return out;
}

const INTERPRETERS: Record<string, string> = {
  x64: "/lib64/ld-linux-x86-64.so.2",
  arm64: "/lib/ld-linux-aarch64.so.1",
  "x64-musl": "/lib/ld-musl-x86_64.so.1",
};

describe.if(enabled)("[binary] release binaries", () => {
  for (const t of TARGETS) {
    it(`${outputName(t.os, t.arch)} exists with a ${t.os}/${t.arch} executable header`, () => {
      const file = join(ROOT, "dist", outputName(t.os, t.arch));
      assert.ok(existsSync(file), `${file} missing`);
      assert.ok(statSync(file).size > 40 * 1024 * 1024, "size above 40 MiB");
      const h = header(file, 64);
      if (t.os === "linux") {
        assert.equal(h.subarray(0, 4).toString("latin1"), "\x7fELF");
        assert.equal(h.readUInt16LE(18), t.arch === "arm64" ? 0xb7 : 0x3e);
        assert.ok((statSync(file).mode & 0o111) !== 0, "executable bit");
        // glibc builds load glibc's dynamic loader, the musl build musl's
        assert.equal(elfInterpreter(file), INTERPRETERS[t.arch]);
      } else if (t.os === "darwin") {
        assert.equal(h.readUInt32LE(0), 0xfeedfacf);
        assert.equal(h.readUInt32LE(4), t.arch === "x64" ? 0x01000007 : 0x0100000c);
        // signed (ad hoc): macOS on Apple silicon kills an unsigned executable at exec
        assert.ok(machoCommands(file).includes(0x1d), "an LC_CODE_SIGNATURE load command");
      } else {
        assert.equal(h.subarray(0, 2).toString("latin1"), "MZ");
        const pe = h.readUInt32LE(0x3c);
        const peHeader = header(file, pe + 6).subarray(pe);
        assert.equal(peHeader.subarray(0, 4).toString("latin1"), "PE\0\0");
        assert.equal(peHeader.readUInt16LE(4), 0x8664);
      }
    });
  }

  it("host binary: welcome, public stream, broadcast, graceful shutdown", async () => {
    const cwd = mkdtempSync(join(tmpdir(), "acts-bin-"));
    const server = await startServer("binary", { cwd, args: ["--public", "--norpc", "--secret=bin"] });
    try {
      const id = JSON.stringify({ channel: "$pubsub", stream_name: "bin" });
      const c = await connect(server.wsUrl);
      await c.next((m) => m.type === "welcome", "welcome");
      c.send({ command: "subscribe", identifier: id });
      await c.next((m) => m.type === "confirm_subscription", "confirm");
      assert.equal(
        (await publish(`${server.url}/_broadcast`, { stream: "bin", data: '{"ok":true}' })).status,
        201,
      );
      assert.deepEqual((await c.next((m) => m.identifier === id, "broadcast")).message, { ok: true });
      const exit = server.stop("SIGTERM");
      assert.equal((await c.next((m) => m.type === "disconnect", "server_restart")).reason, "server_restart");
      assert.equal(await exit, 0);
    } finally {
      await server.stop("SIGKILL");
    }
  });
});
