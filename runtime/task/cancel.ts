import { checkpointsDeleted } from "../retention.js";
import type pg from "pg";
import { InputError } from "../../core/errors.js";
import { enqueue, scheduleCompensation, DEFAULT_QUEUE } from "../queue.js";
import { ACTIVE_STATUSES } from "./rules.js";
import { getTask, inTransaction, transition, type TaskRow } from "./store.js";
import { readTask, setQueue, treeOf } from "./sql.js";

export const CANCEL_CHANNEL = "keel_cancel";

/**
 * Cancels a whole task tree: every active task becomes cancelled, pending approvals are withdrawn, and the
 * fencing token moves on so a worker still running it can write nothing more; a notification tells that worker
 * to abort now (its abort signal reaches model calls, tools and the sandbox). Cancelling twice changes nothing.
 */
export async function cancelTree(
  pool: pg.Pool,
  taskId: string,
  reason = "cancelled on request",
): Promise<{ root: TaskRow; cancelled: number }> {
  const task = await getTask(pool, taskId);
  return inTransaction(pool, async (client) => {
    const rows = await treeOf(client, task.root_id, true);
    await client.query(
      "update tasks set cancel_requested = true, fencing_token = fencing_token + 1 where root_id = $1",
      [task.root_id],
    );
    let cancelled = 0;
    for (const row of rows) {
      if (!ACTIVE_STATUSES.includes(row.status)) continue;
      await transition(client, row.id, "cancelled", { reason });
      cancelled++;
    }
    await client.query(
      "update approvals set status = 'withdrawn', decided_at = now(), reason = $2 where task_id = $1 and status = 'pending'",
      [task.root_id, reason],
    );
    await client.query("select pg_notify($1, $2)", [CANCEL_CHANNEL, task.root_id]);
    if (cancelled > 0) await scheduleCompensation(client, task.root_id);
    const root = (await readTask(client, task.root_id))!;
    return { root, cancelled };
  });
}

/** Puts a failed task back in the queue by hand, with one more attempt. */
export async function retryTask(pool: pg.Pool, taskId: string): Promise<TaskRow> {
  const task = await getTask(pool, taskId);
  if (task.parent_id)
    throw new InputError(`Task ${taskId} is part of request ${task.root_id}; retry the request instead.`);
  if (task.status !== "failed") {
    throw new InputError(`Task ${taskId} is ${task.status}; only a failed task can be retried.`, "conflict");
  }
  return inTransaction(pool, async (client) => {
    // Read under the lock, so a purge committing meanwhile is seen: a purged task has nothing to run from.
    const locked = await client.query<{ purged: boolean }>(
      "select purged_at is not null as purged from tasks where id = $1 for update",
      [task.id],
    );
    if (locked.rows[0]?.purged)
      throw new InputError(
        `Task ${taskId} was purged meanwhile; submit the request again instead.`,
        "conflict",
      );
    if (await checkpointsDeleted(client, task.id))
      throw new InputError(
        `Task ${taskId} has no checkpoints to continue from: the retention policy deleted them (retention in the policy file). Submit the request again instead.`,
        "conflict",
      );
    await client.query(
      "update tasks set max_attempts = greatest(max_attempts, attempts + 1), cancel_requested = false where id = $1",
      [task.id],
    );
    // Retried by hand: it goes to the workers' queue, whoever drove it before.
    await setQueue(client, task.id, DEFAULT_QUEUE);
    const queued = await transition(client, task.id, "queued", { reason: "retried by hand" });
    await enqueue(client, queued, "retry");
    return queued;
  });
}
