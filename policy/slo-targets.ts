import { z } from "zod";

/**
 * Service-level targets `keel slo` checks. Rates are fractions (0.95 = 95%); a target is met when the measured
 * value is on the right side of it: success above, everything else below.
 */
export const SloTargets = z
  .object({
    task_success_rate: z
      .number()
      .min(0)
      .max(1)
      .describe("Lowest acceptable share of finished tasks that succeed"),
    p95_time_to_first_token_seconds: z
      .number()
      .positive()
      .describe("Highest acceptable p95 from submit to the first model output of a task"),
    p95_time_to_completion_seconds: z
      .number()
      .positive()
      .describe("Highest acceptable p95 from submit to done, not counting time waiting for a person"),
    tool_call_error_rate: z
      .number()
      .min(0)
      .max(1)
      .describe("Highest acceptable share of tool calls that fail"),
    human_escalation_rate: z
      .number()
      .min(0)
      .max(1)
      .describe("Highest acceptable share of tasks that ask a person"),
    cost_per_successful_task_usd: z
      .number()
      .min(0)
      .describe("Highest acceptable model cost of all finished tasks divided by the successful ones"),
  })
  .strict();
export type SloTargets = z.infer<typeof SloTargets>;

export const DEFAULT_SLO_TARGETS: SloTargets = {
  task_success_rate: 0.95,
  p95_time_to_first_token_seconds: 2,
  p95_time_to_completion_seconds: 30,
  tool_call_error_rate: 0.02,
  human_escalation_rate: 0.1,
  cost_per_successful_task_usd: 0.5,
};

/** The `slo` section of the policy file: targets for all tasks, and overrides per workflow. */
export const SloPolicy = z
  .object({
    targets: SloTargets.partial()
      .default({})
      .transform((t) => ({ ...DEFAULT_SLO_TARGETS, ...t }))
      .describe("Targets for every workflow"),
    workflows: z
      .record(z.string(), SloTargets.partial())
      .default({})
      .describe("Targets of one workflow (keel submit --workflow), over the ones above"),
  })
  .strict();
export type SloPolicy = z.infer<typeof SloPolicy>;

/** The targets of one workflow (or of all tasks when none is named). */
export function targetsFor(slo: SloPolicy, workflow?: string): SloTargets {
  return { ...slo.targets, ...(workflow ? slo.workflows[workflow] : {}) };
}
