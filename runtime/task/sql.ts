import type pg from "pg";
import { InputError, NotFoundError } from "../../core/errors.js";
import type { Fault, FailureReason } from "../../core/errors.js";
import type { TaskStatus } from "./rules.js";

/**
 * The `tasks` and `task_events` tables: their row types and the statements more than one part of the task's
 * life runs (the state machine's writes are `transition` in `store.ts`). One place to read what the runtime asks
 * of these tables, and to change it.
 */

export type Queryable = Pick<pg.ClientBase, "query">;

/** One row of `tasks`: a request's root task, or one of its AgentTasks (`parent_id` set). */
export interface TaskRow {
  id: string;
  parent_id: string | null;
  root_id: string;
  agent_task_id: string | null;
  agent_type: string | null;
  request: string | null;
  status: TaskStatus;
  attempts: number;
  max_attempts: number;
  /** Runs that lost their worker (a crash, a cut-off); counted apart from attempts, with their own limit. */
  crashes: number;
  max_crashes: number;
  /** Whether the current claim used an attempt (a resume after an approval does not). */
  claim_counted: boolean;
  last_error: string | null;
  /** Why it failed (or was last retried): a FailureReason code. */
  error_reason: FailureReason | null;
  /** Who caused that failure. */
  error_fault: Fault | null;
  /** The policy rule that stopped it (`budget_exceeded:tokens`, `injection:…`), when one did. */
  error_rule: string | null;
  /** Which workers may drive it: `default` for keel worker, a caller's own queue for keel run/batch/eval. */
  queue: string;
  idempotency_key: string | null;
  submitted_by: string | null;
  /** W3C traceparent: every process that works on the task continues this trace. */
  trace_context: string | null;
  /** Which workflow the task belongs to, for per-workflow SLO targets. */
  workflow: string;
  /** The release it runs on (a root task; null until submitted to one or first claimed by a worker). */
  release_id: string | null;
  /** Whether it was submitted to its release (it runs on no other), or got the claiming worker's own. */
  release_pinned: boolean;
  /** The rollout that chose its release, if one did. */
  rollout_id: string | null;
  /** The primary task this one shadows (its effects simulated), when it is a shadow run. */
  shadow_of: string | null;
  lease_owner: string | null;
  lease_expires_at: Date | null;
  fencing_token: string;
  cancel_requested: boolean;
  deadline_at: Date | null;
  final_answer: string | null;
  result: unknown;
  created_at: Date;
  updated_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  /** When `keel purge` (or the retention setting) erased its content; a purged request cannot run again. */
  purged_at: Date | null;
}

export interface TaskEvent {
  id: string;
  task_id: string;
  from_status: TaskStatus | null;
  to_status: TaskStatus;
  reason: string | null;
  attempt: number;
  worker: string | null;
  at: Date;
}

/** The task, locked for the caller's transaction (claim, watch, transition). */
export async function lockTask(client: pg.PoolClient, id: string): Promise<TaskRow | undefined> {
  return (await client.query<TaskRow>("select * from tasks where id = $1 for update", [id])).rows[0];
}

export async function readTask(db: Queryable, id: string): Promise<TaskRow | undefined> {
  return (await db.query<TaskRow>("select * from tasks where id = $1", [id])).rows[0];
}

export async function readTasks(db: Queryable, ids: readonly string[]): Promise<TaskRow[]> {
  return (await db.query<TaskRow>("select * from tasks where id = any($1)", [ids])).rows;
}

/** A request's tasks, root first (then by AgentTask id); `lock` takes them for the caller's transaction. */
export async function treeOf(db: Queryable, rootId: string, lock = false): Promise<TaskRow[]> {
  const { rows } = await db.query<TaskRow>(
    `select * from tasks where root_id = $1 order by parent_id nulls first, agent_task_id${lock ? " for update" : ""}`,
    [rootId],
  );
  return rows;
}

/** A root task's AgentTask rows. */
export async function childrenOf(db: Queryable, rootId: string): Promise<TaskRow[]> {
  return (
    await db.query<TaskRow>("select * from tasks where parent_id = $1 order by agent_task_id", [rootId])
  ).rows;
}

/** The row of one AgentTask of a request, by its id in the plan. */
export async function childOf(
  db: Queryable,
  rootId: string,
  agentTaskId: string,
): Promise<TaskRow | undefined> {
  return (
    await db.query<TaskRow>("select * from tasks where root_id = $1 and agent_task_id = $2", [
      rootId,
      agentTaskId,
    ])
  ).rows[0];
}

