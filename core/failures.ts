import { z } from "zod";

/** Who caused a failure: the caller, the model's output, Keel or its environment, or a rule of the policy. */
export const Fault = z.enum(["user", "model", "system", "policy"]).describe("Who caused the failure");
export type Fault = z.infer<typeof Fault>;

/**
 * Every reason a task (or one of its AgentTasks) can end failed or be retried with. Stored in
 * `tasks.error_reason`; exit codes, retry decisions and `keel status` derive from it through `FAILURES`.
 */
export const FailureReason = z
  .enum([
    // The caller's input.
    "invalid_request",
    "invalid_argument",
    "not_found",
    "conflict",
    // The model's output.
    "invalid_plan",
    "model_error",
    "tool_error",
    // Keel and what it runs on.
    "database_error",
    "configuration_error",
    "dependency_failed",
    "internal",
    "timeout",
    "lease_expired",
    "released",
    "poison_task",
    // Rules of the policy, and people.
    "blocked",
    "budget_exceeded",
    "rejected",
    "approval_expired",
    // The request ran, but an AgentTask of it did not finish.
    "subtask_failed",
  ])
  .describe("Why a task failed or was retried");
export type FailureReason = z.infer<typeof FailureReason>;

export interface FailureRule {
  fault: Fault;
  /** Whether another attempt of the same request can end differently. */
  retryable: boolean;
  /** The exit code of a CLI command whose task ended with this reason: 2 for the caller's or the policy's. */
  exitCode: 1 | 2;
  /** Whether the attempt that ended this way counts against the task's attempts. */
  countsAttempt: boolean;
  /** Whether it counts as a crash (the worker was lost): crashes have their own limit, `max_crashes`. */
  countsCrash: boolean;
  /** One line for people: what it means and what to do. */
  summary: string;
}

const rule = (
  fault: Fault,
  retryable: boolean,
  summary: string,
  options: { exitCode?: 1 | 2; countsAttempt?: boolean; countsCrash?: boolean } = {},
): FailureRule => ({
  fault,
  retryable,
  summary,
  exitCode: options.exitCode ?? (fault === "user" || fault === "policy" ? 2 : 1),
  countsAttempt: options.countsAttempt ?? true,
  countsCrash: options.countsCrash ?? false,
});

/** The one table of what each failure means. A test walks every reason. */
export const FAILURES: Readonly<Record<FailureReason, FailureRule>> = {
  invalid_request: rule("user", false, "the request is malformed; fix it and submit again"),
  invalid_argument: rule("user", false, "an argument is wrong; fix it and try again"),
  not_found: rule("user", false, "a named thing does not exist; check the id"),
  conflict: rule("user", false, "the request conflicts with what is stored; see the message"),
  invalid_plan: rule(
    "model",
    false,
    "the planner produced a plan that cannot run; rephrase or use a stronger model",
    {
      exitCode: 2,
    },
  ),
  model_error: rule("model", true, "the model's output could not be used; retried"),
  tool_error: rule("model", true, "a tool call failed; retried"),
  database_error: rule("system", true, "the database failed; retried"),
  configuration_error: rule(
    "user",
    false,
    "a setting or the policy file is wrong; fix what the message names",
  ),
  dependency_failed: rule("system", true, "an outside dependency kept failing; retried"),
  internal: rule("system", true, "an unexpected error; retried"),
  timeout: rule("system", false, "the request's deadline passed"),
  lease_expired: rule(
    "system",
    true,
    "the worker running it stopped renewing its lease (it crashed or was cut off); retried from its checkpoint without using an attempt",
    { countsAttempt: false, countsCrash: true },
  ),
  released: rule("system", true, "the worker running it stopped; queued again without using an attempt", {
    countsAttempt: false,
  }),
  poison_task: rule(
    "system",
    false,
    "its runs kept losing their worker (KEEL_MAX_CRASHES); stopped so that it cannot take more workers down. Its committed effects and approvals stand; see keel trace for where it died",
  ),
  blocked: rule("policy", false, "a guardrail blocked it; see the rule named"),
  budget_exceeded: rule("policy", false, "a budget of the policy file ran out; see the rule named"),
  rejected: rule("policy", false, "a person rejected a held action", { exitCode: 1 }),
  approval_expired: rule("policy", false, "nobody decided a held action in time", { exitCode: 1 }),
  subtask_failed: rule("system", false, "an AgentTask of the request failed; see its error"),
};

export function failureRule(reason: FailureReason): FailureRule {
  return FAILURES[reason];
}

/** A stored reason read back: unknown text (rows of older versions) is `internal`. */
export function parseFailureReason(value: string | null | undefined): FailureReason | null {
  if (value === null || value === undefined) return null;
  const parsed = FailureReason.safeParse(value);
  return parsed.success ? parsed.data : "internal";
}
