import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/setup/postgres.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Integration tests each get their own database on one embedded server; two workers match two cores.
    maxWorkers: 2,
  },
});