/** The root task of a request, from any of its tasks. */
export async function rootOf(db: Queryable, id: string): Promise<TaskRow | undefined> {
  return (
    await db.query<TaskRow>("select r.* from tasks t join tasks r on r.id = t.root_id where t.id = $1", [id])
  ).rows[0];
}

/** Which workers may drive the task from now on (see `runJob`). */
export async function setQueue(db: Queryable, id: string, queue: string): Promise<void> {
  await db.query("update tasks set queue = $2 where id = $1", [id, queue]);
}

/** Moves the fencing token on: a worker still holding the old one can no longer write for the task. */
export async function fenceOut(db: Queryable, id: string): Promise<void> {
  await db.query("update tasks set fencing_token = fencing_token + 1 where id = $1", [id]);
}

/** Gives the task's lease to `worker` with a new fencing token. */
export async function takeLease(
  client: pg.PoolClient,
  id: string,
  worker: string,
  seconds: number,
  counted: boolean,
): Promise<{ fencing_token: string; lease_expires_at: Date }> {
  const { rows } = await client.query<{ fencing_token: string; lease_expires_at: Date }>(
    `update tasks set lease_owner = $2, lease_expires_at = now() + make_interval(secs => $3), fencing_token = fencing_token + 1,
        claim_counted = $4
      where id = $1 returning fencing_token, lease_expires_at`,
    [id, worker, seconds, counted],
  );
  return rows[0]!;
}

/** Extends a lease still held with this token; false when the task moved on (fenced, cancelled, settled). */
export async function renewLease(
  db: Queryable,
  lease: { id: string; token: string; worker: string; seconds: number },
): Promise<boolean> {
  const { rowCount } = await db.query(
    `update tasks set lease_expires_at = now() + make_interval(secs => $4)
      where id = $1 and fencing_token = $2 and lease_owner = $3 and status = 'running' and not cancel_requested`,
    [lease.id, lease.token, lease.worker, lease.seconds],
  );
  return rowCount === 1;
}

/** Records the trace a task's work continues, for a task submitted without one. */
export async function adoptTrace(db: Queryable, id: string, traceparent: string): Promise<void> {
  await db.query("update tasks set trace_context = $2 where id = $1 and trace_context is null", [
    id,
    traceparent,
  ]);
}

/** One task's history, oldest first. */
export async function historyOf(db: Queryable, id: string): Promise<TaskEvent[]> {
  return (await db.query<TaskEvent>("select * from task_events where task_id = $1 order by id", [id])).rows;
}

/** Appends one row to the task's history. */
export async function insertEvent(
  db: Queryable,
  event: Pick<TaskEvent, "task_id" | "from_status" | "to_status" | "reason" | "attempt"> & {
    worker?: string | null;
  },
): Promise<void> {
  await db.query(
    "insert into task_events (task_id, from_status, to_status, reason, attempt, worker) values ($1, $2, $3, $4, $5, $6)",
    [event.task_id, event.from_status, event.to_status, event.reason, event.attempt, event.worker ?? null],
  );
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const PREFIX = /^[0-9a-f]{8}[0-9a-f-]{0,27}$/i;

/**
 * A task or approval id as people type it: the whole id, or its first 8 (or more) characters when only one id
 * starts with them. `list` names the command that shows the ids, for the error.
 */
export async function resolveId(
  db: Queryable,
  table: "tasks" | "approvals",
  value: string,
  list: string,
): Promise<string> {
  const what = table === "tasks" ? "task" : "approval";
  if (UUID.test(value)) return value.toLowerCase();
  if (!PREFIX.test(value)) {
    throw new NotFoundError(
      `No ${what} has id ${value}. Ids look like 3f2b9c1e-…, and their first 8 characters are enough; ${list} shows them.`,
    );
  }
  const { rows } = await db.query<{ id: string }>(
    `select id from ${table} where id::text like $1 order by created_at desc limit 3`,
    [`${value.toLowerCase()}%`],
  );
  if (rows.length === 0)
    throw new NotFoundError(`No ${what} id starts with ${value}. ${list} shows the ids there are.`);
  if (rows.length > 1) {
    throw new InputError(
      `More than one ${what} id starts with ${value} (${rows.map((r) => r.id).join(", ")}${rows.length > 2 ? ", …" : ""}); give more characters.`,
      "invalid_argument",
    );
  }
  return rows[0]!.id;
}
