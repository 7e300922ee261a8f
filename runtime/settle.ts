import type pg from "pg";
import type { Database } from "../checkpoints/database.js";
import type { KeelConfig } from "../core/config.js";
import { isKeelError, PolicyError } from "../core/errors.js";
import { KEEL, recordSpan, tracedContext } from "../observability/spans.js";
import { recordStep } from "../observability/trajectory.js";
import { recordApprovals } from "./approvals.js";
import { insertChildren, markWaiting, settleChildren } from "./children.js";
import { enqueue, scheduleCompensation, scheduleWatch, unwatch } from "./queue.js";
import type { RunOutcome } from "./runner.js";
import { FencedOutError } from "./status.js";
import { inTransaction, transition, type TaskRow } from "./store.js";

/** How a worker's drive of a task ends up in the task store: done, waiting, failed, retried or released. */
export interface SettleContext {
  db: Database;
  config: KeelConfig;
  workerId: string;
}

export interface Claim {
  task: TaskRow;
  token: string;
}

/** Exponential backoff with full jitter: a random delay up to base * 2^(attempt-1). */
export function retryDelayMs(attempt: number, baseMs: number, random = Math.random): number {
  return Math.round(random() * baseMs * 2 ** Math.max(0, attempt - 1));
}

export class DeadlineError extends Error {
  constructor() {
    super("deadline passed");
  }
}

export async function failOrRetry(
  ctx: SettleContext,
  client: pg.PoolClient,
  task: TaskRow,
  reason: string,
  message: string,
  retryable: boolean,
  token?: string,
) {
  const failed = await transition(client, task.id, "failed", {
    reason,
    worker: ctx.workerId,
    token,
    patch: { error_reason: reason, last_error: message, lease: "clear" },
  });
  const retrying = retryable && failed.attempts < failed.max_attempts && !failed.cancel_requested;
  const delay = retrying ? retryDelayMs(failed.attempts, ctx.config.runtime.retryBaseMs) : 0;
  await recordStep(client, {
    thread_id: task.root_id,
    agent: "orchestrator",
    kind: retrying ? "retry" : "error",
    name: "task",
    status: retrying ? "scheduled" : "failed",
    error: message,
    error_class: reason,
    attempt: failed.attempts,
    output: retrying ? { next_attempt: failed.attempts + 1, delay_ms: delay } : { retryable },
  });
  const now = Date.now();
  recordSpan(
    retrying ? "retry task" : "task failed",
    { [KEEL.taskId]: task.id, [KEEL.attempt]: failed.attempts, "error.type": reason },
    now,
    now,
    { parent: tracedContext(task.trace_context), error: reason },
  );
  if (retrying) {
    await transition(client, task.id, "queued", { reason: `retry in ${delay} ms`, worker: ctx.workerId });
    await enqueue(client, task.id, "retry", new Date(Date.now() + delay));
    await scheduleWatch(
      client,
      task.id,
      new Date(Date.now() + delay + ctx.config.runtime.leaseSeconds * 1000),
    );
  } else {
    await unwatch(client, task.id);
    await scheduleCompensation(client, task.root_id);
  }
}

export async function settleOutcome(ctx: SettleContext, claim: Claim, outcome: RunOutcome): Promise<void> {
  await inTransaction(ctx.db.pool, async (client) => {
    if (outcome.plan) await insertChildren(client, claim.task, outcome.plan.tasks);
    const summary = { results: outcome.results, plan: outcome.plan ?? null };
    if (outcome.status === "waiting_for_approval") {
      const waiting = await transition(client, claim.task.id, "waiting_for_approval", {
        reason: `waiting for ${outcome.pending.length} approval(s)`,
        worker: ctx.workerId,
        token: claim.token,
        patch: { result: summary },
      });
      await recordApprovals(client, waiting, outcome.pending, ctx.config.runtime.approvalTtlSeconds);
      await unwatch(client, claim.task.id);
      await markWaiting(
        client,
        claim.task,
        outcome.pending.map((p) => p.request.task_id),
        ctx.workerId,
      );
      return;
    }
    await settleChildren(client, claim.task, outcome.results, ctx.workerId);
    await unwatch(client, claim.task.id);
    const rejected = outcome.results.some((r) => r.status === "rejected");
    const failed = outcome.results.filter((r) => r.status === "failed");
    if (outcome.status === "done" && !rejected) {
      await transition(client, claim.task.id, "done", {
        reason: "finished",
        worker: ctx.workerId,
        token: claim.token,
        patch: { final_answer: outcome.final_answer ?? "", result: summary },
      });
      return;
    }
    // Finished, but not everything it asked for happened: a person said no, or a sub-task failed.
    const reason = rejected
      ? "rejected"
      : failed.some((r) => r.error === "timeout")
        ? "timeout"
        : "subtask_failed";
    await scheduleCompensation(client, claim.task.root_id);
    await recordStep(client, {
      thread_id: claim.task.root_id,
      agent: "orchestrator",
      kind: "error",
      name: "task",
      status: "failed",
      error: outcome.results
        .filter((r) => r.status !== "done")
        .map((r) => `${r.task_id}: ${r.error ?? r.status}`)
        .join("; "),
      error_class: reason,
      attempt: claim.task.attempts,
    });
    await transition(client, claim.task.id, "failed", {
      reason,
      worker: ctx.workerId,
      token: claim.token,
      patch: {
        error_reason: reason,
        last_error: [
          ...outcome.results
            .filter((r) => r.status !== "done")
            .map((r) => `${r.task_id}: ${r.error ?? r.status}`),
        ].join("; "),
        final_answer: outcome.final_answer ?? "",
        result: summary,
      },
    });
  });
}

export async function settleError(
  ctx: SettleContext,
  claim: Claim,
  error: unknown,
  signal: AbortSignal,
): Promise<void> {
  const cause: unknown = signal.aborted ? signal.reason : error;
  if (cause instanceof FencedOutError || error instanceof FencedOutError) return; // someone else owns it now
  if (cause instanceof Error && cause.message === "worker stopping") {
    // Released on shutdown: back to the queue at once, without using up an attempt.
    await inTransaction(ctx.db.pool, async (client) => {
      await transition(client, claim.task.id, "failed", {
        reason: "released",
        worker: ctx.workerId,
        token: claim.token,
        patch: { lease: "clear" },
      });
      await transition(client, claim.task.id, "queued", {
        reason: "released by a stopping worker",
        worker: ctx.workerId,
        patch: { attempts: claim.task.attempts - 1 },
      });
      await enqueue(client, claim.task.id, "retry");
    }).catch(() => undefined);
    return;
  }
  const timeout = cause instanceof DeadlineError;
  // Bad input, an invalid plan, a guardrail or a budget: the same request would end the same way again.
  const permanent =
    timeout ||
    (isKeelError(error) &&
      (error.fault === "user" || error.fault === "policy" || error.code === "invalid_plan"));
  const reason = timeout
    ? "timeout"
    : error instanceof PolicyError
      ? error.reason
      : isKeelError(error)
        ? error.code
        : "error";
  const message = timeout
    ? "The request's deadline passed."
    : error instanceof Error
      ? error.message
      : String(error);
  await inTransaction(ctx.db.pool, (client) =>
    failOrRetry(ctx, client, claim.task, reason, message, !permanent, claim.token),
  ).catch((e: unknown) => {
    if (!(e instanceof FencedOutError)) throw e;
  });
}
