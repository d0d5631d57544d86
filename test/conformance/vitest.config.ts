import { defineConfig } from "vitest/config";
import { testNamePattern } from "./selection.ts";

export default defineConfig({
  test: {
    root: new URL(".", import.meta.url).pathname,
    include: ["ds_read.conformance.ts"],
    testNamePattern: process.env.DS_CONFORMANCE_ALL ? undefined : testNamePattern(),
    testTimeout: 15_000,
    hookTimeout: 60_000,
    fileParallelism: false,
  },
});
