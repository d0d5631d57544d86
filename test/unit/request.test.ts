import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  compilePathPattern,
  extractHeaders,
  filterCookies,
  nanoid,
  originChecker,
  pathMatcher,
} from "../../src/http/request.ts";

describe("paths", () => {
  it("matches exact, wildcard and placeholder patterns", () => {
    const m = pathMatcher(["/cable", "/ws/*", "/{tenant}/live"]);
    assert.ok(m("/cable"));
    assert.ok(!m("/cable/x"));
    assert.ok(m("/ws/anything/here"));
    assert.ok(m("/acme/live"));
    assert.ok(!m("/a/b/live"));
    assert.ok(!m("/other"));
  });
  it("escapes regex characters", () => {
    assert.ok(!compilePathPattern("/a.b").test("/axb"));
  });
});

describe("origins", () => {
  it("allows everything when empty", () => assert.ok(originChecker("")(null)));
  it("matches hosts and suffix wildcards, case-insensitively", () => {
    const ok = originChecker("www.example.com,*example.io");
    assert.ok(ok("https://WWW.example.com"));
    assert.ok(ok("http://app.example.io"));
    assert.ok(!ok("http://evil.com"));
    assert.ok(!ok(null));
  });
});

describe("headers", () => {
  it("filters cookies and adds REMOTE_ADDR", () => {
    assert.equal(filterCookies("a=1; b=2;c=3", ["a", "c"]), "a=1;c=3;");
    const h = new Headers({ cookie: "a=1;b=2", "x-api-token": "t", other: "o" });
    assert.deepEqual(extractHeaders(h, ["cookie", "x-api-token"], ["b"], "1.2.3.4"), {
      cookie: "b=2;",
      "x-api-token": "t",
      REMOTE_ADDR: "1.2.3.4",
    });
  });
  it("generates 21-char url-safe ids", () => {
    const id = nanoid();
    assert.match(id, /^[\w-]{21}$/);
    assert.notEqual(id, nanoid());
  });
  it("keeps ids distinct and well-formed across random pool refills", () => {
    const ids = new Set<string>();
    for (let i = 0; i < 1000; i++) ids.add(nanoid(i % 7 === 0 ? 6 : 21));
    assert.equal(ids.size, 1000);
    for (const id of ids) assert.match(id, /^[\w-]{6}$|^[\w-]{21}$/);
  });
});
