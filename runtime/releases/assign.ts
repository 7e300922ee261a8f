import { createHash } from "node:crypto";
import { z } from "zod";

/** What a request's assignment is keyed on: one submitter's (or workflow's) requests stay on one release. */
export const AssignmentKey = z
  .enum(["submitter", "workflow", "task"])
  .describe("What sticks to one release: the submitter, the workflow, or each task on its own");
export type AssignmentKey = z.infer<typeof AssignmentKey>;

/** One step of a rollout: a named cohort (exact keys), or a share of all keys in percent. */
export const RolloutStep = z.union([
  z
    .object({
      cohort: z.array(z.string().min(1)).min(1).describe("Keys that get the candidate (e.g. submitters)"),
    })
    .strict(),
  z.object({ percent: z.number().gt(0).max(100).describe("Share of keys that get the candidate") }).strict(),
]);
export type RolloutStep = z.infer<typeof RolloutStep>;

/** The usual ladder: an internal cohort when one is given, then 1%, 10%, 50%, 100%. */
export const DEFAULT_PERCENTS = [1, 10, 50, 100] as const;

/**
 * Parses `--steps`: `;`-separated steps, each a percent (`10`, `10%`) or `cohort:a,b,c`. Percents must rise, end
 * at 100, and a cohort may only come first.
 */
export function parseSteps(text: string): RolloutStep[] {
  const steps = text
    .split(";")
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s): RolloutStep => {
      if (s.startsWith("cohort:")) {
        const keys = s
          .slice("cohort:".length)
          .split(",")
          .map((k) => k.trim())
          .filter(Boolean);
        if (keys.length === 0) throw new Error(`"${s}" names no keys: give cohort:alice,bob`);
        return { cohort: keys };
      }
      const percent = Number(s.replace(/%$/, ""));
      if (!Number.isFinite(percent) || percent <= 0 || percent > 100)
        throw new Error(`"${s}" is not a step: give a percent above 0 and up to 100, or cohort:key,key`);
      return { percent };
    });
  checkSteps(steps);
  return steps;
}

/** A ladder that can be walked: at least one step, a cohort only first, rising percents that end at 100. */
export function checkSteps(steps: readonly RolloutStep[]): void {
  if (steps.length === 0) throw new Error("a rollout needs at least one step; the last must be 100%");
  let last = 0;
  steps.forEach((step, i) => {
    if ("cohort" in step) {
      if (i > 0) throw new Error("a cohort step may only come first");
      return;
    }
    if (step.percent <= last)
      throw new Error(`percent steps must rise: ${step.percent}% comes after ${last}%`);
    last = step.percent;
  });
  if (last !== 100) throw new Error(`the last step must be 100% (it is ${last ? `${last}%` : "a cohort"})`);
}

/**
 * Where a key falls in 0..9999 for one rollout: a hash of the rollout's salt and the key, so it is the same
 * every time (sticky) and independent between rollouts.
 */
export function bucketOf(salt: string, key: string): number {
  const digest = createHash("sha256").update(`${salt}\u0000${key}`).digest();
  return digest.readUInt32BE(0) % 10_000;
}

/**
 * Whether a key gets the candidate at step `index` of `steps`. A cohort's keys keep the candidate for the whole
 * rollout; a percent step takes the keys whose bucket lies below it, so a key that got the candidate at 10%
 * still has it at 50%.
 */
export function getsCandidate(
  steps: readonly RolloutStep[],
  index: number,
  salt: string,
  key: string,
): boolean {
  const cohort = steps[0] && "cohort" in steps[0] ? steps[0].cohort : [];
  if (cohort.includes(key)) return true;
  const step = steps[Math.min(index, steps.length - 1)];
  if (!step || "cohort" in step) return false;
  return bucketOf(salt, key) < step.percent * 100;
}
