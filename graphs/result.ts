import { z } from "zod";
import { AgentResult, Plan } from "../agents/contracts.js";
import { SystemError } from "../core/errors.js";

/**
 * What a drive leaves in `tasks.result`: the checked plan and each AgentTask's result. Parsed when read back, so
 * a row written by another version fails loudly instead of being used as if it fit.
 */
export const RunResult = z
  .object({
    plan: Plan.nullable().describe("The checked plan, or null when planning did not finish"),
    results: z.array(AgentResult).describe("One result per AgentTask that ran"),
  })
  .describe("The stored outcome of a run");
export type RunResult = z.infer<typeof RunResult>;

/** The stored result of a task, or an empty one for a task that has none yet. */
export function parseRunResult(value: unknown, taskId: string): RunResult {
  if (value === null || value === undefined) return { plan: null, results: [] };
  const parsed = RunResult.safeParse(value);
  if (!parsed.success)
    throw new SystemError(
      "internal",
      `The stored result of task ${taskId} does not fit its schema (${z.prettifyError(parsed.error)}).`,
    );
  return parsed.data;
}
