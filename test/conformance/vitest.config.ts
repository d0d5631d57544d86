import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";
import { testNamePattern } from "./selection.ts";

export default defineConfig({
  // the project root, so vitest's caches go to its node_modules
  root: fileURLToPath(new URL("../..", import.meta.url)),
  test: {
    include: ["test/conformance/ds_read.conformance.ts"],
    // DS_CONFORMANCE_SET: "selected" (default), "not-served" (the read checks answered otherwise by
    // design, which fail) or "all" (the whole suite, for review)
    testNamePattern:
      process.env.DS_CONFORMANCE_SET === "all"
        ? undefined
        : testNamePattern(process.env.DS_CONFORMANCE_SET === "not-served" ? "not-served" : "selected"),
    testTimeout: 15_000,
    hookTimeout: 60_000,
    fileParallelism: false,
  },
});
