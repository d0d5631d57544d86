// Which tests of @durable-streams/server-conformance-tests (0.3.6: 338 tests, 6 of them skipped by
// the suite itself unless `subscriptions` is on) apply to anycable-ts's read-only Durable Streams
// API. A test is selected when what it asserts is an answer of the server to a read (GET, HEAD,
// long-poll, SSE: statuses, headers, offsets, cursors, the JSON items) and the writes it makes are
// only how it puts data in the stream (the adapter publishes them through /_broadcast). Not
// selected, and why (counts in the README):
// - asserting on write answers (PUT/POST/DELETE statuses and headers, Stream-Seq, TTL and
//   Expires-At validation, idempotent producers, closing streams, forks, webhooks/subscriptions):
//   writes are not served (405), so these would test the adapter, not the server;
// - stream existence (404 for a stream never created, TTL expiry, delete): every stream name
//   exists and reads empty until something is published to it (as anycable-go);
// - text/plain and binary streams read back as their bytes (text bodies, base64 SSE): only JSON
//   is served, a published message is a JSON item;
// - the others listed in NOT_SERVED below, each with its reason.

/** [describe, (nested describe,) title] of every selected test. */
export const SELECTED: readonly (readonly string[])[] = [
  ["Browser Security Headers", "should include X-Content-Type-Options: nosniff on GET responses"],
  ["Browser Security Headers", "should include X-Content-Type-Options: nosniff on HEAD responses"],
  ["Browser Security Headers", "should include Cross-Origin-Resource-Policy header on GET responses"],
  ["Browser Security Headers", "should include Cache-Control: no-store on HEAD responses"],
  ["Browser Security Headers", "should include X-Content-Type-Options: nosniff on SSE responses"],
  ["Browser Security Headers", "should include X-Content-Type-Options: nosniff on long-poll responses"],
  ["Content-Type Validation", "should return stream content-type on GET"],
  ["Caching and ETag", "should generate ETag on GET responses"],
  ["Caching and ETag", "should return 304 Not Modified for matching If-None-Match"],
  ["Caching and ETag", "should allow If-None-Match in CORS preflight responses"],
  ["Caching and ETag", "should return new ETag after data changes"],
  ["HEAD Metadata", "should return tail offset"],
  ["Offset Validation and Resumability", "should return correct tail offset for offset=now"],
  ["Offset Validation and Resumability", "should return empty JSON array for offset=now on JSON streams"],
  ["Offset Validation and Resumability", "should support offset=now with long-poll mode (waits for data)"],
  ["Offset Validation and Resumability", "should receive data with offset=now long-poll when appended"],
  ["Offset Validation and Resumability", "should support offset=now with SSE mode"],
  ["Offset Validation and Resumability", "should support offset=now with SSE on empty stream"],
  ["Offset Validation and Resumability", "should reject malformed offset (contains comma)"],
  ["Offset Validation and Resumability", "should reject offset with spaces"],
  ["Protocol Edge Cases", "should reject multiple offset parameters"],
  ["Long-Poll Edge Cases", "should require offset parameter for long-poll"],
  ["Long-Poll Edge Cases", "should generate Stream-Cursor header on long-poll responses"],
  ["Long-Poll Edge Cases", "should echo cursor and handle collision with jitter"],
  [
    "Long-Poll Edge Cases",
    "should return Stream-Cursor, Stream-Up-To-Date and Stream-Next-Offset on 204 timeout",
  ],
  ["SSE Mode", "should return text/event-stream content-type for SSE requests"],
  ["SSE Mode", "should accept live=sse query parameter for application/json"],
  ["SSE Mode", "should require offset parameter for SSE mode"],
  ["SSE Mode", "should stream data events via SSE"],
  ["SSE Mode", "JSON SSE catch-up pairs every data event with a control event"],
  ["SSE Mode", "should send control events with offset"],
  ["SSE Mode", "should generate streamCursor in SSE control events"],
  ["SSE Mode", "should handle cursor collision with jitter in SSE mode"],
  ["SSE Mode", "should wrap JSON data in arrays for SSE and produce valid JSON"],
  ["SSE Mode", "should handle SSE for empty stream with correct offset"],
  ["SSE Mode", "should send upToDate flag in SSE control events when caught up"],
  ["SSE Mode", "should have correct SSE headers (no Content-Length, proper Cache-Control)"],
  ["SSE Mode", "should prevent CRLF injection - LF-only attack vectors"],
  ["SSE Mode", "should prevent CRLF injection - carriage return only attack vectors"],
  ["SSE Mode", "should handle JSON payloads with embedded newlines safely"],
  ["SSE Mode", "should generate unique, monotonically increasing offsets in SSE mode"],
  ["SSE Mode", "should support reconnection with last known offset"],
  ["SSE Mode", "should NOT include Stream-SSE-Data-Encoding header for text/plain streams"],
  ["SSE Mode", "should NOT include Stream-SSE-Data-Encoding header for application/json streams"],
  ["JSON Mode", "should handle content-type with charset parameter"],
  ["JSON Mode", "should wrap single JSON value in array"],
  ["JSON Mode", "should store arrays as single messages"],
  ["JSON Mode", "should concatenate multiple appends into single array"],
  ["JSON Mode", "should handle mixed single values and arrays"],
  ["JSON Mode", "should preserve JSON structure and nesting"],
  ["JSON Mode", "should work with client json() iterator"],
  ["JSON Mode", "should store nested arrays as single messages"],
  ["JSON Mode", "should store arrays as values when double-wrapped"],
  ["JSON Mode", "should store primitive arrays as single messages"],
  ["JSON Mode", "should handle mixed batching - single values, arrays, and nested arrays"],
  [
    "Property-Based Tests (fast-check)",
    "Offset Validation Properties",
    "should reject offsets with invalid characters",
  ],
  [
    "Property-Based Tests (fast-check)",
    "Concurrent Writer Stress Tests",
    "concurrent appends without seq - all data is persisted",
  ],
  [
    "Property-Based Tests (fast-check)",
    "Concurrent Writer Stress Tests",
    "mixed readers and writers - readers see consistent state",
  ],
  ["Property-Based Tests (fast-check)", "State Hash Verification", "replay produces identical content hash"],
  ["Property-Based Tests (fast-check)", "State Hash Verification", "content hash changes with each append"],
  [
    "Property-Based Tests (fast-check)",
    "State Hash Verification",
    "deterministic ordering - same data in same order produces same hash",
  ],
  [
    "Stream Closure",
    "HEAD with Stream Closure",
    "head-open-stream-no-closed-header: HEAD on open stream does NOT have Stream-Closed header",
  ],
];

/**
 * Read-side tests that are not selected because anycable-ts answers otherwise, by design, and
 * why. The e2e wrapper runs them too (DS_CONFORMANCE_SET=not-served) and checks that each fails,
 * so README's account of them stays true.
 */
export const NOT_SERVED: readonly { test: readonly string[]; why: string }[] = [
  {
    test: ["Protocol Edge Cases", "should reject empty offset parameter"],
    why: "`offset=` reads from the start, as in anycable-go (the suite wants 400)",
  },
  {
    test: ["JSON Mode", "should handle various JSON value types"],
    why: 'a broadcast whose data is `null` is delivered as the string "null", as anycable-go delivers it live',
  },
];

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Matches the full names (describes and title, joined by spaces) of the tests of a set. */
export function testNamePattern(set: "selected" | "not-served" = "selected"): RegExp {
  const tests = set === "selected" ? SELECTED : NOT_SERVED.map((n) => n.test);
  return new RegExp(`(?:^| )(?:${tests.map((t) => escapeRegExp(t.join(" "))).join("|")})$`);
}
