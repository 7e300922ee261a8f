import type pg from "pg";
import { deleteThreadCheckpoints } from "../checkpoints/retention.js";
import { InputError, NotFoundError } from "../core/errors.js";
import { eraseStrings, PURGED, redact } from "../policy/pii.js";
import { purgedApproval } from "./approvals.js";
import { ACTIVE_STATUSES } from "./task/rules.js";
import { getTask, inTransaction } from "./task/store.js";

/** What one purge removed, per table, for the report `keel purge` prints. */
export interface PurgeReport {
  task_id: string;
  status: string;
  purged_at: Date;
  tasks: number;
  checkpoints: number;
  checkpoint_writes: number;
  approvals: number;
  outbox: number;
  /** Outbox messages erased while still queued: no relay had marked them sent. */
  outbox_unsent: number;
  effects: number;
  trajectory_steps: number;
  policy_decisions: number;
  guardrail_events: number;
}

/** Erases JSON in SQL terms: the value passed through `eraseStrings`, or null. */
function erased(value: unknown): string | null {
  return value === null || value === undefined ? null : JSON.stringify(eraseStrings(value));
}

/**
 * Removes what a finished request left about its content: the request, answers and results of every task of the
 * tree; its LangGraph checkpoints (deleted); approval contexts and edits, outbox messages, effect arguments and
 * results, trajectory inputs and outputs, policy-decision inputs and guardrail details (strings erased, shape
 * kept). What stays is what audit and the SLOs need: ids, statuses, who submitted and who approved, when, costs,
 * tokens and durations, tool names and error classes. A purged request cannot be retried or resumed.
 *
 * Refused while any task of the tree is active or a compensation is still owed (it needs the effects' arguments).
 * Purging twice changes nothing more.
 */
export async function purgeRequest(
  pool: pg.Pool,
  taskId: string,
  options: { dryRun?: boolean } = {},
): Promise<PurgeReport> {
  const task = await getTask(pool, taskId);
  const rootId = task.root_id;
  try {
    return await inTransaction(pool, (client) => purgeIn(client, rootId, options.dryRun ?? false));
  } catch (error) {
    if (error instanceof DryRun) return error.report;
    throw error;
  }
}

/** Thrown to roll a dry run's purge back, carrying what it would have done. */
class DryRun extends Error {
  constructor(readonly report: PurgeReport) {
    super("dry run");
  }
}

async function purgeIn(client: pg.PoolClient, rootId: string, dryRun: boolean): Promise<PurgeReport> {
  // The root's lock orders this against retry, cancel and a worker's claim, which all update the root.
  const root = (
    await client.query<{ status: string; purged_at: Date | null }>(
      "select status, purged_at from tasks where id = $1 for update",
      [rootId],
    )
  ).rows[0];
  if (!root) throw new NotFoundError(`No task has id ${rootId}.`);
  const active = await client.query<{ id: string; agent_task_id: string | null; status: string }>(
    "select id, agent_task_id, status from tasks where root_id = $1 and status = any($2) order by parent_id nulls first",
    [rootId, ACTIVE_STATUSES],
  );
  const first = active.rows[0];
  if (first) {
    const which = first.id === rootId ? "it" : `its task ${first.agent_task_id ?? first.id}`;
    throw new InputError(
      `Request ${rootId} is not finished (${which} is ${first.status}); only a done, failed or cancelled request can be purged. Wait for it to end, or cancel it first.`,
      "conflict",
    );
  }
  if (await compensationOwed(client, rootId)) {
    throw new InputError(
      `Request ${rootId} still has a compensation to run, which undoes its effects from their arguments; a worker runs it shortly. Purge again once it has run.`,
      "conflict",
    );
  }
  const stamp = root.purged_at ?? new Date();

  const tasks = await client.query<{ id: string; last_error: string | null }>(
    "select id, last_error from tasks where root_id = $1",
    [rootId],
  );
  for (const t of tasks.rows) {
    await client.query(
      "update tasks set request = null, final_answer = null, result = null, last_error = $2, purged_at = $3 where id = $1",
      [t.id, t.last_error === null ? null : redact(t.last_error), stamp],
    );
  }
  const events = await client.query<{ id: string; reason: string }>(
    "select e.id, e.reason from task_events e join tasks t on t.id = e.task_id where t.root_id = $1 and e.reason is not null",
    [rootId],
  );
  for (const e of events.rows) {
    const clean = redact(e.reason);
    if (clean !== e.reason)
      await client.query("update task_events set reason = $2 where id = $1", [e.id, clean]);
  }

  const removed = await deleteThreadCheckpoints(client, rootId);

  const approvals = await client.query<{
    id: string;
    context: unknown;
    decision: unknown;
    reason: string | null;
  }>(
    "select id, context, decision, reason from approvals where task_id in (select id from tasks where root_id = $1)",
    [rootId],
  );
  for (const a of approvals.rows) {
    const erased = purgedApproval(a.context, a.decision);
    await client.query("update approvals set context = $2, decision = $3, reason = $4 where id = $1", [
      a.id,
      JSON.stringify(erased.context),
      erased.decision === null ? null : JSON.stringify(erased.decision),
      a.reason === null ? null : redact(a.reason),
    ]);
  }
  const unsent = await client.query<{ n: number }>(
    "select count(*)::int as n from outbox where thread_id = $1 and status = 'queued' and body <> $2",
    [rootId, PURGED],
  );
  const outbox = await client.query(
    "update outbox set recipient = $2, subject = $2, body = $2 where thread_id = $1",
    [rootId, PURGED],
  );
  const effects = await eraseJsonColumns(client, "effects", "key", ["args", "result"], rootId);
  const steps = await eraseJsonColumns(client, "trajectory_steps", "id", ["input", "output"], rootId);
  await client.query("update trajectory_steps set error = $2 where thread_id = $1 and error is not null", [
    rootId,
    PURGED,
  ]);
  const decisions = await eraseJsonColumns(client, "policy_decisions", "id", ["inputs"], rootId);
  const guardrails = await client.query("update guardrail_events set detail = $2 where thread_id = $1", [
    rootId,
    PURGED,
  ]);

  const report: PurgeReport = {
    task_id: rootId,
    status: root.status,
    purged_at: stamp,
    tasks: tasks.rows.length,
    checkpoints: removed.checkpoints,
    checkpoint_writes: removed.writes,
    approvals: approvals.rows.length,
    outbox: outbox.rowCount ?? 0,
    outbox_unsent: unsent.rows[0]?.n ?? 0,
    effects,
    trajectory_steps: steps,
    policy_decisions: decisions,
    guardrail_events: guardrails.rowCount ?? 0,
  };
  if (dryRun) throw new DryRun(report);
  return report;
}

