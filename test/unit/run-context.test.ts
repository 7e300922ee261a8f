import { describe, expect, it } from "vitest";
import { keelConfigurable, runContext } from "../../graphs/run-context.js";

describe("run context", () => {
  it("reads Keel's keys and LangGraph's thread", () => {
    expect(
      runContext({
        configurable: {
          thread_id: "t-1",
          checkpoint_ns: "research:abc",
          keel_fenced: true,
          keel_fence_token: "7",
          keel_attempt: 2,
          keel_deadline: 1234,
          __pregel_anything: {},
        },
      }),
    ).toEqual({
      threadId: "t-1",
      checkpointNs: "research:abc",
      fenceToken: "7",
      fenceTaskId: "t-1",
      attempt: 2,
      deadline: 1234,
    });
    expect(runContext(undefined)).toEqual({ checkpointNs: "" });
  });

  it("fences a run of the Agent Server API by the task that carries it, not by its thread", () => {
    const task = "0190aaaa-0000-7000-8000-000000000001";
    const context = runContext({
      configurable: { thread_id: "thread-1", keel_fenced: true, keel_fence_token: "3", keel_task_id: task },
    });
    expect(context).toMatchObject({ threadId: "thread-1", fenceTaskId: task, fenceToken: "3" });
    expect(() => runContext({ configurable: { keel_task_id: "not-a-uuid" } })).toThrow(/keel_task_id/);
  });

  it("stops a fenced run that carries no fencing token", () => {
    expect(() => runContext({ configurable: { thread_id: "t", keel_fenced: true } })).toThrow(
      /fenced but carries no fencing token/,
    );
  });

  it("refuses a misspelt or malformed key instead of ignoring it", () => {
    expect(() => runContext({ configurable: { keel_fence_tokn: "7" } })).toThrow(/keel_fence_tokn/);
    expect(() => runContext({ configurable: { keel_fence_token: 7 } })).toThrow(/keel_fence_token/);
    expect(() => keelConfigurable({ keel_attempt: 0 })).toThrow();
  });
});
