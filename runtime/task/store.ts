import { createHash, randomUUID } from "node:crypto";
import type pg from "pg";
import type { KeelConfig } from "../../core/config.js";
import { inTransaction } from "../../core/transaction.js";
import { InputError, NotFoundError, type Failure } from "../../core/errors.js";
import { currentTraceparent, inSpan, KEEL, SpanKind } from "../../observability/spans.js";
import { DEFAULT_QUEUE, enqueue, scheduleWatch } from "../queue.js";
import { assignRelease } from "../releases/rollouts.js";
import { SHADOW_QUEUE, SHADOW_WORKFLOW, shadowFor } from "../releases/shadows.js";
import { assertTransition, FencedOutError, TaskStatus } from "./rules.js";
import { insertEvent, lockTask, readTask, resolveId, treeOf, type TaskEvent, type TaskRow } from "./sql.js";

export type { TaskEvent, TaskRow } from "./sql.js";

export interface TransitionOptions {
  reason?: string;
  worker?: string;
  /** The writer's fencing token: the write happens only if the task still carries it. */
  token?: string;
  /** Extra columns to set in the same statement. */
  patch?: Partial<Pick<TaskRow, "last_error" | "final_answer" | "result" | "attempts" | "crashes">> & {
    lease?: "clear";
    /** The failure to record (reason, fault, rule, message). */
    failure?: Failure;
  };
}

export type Queryable = pg.Pool | pg.PoolClient;

export { inTransaction };

/**
 * Moves a task to `to` and appends its `task_events` row, in the caller's transaction. The row is locked first,
 * the move is checked against the state machine, and a stale fencing token is refused.
 */
export async function transition(
  client: pg.PoolClient,
  taskId: string,
  to: TaskStatus,
  options: TransitionOptions = {},
): Promise<TaskRow> {
  const current = await lockTask(client, taskId);
  if (!current) throw new NotFoundError(`No task has id ${taskId}.`);
  if (options.token !== undefined && current.fencing_token !== options.token)
    throw new FencedOutError(taskId);
  assertTransition(taskId, current.status, to);
  const patch = options.patch ?? {};
  const terminal = to === "done" || to === "failed" || to === "cancelled";
  const { rows } = await client.query<TaskRow>(
    `update tasks set status = $2, updated_at = now(),
            last_error = coalesce($3, last_error), error_reason = coalesce($4, error_reason),
            error_fault = case when $4::text is null then error_fault else $10 end,
            error_rule = case when $4::text is null then error_rule else $11 end,
            final_answer = coalesce($5, final_answer), result = coalesce($6, result),
            attempts = coalesce($7, attempts), crashes = coalesce($12, crashes),
            started_at = case when $2 = 'running' then coalesce(started_at, now()) else started_at end,
            finished_at = case when $8 then now() else null end,
            lease_owner = case when $9 then null else lease_owner end,
            lease_expires_at = case when $9 then null else lease_expires_at end
      where id = $1 returning *`,
    [
      taskId,
      to,
      patch.last_error ?? patch.failure?.message ?? null,
      patch.failure?.reason ?? null,
      patch.final_answer ?? null,
      patch.result === undefined ? null : JSON.stringify(patch.result),
      patch.attempts ?? null,
      terminal,
      patch.lease === "clear" || terminal || to === "waiting_for_approval",
      patch.failure?.fault ?? null,
      patch.failure?.rule ?? null,
      patch.crashes ?? null,
    ],
  );
  await insertEvent(client, {
    task_id: taskId,
    from_status: current.status,
    to_status: to,
    reason: options.reason ?? null,
    attempt: rows[0]!.attempts,
    worker: options.worker,
  });
  return rows[0]!;
}

export interface SubmitInput {
  request: string;
  /** Who asked; a sync approval must come from someone else. */
  submittedBy?: string;
  idempotencyKey?: string;
  maxRetries?: number;
  /** The workflow the task belongs to (per-workflow SLO targets); default "default". */
  workflow?: string;
  /** Which workers may drive it (see `runJob`); default "default", the queue of `keel worker`. */
  queue?: string;
  /** The id of the release it runs on; unset: the release of the configuration of the worker that claims it. */
  releaseId?: string;
  /** The primary task this one shadows (its effects simulated). */
  shadowOf?: string;
}

