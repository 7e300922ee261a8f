import type pg from "pg";
import type { Database } from "../../checkpoints/database.js";
import type { KeelConfig } from "../../core/config.js";
import {
  failureOf,
  namedFailure,
  WorkerStoppingError,
  type Failure,
  type FailureReason,
} from "../../core/errors.js";
import { FAILURES } from "../../core/failures.js";
import { KEEL, recordSpan, tracedContext } from "../../observability/spans.js";
import { recordStep } from "../../observability/trajectory.js";
import { recordApprovals } from "../approvals.js";
import { insertChildren, markWaiting, settleChildren, settleChildrenWithRoot } from "./children.js";
import { enqueue, scheduleCompensation, scheduleWatch, unwatch } from "../queue.js";
import type { RunOutcome } from "../runner.js";
import type { RunRow } from "../runs/sql.js";
import { FencedOutError } from "./rules.js";
import { inTransaction, transition, type TaskRow } from "./store.js";
import { setQueue } from "./sql.js";

/** How a worker's drive of a task ends up in the task store: done, waiting, failed, retried or released. */
export interface SettleContext {
  db: Database;
  config: KeelConfig;
  workerId: string;
}

export interface Claim {
  task: TaskRow;
  token: string;
  /** The Agent Server API run the task carries, when it carries one. */
  run?: RunRow;
}

/** Exponential backoff with full jitter: a random delay up to base * 2^(attempt-1). */
export function retryDelayMs(attempt: number, baseMs: number, random = Math.random): number {
  return Math.round(random() * baseMs * 2 ** Math.max(0, attempt - 1));
}

/**
 * Records a failed attempt and, when the failure is retryable and attempts remain, queues the next one after a
 * jittered backoff; otherwise the tree ends failed and its compensation is scheduled. A failure that does not
 * count as an attempt (a release) gives the attempt back.
 */
export async function failOrRetry(
  ctx: SettleContext,
  client: pg.PoolClient,
  task: TaskRow,
  failure: Failure,
  token?: string,
  options: { queue?: string } = {},
) {
  if (failure.reason === "released" && !task.cancel_requested)
    return release(ctx, client, task, token, options);
  const rule = FAILURES[failure.reason];
  // A run that lost its worker is a crash, not a failed attempt: its attempt is given back (when the claim used
  // one) and it counts against the task's own, larger crash limit. A task that keeps losing its workers is stopped
  // as a poison task — and nothing it committed or had approved is undone for it (no compensation).
  const crashes = task.crashes + (rule.countsCrash ? 1 : 0);
  const poisoned = rule.countsCrash && crashes >= task.max_crashes;
  if (poisoned) {
    failure = namedFailure(
      "poison_task",
      `Task ${task.id} lost its worker ${crashes} times (KEEL_MAX_CRASHES is ${task.max_crashes}; last: ${failure.message}); it was stopped so that it takes no more workers down.`,
    );
  }
  const givesBack = !rule.countsAttempt && task.claim_counted && !poisoned;
  const failed = await transition(client, task.id, "failed", {
    reason: failure.reason,
    worker: ctx.workerId,
    token,
    patch: {
      failure,
      lease: "clear",
      ...(givesBack ? { attempts: task.attempts - 1 } : {}),
      ...(rule.countsCrash ? { crashes } : {}),
    },
  });
  const retrying =
    !poisoned &&
    failure.retryable &&
    (rule.countsAttempt ? failed.attempts < failed.max_attempts : true) &&
    !failed.cancel_requested;
  const delay =
    retrying && rule.countsAttempt ? retryDelayMs(failed.attempts, ctx.config.runtime.retryBaseMs) : 0;
  await recordStep(client, {
    thread_id: task.root_id,
    agent: "orchestrator",
    kind: retrying ? "retry" : "error",
    name: "task",
    status: retrying ? "scheduled" : "failed",
    error: failure.message,
    error_class: failure.reason,
    attempt: failed.attempts,
    output: retrying
      ? { next_attempt: failed.attempts + 1, delay_ms: delay }
      : { retryable: failure.retryable },
  });
  const now = Date.now();
  recordSpan(
    retrying ? "retry task" : "task failed",
    { [KEEL.taskId]: task.id, [KEEL.attempt]: failed.attempts, "error.type": failure.reason },
    now,
    now,
    { parent: tracedContext(task.trace_context), error: failure.reason },
  );
  if (retrying) {
    if (options.queue) await setQueue(client, task.id, options.queue);
    const queued = await transition(client, task.id, "queued", {
      reason: rule.countsAttempt
        ? `retry in ${delay} ms`
        : rule.countsCrash
          ? `worker lost (${crashes} of ${task.max_crashes}): retrying`
          : "released by a stopping worker",
      worker: ctx.workerId,
    });
    await enqueue(client, queued, "retry", new Date(Date.now() + delay));
    await scheduleWatch(
      client,
      task.id,
      new Date(Date.now() + delay + ctx.config.runtime.leaseSeconds * 1000),
    );
  } else {
    await unwatch(client, task.id);
    // Every AgentTask row ends with its root, whoever ended it.
    await settleChildrenWithRoot(client, failed, failure, ctx.workerId);
    if (!poisoned) await scheduleCompensation(client, task.root_id);
  }
}

