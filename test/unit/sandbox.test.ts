import { describe, expect, it } from "vitest";
import { runInSandbox, WALL_MARGIN_MS } from "../../tools/code/sandbox.js";

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

describe("JavaScript sandbox, held from outside its thread", () => {
  const memoryHeavy = "const a = []; while (true) a.push(new Array(1e6).fill(1));";

  it("caps memory however it is allocated: a million-element fill in a loop stops at the memory limit", async () => {
    // Each fill is one native call between interrupt checks; on the worker's loop this ran 6–25 s against 1 s.
    const out = await runInSandbox(memoryHeavy, { ...limits, timeoutMs: 5_000 });
    expect(out).toEqual({
      ok: false,
      console: [],
      error: `Execution stopped: the code used more than ${limits.memoryBytes} bytes of memory.`,
    });
  });

  it("terminates a guest that no interrupt reaches at its time limit, plus a small margin", async () => {
    const stuck = new URL("../fakes/stuck-guest.mjs", import.meta.url);
    const started = Date.now();
    const out = await runInSandbox("1", limits, stuck);
    expect(out).toEqual({
      ok: false,
      console: [],
      error: "Execution stopped: the code ran longer than 300 ms (an endless loop?).",
    });
    expect(Date.now() - started).toBeLessThan(300 + WALL_MARGIN_MS + 2_000); // the rest is thread start-up
  });

  it("never holds the caller's event loop while guest code runs", async () => {
    let ticks = 0;
    const timer = setInterval(() => ticks++, 10);
    const out = await runInSandbox("while (true) {}", { ...limits, timeoutMs: 500 });
    clearInterval(timer);
    expect(out.error).toMatch(/longer than 500 ms/);
    expect(ticks).toBeGreaterThan(10); // on the worker's own loop the timer could not fire once
  });

  it("stops at once when cancelled mid-run, without waiting for the time limit", async () => {
    const controller = new AbortController();
    const started = Date.now();
    setTimeout(() => controller.abort(), 200);
    // A loop that allocates nothing: only the cancel (or, after 20 s, the time limit) can end it.
    const out = await runInSandbox("for (;;) {}", {
      ...limits,
      timeoutMs: 20_000,
      signal: controller.signal,
    });
    expect(out).toEqual({ ok: false, console: [], error: "Execution was cancelled." });
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it("names a guest that crashes its thread, and runs the next program normally", async () => {
    const crashing = new URL("../fakes/crashing-guest.mjs", import.meta.url);
    const out = await runInSandbox("1", limits, crashing);
    expect(out).toEqual({
      ok: false,
      console: [],
      error: "The sandbox crashed: Aborted(Assertion failed: list_empty(&rt->gc_obj_list))",
    });
    expect(await runInSandbox("6 * 7", limits)).toEqual({ ok: true, result: 42, console: [] });
  });

  it("reports a guest whose thread runs out of heap as out of memory", async () => {
    const hungry = new URL("../fakes/hungry-guest.mjs", import.meta.url);
    const out = await runInSandbox("1", { ...limits, timeoutMs: 30_000 }, hungry);
    expect(out).toEqual({
      ok: false,
      console: [],
      error: `Execution stopped: the code used more than ${limits.memoryBytes} bytes of memory.`,
    });
  });
});
