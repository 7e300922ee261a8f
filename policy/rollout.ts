import { z } from "zod";

/**
 * How a rollout's steps are judged (in the spirit of Flagger's `analysis`): over each step's window, the
 * candidate's tasks against the baseline's of the same window and against the SLO targets. A step whose window
 * has fewer than `min_sample` settled candidate tasks is inconclusive: it waits, it does not pass.
 */
export const RolloutAnalysis = z
  .object({
    window_minutes: z
      .number()
      .min(0)
      .default(10)
      .describe("How long each step lasts at least; its tasks are the ones submitted since it began"),
    min_sample: z
      .number()
      .int()
      .positive()
      .default(20)
      .describe(
        "Settled candidate tasks (done, failed, waiting for a person) needed before a step is judged",
      ),
    failure_limit: z
      .number()
      .int()
      .min(0)
      .default(0)
      .describe("Failed analyses tolerated before the rollout is rolled back (0: the first one rolls back)"),
    max_success_rate_drop: z
      .number()
      .min(0)
      .max(1)
      .default(0.05)
      .describe("Largest drop of the success rate below the baseline's (0.05 = 5 points)"),
    max_latency_ratio: z
      .number()
      .min(1)
      .default(1.5)
      .describe("Largest p95 time to completion and to first token, as a multiple of the baseline's"),
    max_tool_error_rate_rise: z
      .number()
      .min(0)
      .max(1)
      .default(0.05)
      .describe("Largest rise of the tool-call error rate above the baseline's"),
    max_escalation_rate_rise: z
      .number()
      .min(0)
      .max(1)
      .default(0.1)
      .describe("Largest rise of the human escalation rate above the baseline's"),
    max_cost_ratio: z
      .number()
      .min(1)
      .default(1.5)
      .describe("Largest cost per successful task, as a multiple of the baseline's"),
    max_unreviewed_high_risk: z
      .number()
      .int()
      .min(0)
      .default(0)
      .describe("High- or critical-risk tool calls the candidate may make without a person deciding them"),
    max_guardrail_rate_rise: z
      .number()
      .min(0)
      .max(1)
      .default(0.05)
      .describe("Largest rise of guardrail events (blocked or neutralised) per task above the baseline's"),
  })
  .strict();
export type RolloutAnalysis = z.infer<typeof RolloutAnalysis>;

/** The `rollout` section of the policy file: how rollouts are judged, and where a rollback is announced. */
export const RolloutPolicy = z
  .object({
    analysis: RolloutAnalysis.default(RolloutAnalysis.parse({})).describe("How each step is judged"),
    webhook_url: z
      .string()
      .url()
      .optional()
      .describe("Where a rollback (and a promotion) is posted, as Slack-compatible JSON ({ text })"),
  })
  .strict();
export type RolloutPolicy = z.infer<typeof RolloutPolicy>;

export const DEFAULT_ROLLOUT_POLICY: RolloutPolicy = RolloutPolicy.parse({});
