import { z } from "zod";

/** What happens to the checkpoints of a finished thread, once it has kept its full history `keep_all_days`. */
export const CheckpointRetention = z
  .object({
    keep_all_days: z
      .number()
      .int()
      .min(0)
      .describe("Days a finished thread keeps every checkpoint (its whole history) before `then` applies"),
    then: z
      .enum(["keep", "latest", "delete"])
      .describe(
        "keep: every checkpoint, for good; latest: only the latest checkpoint and what its state needs (the thread's final state stays readable and resumable); delete: all of the thread's checkpoints",
      ),
  })
  .strict();
export type CheckpointRetention = z.infer<typeof CheckpointRetention>;

export const DEFAULT_CHECKPOINT_RETENTION: CheckpointRetention = { keep_all_days: 7, then: "latest" };

/** The `retention` section of the policy file: for every workflow, and overrides per workflow. */
export const RetentionPolicy = z
  .object({
    checkpoints: CheckpointRetention.partial()
      .default({})
      .transform((r) => ({ ...DEFAULT_CHECKPOINT_RETENTION, ...r }))
      .describe("What finished threads keep, for every workflow"),
    workflows: z
      .record(z.string(), CheckpointRetention.partial())
      .default({})
      .describe(
        "What the finished threads of one workflow keep (keel submit --workflow; for a thread of the Agent Server API, its graph id), over the above",
      ),
  })
  .strict();
export type RetentionPolicy = z.infer<typeof RetentionPolicy>;

/** The retention that applies to one workflow's finished threads. */
export function retentionFor(policy: RetentionPolicy, workflow: string): CheckpointRetention {
  return { ...policy.checkpoints, ...policy.workflows[workflow] };
}
