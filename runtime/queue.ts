import { randomUUID } from "node:crypto";
import { Logger, runMigrations } from "graphile-worker";
import type pg from "pg";
import { withMigrationLock } from "../checkpoints/migrations/index.js";

/**
 * Keel's jobs on graphile-worker. Jobs only say "look at task X now"; the task row (status, lease, fencing token)
 * is the truth, so a job that runs twice or late does no harm. Jobs are added with SQL in the caller's
 * transaction, so a task and its job are stored together or not at all.
 */
export const JOB = {
  runTask: "keel_run_task",
  watchTask: "keel_watch_task",
  expireApproval: "keel_expire_approval",
  compensate: "keel_compensate",
  pruneTrajectories: "keel_prune_trajectories",
  cronTick: "keel_cron_tick",
  runWebhook: "keel_run_webhook",
  analyzeRollout: "keel_analyze_rollout",
} as const;

export type RunKind = "start" | "resume" | "retry";

/** The queue of `keel worker` (without --queue), and of every task submitted for other processes to drive. */
export const DEFAULT_QUEUE = "default";

/** Queue names: what `keel worker --queue` accepts and what a task stores. */
export const QUEUE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

/** A queue of one process's own (`run-1a2b3c4d`): only that process's worker drives its tasks. */
export function callerQueue(kind: "run" | "batch" | "eval"): string {
  return `${kind}-${randomUUID().slice(0, 8)}`;
}

/**
 * The graphile-worker task identifier of a queue's run jobs. A graphile worker only fetches the identifiers in
 * its task list, so a process that registers `keel_run_task:<its queue>` drives only its own tasks; the default
 * queue keeps the plain identifier, so jobs queued by earlier versions still run.
 */
export function runJob(queue: string): string {
  return queue === DEFAULT_QUEUE ? JOB.runTask : `${JOB.runTask}:${queue}`;
}

export interface RunTaskPayload {
  task_id: string;
  kind: RunKind;
}

export async function prepareQueue(pool: pg.Pool): Promise<void> {
  await withMigrationLock(pool, () => runMigrations({ pgPool: pool, logger: quietLogger }));
}

/** A pool or a transaction's client: a job added through the client commits with the transaction. */
type Queryable = Pick<pg.ClientBase, "query">;

async function addJob(
  client: Queryable,
  identifier: string,
  payload: object,
  runAt: Date | null,
  jobKey: string | null,
  keyMode: "replace" | "preserve_run_at" = "replace",
): Promise<void> {
  await client.query(
    "select graphile_worker.add_job($1, $2::json, run_at => $3, max_attempts => 5, job_key => $4, job_key_mode => $5)",
    [identifier, JSON.stringify(payload), runAt, jobKey, keyMode],
  );
}

/** Asks a worker of the task's queue to run (or resume, or retry) it; one pending run job per task. */
export function enqueue(
  client: Queryable,
  task: { id: string; queue: string },
  kind: RunKind,
  runAt: Date | null = null,
  keyMode: "replace" | "preserve_run_at" = "replace",
): Promise<void> {
  return addJob(
    client,
    runJob(task.queue),
    { task_id: task.id, kind } satisfies RunTaskPayload,
    runAt,
    `run:${task.id}`,
    keyMode,
  );
}

/**
 * Looks at a task again at `at`: a running task whose lease was not renewed, or a queued one whose job a dead
 * worker had taken, is noticed within the lease time. One pending look per task.
 */
export function scheduleWatch(client: Queryable, taskId: string, at: Date): Promise<void> {
  return addJob(client, JOB.watchTask, { task_id: taskId }, at, `watch:${taskId}`);
}

/** Drops a task's pending watch: a finished or waiting task needs no watching (a decision schedules a new one). */
export async function unwatch(client: pg.ClientBase, taskId: string): Promise<void> {
  await client.query("select graphile_worker.remove_job($1)", [`watch:${taskId}`]);
}

/**
 * Asks a worker to undo the committed reversible effects of a tree that finally failed or was cancelled.
 * Added in the transaction that ends the tree, so the undo is as durable as the ending.
 */
export function scheduleCompensation(client: pg.ClientBase, rootId: string): Promise<void> {
  return addJob(client, JOB.compensate, { task_id: rootId }, null, `compensate:${rootId}`);
}

export function scheduleApprovalExpiry(client: pg.ClientBase, approvalId: string, at: Date): Promise<void> {
  return addJob(client, JOB.expireApproval, { approval_id: approvalId }, at, `expire:${approvalId}`);
}

/** graphile-worker logs each job at info level; Keel reports its own progress, so only problems pass. */
export const quietLogger = new Logger(() => (level: string, message: string, meta?: { error?: unknown }) => {
  if (level !== "error" && level !== "warning") return;
  const cause = meta?.error instanceof Error ? ` (${meta.error.message})` : "";
  console.error(`keel worker: ${message}${cause}`);
});

/**
 * Schedules the trajectory store's retention prune at `at`. There is one prune job for all workers: a worker
 * that starts while one is pending leaves its time alone.
 */
export function schedulePrune(client: Queryable, at: Date): Promise<void> {
  return addJob(client, JOB.pruneTrajectories, {}, at, "prune-trajectories", "preserve_run_at");
}

/** Posts a finished run's outcome to its webhook (retried by graphile-worker when the receiver fails). */
export function scheduleRunWebhook(client: Queryable, runId: string, status: string): Promise<void> {
  return addJob(client, JOB.runWebhook, { run_id: runId, status }, null, `webhook:${runId}:${status}`);
}
