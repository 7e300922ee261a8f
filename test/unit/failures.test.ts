import { describe, expect, it } from "vitest";
import {
  DeadlineError,
  exitCodeFor,
  failureOf,
  InputError,
  KeelError,
  PlanError,
  PolicyError,
  TransientError,
  WorkerStoppingError,
} from "../../core/errors.js";
import { FAILURES, FailureReason, parseFailureReason } from "../../core/failures.js";

// The table users rely on: what each reason does to a task's retries and to a command's exit code.
const EXPECTED: Record<
  FailureReason,
  { fault: string; retryable: boolean; exit: number; counts: boolean; crash?: boolean }
> = {
  invalid_request: { fault: "user", retryable: false, exit: 2, counts: true },
  invalid_argument: { fault: "user", retryable: false, exit: 2, counts: true },
  not_found: { fault: "user", retryable: false, exit: 2, counts: true },
  conflict: { fault: "user", retryable: false, exit: 2, counts: true },
  invalid_plan: { fault: "model", retryable: false, exit: 2, counts: true },
  model_error: { fault: "model", retryable: true, exit: 1, counts: true },
  tool_error: { fault: "model", retryable: true, exit: 1, counts: true },
  database_error: { fault: "system", retryable: true, exit: 1, counts: true },
  configuration_error: { fault: "user", retryable: false, exit: 2, counts: true },
  dependency_failed: { fault: "system", retryable: true, exit: 1, counts: true },
  internal: { fault: "system", retryable: true, exit: 1, counts: true },
  timeout: { fault: "system", retryable: false, exit: 1, counts: true },
  lease_expired: { fault: "system", retryable: true, exit: 1, counts: false, crash: true },
  released: { fault: "system", retryable: true, exit: 1, counts: false },
  poison_task: { fault: "system", retryable: false, exit: 1, counts: true },
  blocked: { fault: "policy", retryable: false, exit: 2, counts: true },
  budget_exceeded: { fault: "policy", retryable: false, exit: 2, counts: true },
  rejected: { fault: "policy", retryable: false, exit: 1, counts: true },
  approval_expired: { fault: "policy", retryable: false, exit: 1, counts: true },
  subtask_failed: { fault: "system", retryable: false, exit: 1, counts: true },
};

describe("failure reasons", () => {
  it("the table covers every reason, and nothing else", () => {
    expect(Object.keys(FAILURES).sort()).toEqual([...FailureReason.options].sort());
    expect(Object.keys(EXPECTED).sort()).toEqual([...FailureReason.options].sort());
  });

  it.each(FailureReason.options)("%s maps to one fault, one retry decision and one exit code", (reason) => {
    const rule = FAILURES[reason];
    expect({
      fault: rule.fault,
      retryable: rule.retryable,
      exit: rule.exitCode,
      counts: rule.countsAttempt,
      ...(rule.countsCrash ? { crash: true } : {}),
    }).toEqual(EXPECTED[reason]);
    expect(rule.summary.length).toBeGreaterThan(10);
    // An error of that code carries the same decision, and a command ends with the same exit code.
    const error = new KeelError(reason, rule.fault, "x");
    expect(error.retryable).toBe(rule.retryable);
    expect(exitCodeFor(error)).toBe(rule.exitCode);
    expect(failureOf(error)).toMatchObject({ reason, fault: rule.fault, retryable: rule.retryable });
  });

  it("typed errors name their reason, and who is at fault", () => {
    expect(failureOf(new InputError("bad"))).toMatchObject({ reason: "invalid_request", fault: "user" });
    expect(failureOf(new PlanError(["cycle"]))).toMatchObject({ reason: "invalid_plan", retryable: false });
    expect(failureOf(new PolicyError("budget_exceeded", "budget_exceeded:tokens", "spent"))).toEqual({
      reason: "budget_exceeded",
      fault: "policy",
      retryable: false,
      message: "spent",
      rule: "budget_exceeded:tokens",
    });
    expect(failureOf(new DeadlineError())).toMatchObject({ reason: "timeout", retryable: false });
    expect(failureOf(new WorkerStoppingError())).toMatchObject({ reason: "released", retryable: true });
    expect(failureOf(new TransientError("503", 503))).toMatchObject({
      reason: "dependency_failed",
      retryable: true,
    });
    // Anything that is not Keel's own is an internal error: retried, exit 1.
    expect(failureOf(new Error("boom"))).toMatchObject({
      reason: "internal",
      fault: "system",
      retryable: true,
    });
    expect(exitCodeFor(new Error("boom"))).toBe(1);
  });

  it("a transient failure may be retried even where its reason usually is not", () => {
    const error = new KeelError("invalid_plan", "model", "cut off", { retryable: true });
    expect(error.retryable).toBe(true);
    expect(failureOf(error).retryable).toBe(true);
  });

  it("reads stored reasons back; text from older versions is internal", () => {
    expect(parseFailureReason("rejected")).toBe("rejected");
    expect(parseFailureReason(null)).toBeNull();
    expect(parseFailureReason("lease expired somehow")).toBe("internal");
  });
});
