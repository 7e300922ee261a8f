import { describe, expect, it } from "vitest";
import { runInSandbox } from "../../tools/code/sandbox.js";

const limits = { timeoutMs: 300, memoryBytes: 16 * 1024 * 1024 };

describe("JavaScript sandbox", () => {
  it("returns the last expression and console output", async () => {
    const out = await runInSandbox(`console.log("sum", 1 + 2); [1, 2, 3].map((x) => x * 2);`, limits);
    expect(out).toEqual({ ok: true, result: [2, 4, 6], console: ["sum 3"] });
  });

  it("stops code that loops forever", async () => {
    const started = Date.now();
    const out = await runInSandbox("while (true) {}", limits);
    expect(out.ok).toBe(false);
    expect(out.error).toMatch(/ran longer than 300 ms/);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it("stops code that exhausts memory", async () => {
    const out = await runInSandbox("const a = []; while (true) a.push('x'.repeat(1024));", {
      ...limits,
      timeoutMs: 5_000,
    });
    expect(out.ok).toBe(false);
    expect(out.error).toMatch(/memory/);
  });

  it.each([
    "process.exit(1)",
    "require('fs')",
    "fetch('http://127.0.0.1')",
    "setTimeout(() => 1, 1)",
    "import('fs')",
  ])("has no host object: %s", async (code) => {
    const out = await runInSandbox(code, limits);
    expect(out.ok).toBe(false);
    expect(out.error).toMatch(/ReferenceError|not defined|could not load|not supported|module/i);
  });

  it("reports syntax errors to the caller", async () => {
    const out = await runInSandbox("let = ;", limits);
    expect(out).toMatchObject({ ok: false, error: expect.stringMatching(/SyntaxError/) });
  });

  it("is cancelled by an abort signal", async () => {
    const controller = new AbortController();
    controller.abort();
    const out = await runInSandbox("while (true) {}", {
      ...limits,
      timeoutMs: 10_000,
      signal: controller.signal,
    });
    expect(out).toMatchObject({ ok: false, error: "Execution was cancelled." });
  });
});