/** What `insertRootTask` stores beyond what a caller submits. */
interface RootTaskInput extends SubmitInput {
  id: string;
  key?: string;
  hash: string;
  runAt?: Date;
  /** The rollout that chose its release (an abort moves it back to the baseline if it has not started). */
  rolloutId?: string;
}

export function payloadHash(request: string): string {
  return createHash("sha256").update(JSON.stringify({ request })).digest("hex");
}

/**
 * Creates a queued root task and its first job in one transaction. The same idempotency key with the same payload
 * returns the task made the first time; with another payload it is a conflict. Expired keys are forgotten first.
 */
export async function submit(
  pool: pg.Pool,
  config: KeelConfig,
  input: SubmitInput,
): Promise<{ task: TaskRow; created: boolean }> {
  const hash = payloadHash(input.request);
  const key = input.idempotencyKey;
  const existing = async (client: Queryable) =>
    key
      ? (
          await client.query<TaskRow & { payload_hash: string }>(
            "select * from tasks where idempotency_key = $1",
            [key],
          )
        ).rows[0]
      : undefined;
  const check = (found: TaskRow & { payload_hash: string }) => {
    if (found.payload_hash !== hash) {
      throw new InputError(
        `Idempotency key "${key}" was already used for a different request (task ${found.id}). Use a new key, or resend the same request.`,
        "conflict",
      );
    }
    return { task: found as TaskRow, created: false };
  };
  if (key) {
    await pool.query(
      "update tasks set idempotency_key = null where idempotency_key = $1 and idempotency_expires_at < now()",
      [key],
    );
    const found = await existing(pool);
    if (found) return check(found);
  }
  const id = randomUUID();
  try {
    // The submit span starts the task's trace; its traceparent is stored so that every worker continues it.
    return await inSpan(
      "submit task",
      { [KEEL.taskId]: id, [KEEL.rootTaskId]: id },
      () =>
        inTransaction(pool, async (client) => {
          const workflow = input.workflow ?? "default";
          const task = await insertRootTask(client, config, {
            ...input,
            id,
            key,
            hash,
            ...(input.releaseId
              ? { releaseId: input.releaseId }
              : await assignRelease(client, { id, submittedBy: input.submittedBy ?? config.user, workflow })),
          });
          // A sampled request also runs on the shadow's candidate, as a task of its own with simulated effects.
          const candidate = await shadowFor(client, { id, workflow });
          if (candidate)
            await insertRootTask(client, config, {
              request: input.request,
              submittedBy: input.submittedBy,
              maxRetries: 0,
              id: randomUUID(),
              hash,
              releaseId: candidate,
              workflow: SHADOW_WORKFLOW,
              queue: SHADOW_QUEUE,
              shadowOf: id,
            });
          return { task, created: true };
        }),
      { kind: SpanKind.PRODUCER },
    );
  } catch (error) {
    // Two submits with one key at the same moment: the unique key lets one in; the other returns its task.
    if ((error as { code?: string }).code === "23505" && key) {
      const found = await existing(pool);
      if (found) return check(found);
    }
    throw error;
  }
}

/**
 * Inserts a queued root task, its first event, its run job (at `runAt`, default now) and its lease watch, in the
 * caller's transaction: `submit` and the Agent Server API's runs both make tasks this way.
 */
