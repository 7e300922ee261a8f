import { Logger, runMigrations } from "graphile-worker";
import type pg from "pg";
import { withMigrationLock } from "../checkpoints/migrations.js";

/**
 * Keel's jobs on graphile-worker. Jobs only say "look at task X now"; the task row (status, lease, fencing token)
 * is the truth, so a job that runs twice or late does no harm. Jobs are added with SQL in the caller's
 * transaction, so a task and its job are stored together or not at all.
 */
export const JOB = {
  runTask: "keel_run_task",
  checkLease: "keel_check_lease",
  expireApproval: "keel_expire_approval",
} as const;

export type RunKind = "start" | "resume" | "retry";

export interface RunTaskPayload {
  task_id: string;
  kind: RunKind;
}

export async function prepareQueue(pool: pg.Pool): Promise<void> {
  await withMigrationLock(pool, () => runMigrations({ pgPool: pool, logger: quietLogger }));
}

async function addJob(
  client: pg.ClientBase,
  identifier: string,
  payload: object,
  runAt: Date | null,
  jobKey: string | null,
): Promise<void> {
  await client.query(
    "select graphile_worker.add_job($1, $2::json, run_at => $3, max_attempts => 5, job_key => $4, job_key_mode => 'replace')",
    [identifier, JSON.stringify(payload), runAt, jobKey],
  );
}

/** Asks a worker to run (or resume, or retry) a task; one pending run job per task. */
export function enqueue(
  client: pg.ClientBase,
  taskId: string,
  kind: RunKind,
  runAt: Date | null = null,
): Promise<void> {
  return addJob(
    client,
    JOB.runTask,
    { task_id: taskId, kind } satisfies RunTaskPayload,
    runAt,
    `run:${taskId}`,
  );
}

/** Looks at a task's lease when it would expire: a worker that died is noticed within the lease time. */
export function scheduleLeaseCheck(
  client: pg.ClientBase,
  taskId: string,
  token: string,
  at: Date,
): Promise<void> {
  return addJob(client, JOB.checkLease, { task_id: taskId, token }, at, `lease:${taskId}`);
}

export function scheduleApprovalExpiry(client: pg.ClientBase, approvalId: string, at: Date): Promise<void> {
  return addJob(client, JOB.expireApproval, { approval_id: approvalId }, at, `expire:${approvalId}`);
}

/** graphile-worker logs each job at info level; Keel reports its own progress, so only problems pass. */
export const quietLogger = new Logger(() => (level: string, message: string) => {
  if (level === "error" || level === "warning") console.error(`keel worker: ${message}`);
});
