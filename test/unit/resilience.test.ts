import { describe, expect, it } from "vitest";
import { DependencyError } from "../../core/errors.js";
import { Dependency, isTransient, retryAfterMs } from "../../policy/resilience.js";

const failure = (status: number, headers: Record<string, string> = {}) =>
  Object.assign(new Error(`HTTP ${status}`), { status, headers });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("dependency resilience (retry + circuit breaker)", () => {
  it("tells transient errors from permanent ones", () => {
    expect([429, 500, 502, 503, 504, 408].map((s) => isTransient(failure(s)))).toEqual(Array(6).fill(true));
    expect([400, 401, 403, 404, 422].map((s) => isTransient(failure(s)))).toEqual(Array(5).fill(false));
    expect(isTransient(Object.assign(new Error("reset"), { code: "ECONNRESET" }))).toBe(true);
    expect(isTransient(new Error("bad arguments"))).toBe(false);
  });

  it("reads Retry-After as seconds or as an HTTP date", () => {
    expect(retryAfterMs(failure(429, { "retry-after": "2" }))).toBe(2000);
    const now = Date.parse("2026-01-01T00:00:00Z");
    expect(retryAfterMs(failure(503, { "retry-after": "Thu, 01 Jan 2026 00:00:05 GMT" }), now)).toBe(5000);
    expect(retryAfterMs(failure(503))).toBeUndefined();
  });

  it("retries a transient failure and returns the eventual success", async () => {
    const dep = new Dependency("svc", { retries: 3, baseMs: 1 });
    let calls = 0;
    const value = await dep.execute(() =>
      ++calls < 3 ? Promise.reject(failure(503)) : Promise.resolve("ok"),
    );
    expect([value, calls]).toEqual(["ok", 3]);
  });

  it("does not retry an error a retry cannot fix", async () => {
    const dep = new Dependency("svc", { retries: 3, baseMs: 1 });
    let calls = 0;
    await expect(dep.execute(() => (calls++, Promise.reject(failure(400))))).rejects.toThrow("HTTP 400");
    expect(calls).toBe(1);
  });

  it("opens after repeated failures, fails fast while open, and closes when a half-open probe succeeds", async () => {
    const dep = new Dependency("svc", { retries: 0, baseMs: 1, breakerThreshold: 3, halfOpenAfterMs: 150 });
    let calls = 0;
    let healthy = false;
    const work = () => (calls++, healthy ? Promise.resolve("up") : Promise.reject(failure(503)));
    for (let i = 0; i < 3; i++) await expect(dep.execute(work)).rejects.toThrow(/failed \d+ times/);
    expect(dep.state).toBe("open");
    const before = calls;
    const fast = await dep.execute(work).catch((e: unknown) => e);
    expect(fast).toBeInstanceOf(DependencyError);
    expect((fast as DependencyError).message).toMatch(
      /svc is unavailable: its circuit breaker is open after 3 failures/,
    );
    expect(calls).toBe(before); // failed fast: the dependency was not called
    await sleep(200);
    healthy = true;
    expect(await dep.execute(work)).toBe("up"); // the half-open probe
    expect(dep.state).toBe("closed");
  });

  it("a failed half-open probe opens the breaker again", async () => {
    const dep = new Dependency("svc", { retries: 0, breakerThreshold: 1, halfOpenAfterMs: 100 });
    await expect(dep.execute(() => Promise.reject(failure(503)))).rejects.toThrow();
    await sleep(150);
    await expect(dep.execute(() => Promise.reject(failure(503)))).rejects.toThrow();
    expect(dep.state).toBe("open");
  });
});