export async function insertRootTask(
  client: pg.PoolClient,
  config: KeelConfig,
  input: RootTaskInput,
): Promise<TaskRow> {
  const { id, key, hash } = input;
  const maxAttempts = 1 + (input.maxRetries ?? config.runtime.maxRetries);
  const { rows } = await client.query<TaskRow>(
    `insert into tasks (id, root_id, request, status, max_attempts, max_crashes, idempotency_key, payload_hash,
        idempotency_expires_at, deadline_at, submitted_by, workflow, trace_context, queue, release_id, release_pinned,
        shadow_of, rollout_id)
     values ($1, $1, $2, 'queued', $3, $12, $4, $5, now() + make_interval(hours => $6),
        now() + make_interval(secs => $7), $8, $9, $10, $11, $13, $13::uuid is not null, $14, $15)
     returning *`,
    [
      id,
      input.request,
      maxAttempts,
      key ?? null,
      hash,
      config.runtime.idempotencyTtlHours,
      config.runtime.requestDeadlineSeconds,
      input.submittedBy ?? config.user,
      input.workflow ?? "default",
      currentTraceparent() ?? null,
      input.queue ?? DEFAULT_QUEUE,
      config.runtime.maxCrashes,
      input.releaseId ?? null,
      input.shadowOf ?? null,
      input.rolloutId ?? null,
    ],
  );
  await insertEvent(client, {
    task_id: id,
    from_status: null,
    to_status: "queued",
    reason: "submitted",
    attempt: 0,
  });
  await enqueue(client, rows[0]!, "start", input.runAt ?? null);
  const watchAt = Math.max(Date.now(), input.runAt?.getTime() ?? 0) + config.runtime.leaseSeconds * 1000;
  await scheduleWatch(client, id, new Date(watchAt));
  return rows[0]!;
}

/** A task by its id, or by the first 8 (or more) characters of it when they name one task. */
export async function getTask(db: Queryable, idOrPrefix: string): Promise<TaskRow> {
  const id = await resolveId(db, "tasks", idOrPrefix, "keel list");
  const row = await readTask(db, id);
  if (!row) throw new NotFoundError(`No task has id ${id}. keel list shows the tasks there are.`);
  return row;
}

/** A root task and its AgentTask children, root first. */
export async function getTree(db: Queryable, id: string): Promise<TaskRow[]> {
  return treeOf(db, (await getTask(db, id)).root_id);
}

export async function listTasks(
  db: Queryable,
  filter: { status?: TaskStatus; since?: Date; limit?: number; workflow?: string; submittedBy?: string },
): Promise<TaskRow[]> {
  // Eval and shadow runs are kept apart: they show only when asked for by workflow.
  const { rows } = await db.query<TaskRow>(
    `select * from tasks where parent_id is null and ($1::text is null or status = $1) and ($2::timestamptz is null or created_at >= $2)
        and (case when $4::text is null then workflow not in ('eval', 'shadow') else workflow = $4 end)
        and ($5::text is null or submitted_by = $5)
      order by created_at desc limit $3`,
    [
      filter.status ?? null,
      filter.since ?? null,
      filter.limit ?? 100,
      filter.workflow ?? null,
      filter.submittedBy ?? null,
    ],
  );
  return rows;
}

export async function eventsOf(
  db: Queryable,
  rootId: string,
  afterId = "0",
): Promise<(TaskEvent & { agent_task_id: string | null })[]> {
  const { rows } = await db.query<TaskEvent & { agent_task_id: string | null }>(
    `select e.*, t.agent_task_id from task_events e join tasks t on t.id = e.task_id
      where t.root_id = $1 and e.id > $2 order by e.id`,
    [rootId, afterId],
  );
  return rows;
}

/**
 * Moves unfinished tasks to `queue` (and their pending run jobs with them), so that a worker of that queue drives
 * them: `keel run`, `batch` and `eval` take over the tasks they follow, and hand them back to the default queue
 * when they stop following.
 */
export async function moveToQueue(pool: pg.Pool, ids: readonly string[], queue: string): Promise<void> {
  if (ids.length === 0) return;
  await inTransaction(pool, async (client) => {
    const { rows } = await client.query<TaskRow & { decided: boolean }>(
      `update tasks t set queue = $2 where id = any($1) and queue <> $2
          and status in ('queued', 'running', 'waiting_for_approval')
        returning *, not exists (select 1 from approvals a where a.task_id = t.id and a.status = 'pending') as decided`,
      [ids, queue],
    );
    for (const task of rows) {
      if (task.status === "queued") await enqueue(client, task, "retry", null, "preserve_run_at");
      if (task.status === "waiting_for_approval" && task.decided) await enqueue(client, task, "resume");
    }
  });
}
