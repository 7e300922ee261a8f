import type pg from "pg";
import { SystemError } from "../../core/errors.js";
import { scheduleRunWebhook } from "../queue.js";
import { ACTIVE_RUN, readRun, type RunStatus } from "./sql.js";

/**
 * A run's webhook: when the run ends, its outcome is POSTed to the URL it was given, as LangGraph's servers post
 * it (the run, its status, the thread's values, an error message when it failed). The call is a graphile-worker
 * job, so a receiver that is down is tried again with backoff (five attempts), whichever worker is up.
 */

const TIMEOUT_MS = 10_000;

/** Queues the webhook of a run that has ended and asked for one. */
export async function webhookIfEnded(pool: pg.Pool, runId: string): Promise<void> {
  const run = await readRun(pool, runId);
  if (!run?.kwargs.webhook || ACTIVE_RUN.includes(run.status)) return;
  await scheduleRunWebhook(pool, run.run_id, run.status);
}

/** The job: posts the outcome; a failed delivery throws, and graphile-worker tries again later. */
export async function sendRunWebhook(pool: pg.Pool, runId: string, status: RunStatus): Promise<void> {
  const run = await readRun(pool, runId);
  if (!run?.kwargs.webhook) return; // deleted since, or never asked
  const { rows } = await pool.query<{ values: unknown; last_error: string | null; started_at: Date | null }>(
    `select th."values", t.last_error, t.started_at from threads th, tasks t
      where th.thread_id = $1 and t.id = $2`,
    [run.thread_id, run.task_id],
  );
  const body = {
    run_id: run.run_id,
    thread_id: run.thread_id,
    assistant_id: run.assistant_id,
    metadata: run.metadata,
    kwargs: run.kwargs,
    multitask_strategy: run.multitask_strategy,
    created_at: run.created_at,
    status,
    run_started_at: rows[0]?.started_at ?? null,
    run_ended_at: run.updated_at,
    webhook_sent_at: new Date().toISOString(),
    values: rows[0]?.values ?? null,
    ...(status === "error" || status === "timeout" ? { error: rows[0]?.last_error ?? status } : {}),
  };
  const response = await fetch(run.kwargs.webhook, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(TIMEOUT_MS),
  }).catch((error: Error) => {
    throw new SystemError(
      "dependency_failed",
      `The webhook of run ${runId} could not be reached: ${error.message}`,
    );
  });
  if (!response.ok)
    throw new SystemError(
      "dependency_failed",
      `The webhook of run ${runId} answered ${response.status}; it is tried again later.`,
    );
}