/**
 * A stopping worker gives a task back: running -> queued at once, the attempt its claim used returned, nothing
 * recorded as a failure. Another worker (or the same command, run again) continues it from its checkpoint.
 */
async function release(
  ctx: SettleContext,
  client: pg.PoolClient,
  task: TaskRow,
  token: string | undefined,
  options: { queue?: string },
): Promise<void> {
  if (options.queue) await setQueue(client, task.id, options.queue);
  const queued = await transition(client, task.id, "queued", {
    reason: "released by a stopping worker",
    worker: ctx.workerId,
    token,
    patch: { lease: "clear", ...(task.claim_counted ? { attempts: task.attempts - 1 } : {}) },
  });
  await enqueue(client, queued, "retry");
  await scheduleWatch(client, task.id, new Date(Date.now() + ctx.config.runtime.leaseSeconds * 1000));
}

export async function settleOutcome(
  ctx: SettleContext,
  claim: Claim,
  outcome: RunOutcome,
  /** Written first in the same transaction (a run's thread state, before its status follows the task's). */
  before?: (client: pg.PoolClient) => Promise<void>,
): Promise<void> {
  await inTransaction(ctx.db.pool, async (client) => {
    await before?.(client);
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
    const reason: FailureReason = rejected
      ? "rejected"
      : failed.some((r) => r.reason === "timeout")
        ? "timeout"
        : "subtask_failed";
    const message = outcome.results
      .filter((r) => r.status !== "done")
      .map((r) => `${r.task_id}: ${r.error ?? r.status}`)
      .join("; ");
    await scheduleCompensation(client, claim.task.root_id);
    await recordStep(client, {
      thread_id: claim.task.root_id,
      agent: "orchestrator",
      kind: "error",
      name: "task",
      status: "failed",
      error: message,
      error_class: reason,
      attempt: claim.task.attempts,
    });
    await transition(client, claim.task.id, "failed", {
      reason,
      worker: ctx.workerId,
      token: claim.token,
      patch: {
        failure: namedFailure(reason, message),
        final_answer: outcome.final_answer ?? "",
        result: summary,
      },
    });
  });
}

/**
 * Records a drive that threw. The abort signal's reason comes first: a deadline, a stopping worker or a fence
 * explains the error the run then threw. A stopping worker's task goes back to the queue without using an
 * attempt; another worker (or the same command, run again) continues it from its checkpoint.
 */
export async function settleError(
  ctx: SettleContext,
  claim: Claim,
  error: unknown,
  signal: AbortSignal,
  options: { releaseTo?: string } = {},
): Promise<void> {
  const cause: unknown = signal.aborted ? signal.reason : error;
  if (cause instanceof FencedOutError || error instanceof FencedOutError) return; // someone else owns it now
  const failure = failureOf(cause);
  const released = cause instanceof WorkerStoppingError;
  await inTransaction(ctx.db.pool, (client) =>
    failOrRetry(ctx, client, claim.task, failure, claim.token, released ? { queue: options.releaseTo } : {}),
  ).catch((e: unknown) => {
    if (!(e instanceof FencedOutError)) throw e;
  });
}