/** Finished requests past the retention period that are not purged yet, oldest first. */
async function purgeDue(pool: pg.Pool, olderThanDays: number, limit: number): Promise<string[]> {
  const { rows } = await pool.query<{ id: string }>(
    `select id from tasks
      where parent_id is null and purged_at is null and status <> all($3)
        and finished_at < now() - make_interval(days => $1)
      order by finished_at limit $2`,
    [olderThanDays, limit, ACTIVE_STATUSES],
  );
  return rows.map((r) => r.id);
}

/**
 * Purges the finished requests past `olderThanDays`, at most `limit` of them; a request that cannot be purged yet
 * (a compensation still owed) is skipped and counted, and comes round again next time.
 */
export async function purgeOlderThan(
  pool: pg.Pool,
  olderThanDays: number,
  options: { limit?: number; dryRun?: boolean } = {},
): Promise<{ purged: PurgeReport[]; skipped: { task_id: string; reason: string }[] }> {
  const purged: PurgeReport[] = [];
  const skipped: { task_id: string; reason: string }[] = [];
  for (const id of await purgeDue(pool, olderThanDays, options.limit ?? 200)) {
    try {
      purged.push(await purgeRequest(pool, id, options));
    } catch (error) {
      if (!(error instanceof InputError)) throw error;
      skipped.push({ task_id: id, reason: error.message });
    }
  }
  return { purged, skipped };
}

/** Whether a failed or cancelled tree's compensation job is still queued or running. */
async function compensationOwed(client: pg.ClientBase, rootId: string): Promise<boolean> {
  const { rows } = await client.query<{ n: number }>(
    "select count(*)::int as n from graphile_worker.jobs where key = $1",
    [`compensate:${rootId}`],
  );
  return (rows[0]?.n ?? 0) > 0;
}

/** Erases the strings of JSON columns on a thread's rows of `table`; returns how many rows it changed. */
async function eraseJsonColumns(
  client: pg.ClientBase,
  table: string,
  key: string,
  columns: readonly string[],
  threadId: string,
): Promise<number> {
  const { rows } = await client.query<Record<string, unknown>>(
    `select ${key} as key, ${columns.join(", ")} from ${table} where thread_id = $1`,
    [threadId],
  );
  for (const row of rows) {
    const values = columns.map((c) => erased(row[c]));
    const sets = columns.map((c, i) => `${c} = $${i + 2}::jsonb`).join(", ");
    await client.query(`update ${table} set ${sets} where ${key} = $1`, [row.key, ...values]);
  }
  return rows.length;
}
