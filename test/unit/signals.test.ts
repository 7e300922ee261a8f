import { getEventListeners } from "node:events";
import { afterEach, describe, expect, it, vi } from "vitest";
import { boundedSignal } from "../../core/signals.js";

afterEach(() => {
  vi.useRealTimers();
});

describe("boundedSignal", () => {
  it("aborts with a source, with the source's reason", () => {
    const run = new AbortController();
    const bound = boundedSignal([run.signal], 60_000);
    run.abort(new Error("cancelled"));
    expect(bound.signal.aborted).toBe(true);
    expect((bound.signal.reason as Error).message).toBe("cancelled");
    expect(bound.timedOut()).toBe(false);
  });

  it("aborts when its time is up, and says so", () => {
    vi.useFakeTimers();
    const bound = boundedSignal([new AbortController().signal], 1000);
    vi.advanceTimersByTime(999);
    expect(bound.signal.aborted).toBe(false);
    vi.advanceTimersByTime(1);
    expect(bound.signal.aborted).toBe(true);
    expect(bound.timedOut()).toBe(true);
    expect((bound.signal.reason as DOMException).name).toBe("TimeoutError");
  });

  it("starts aborted when a source already is", () => {
    const run = new AbortController();
    run.abort("gone");
    const bound = boundedSignal([undefined, run.signal], 1000);
    expect(bound.signal.aborted).toBe(true);
    expect(bound.signal.reason).toBe("gone");
  });

  it("leaves nothing on a long-lived source once released: no listener, no timer", () => {
    vi.useFakeTimers();
    const worker = new AbortController();
    for (let i = 0; i < 1000; i++) {
      const bound = boundedSignal([worker.signal], 300_000);
      bound.release();
      bound.release(); // twice is harmless
    }
    expect(getEventListeners(worker.signal, "abort")).toHaveLength(0);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("removes its listeners from the sources when it aborts", () => {
    const a = new AbortController();
    const b = new AbortController();
    boundedSignal([a.signal, b.signal]);
    a.abort();
    expect(getEventListeners(b.signal, "abort")).toHaveLength(0);
  });
});
