import type pg from "pg";
import { followTask } from "../../runtime/follow.js";
import type { TaskRow } from "../../runtime/task/store.js";

/** Waits (bounded) until a request's root task satisfies `until`. */
export function waitForTask(
  pool: pg.Pool,
  taskId: string,
  until: (t: TaskRow) => boolean | Promise<boolean>,
  timeoutMs = 20_000,
): Promise<TaskRow> {
  return followTask(pool, taskId, () => undefined, until, AbortSignal.timeout(timeoutMs));
}

export async function eventsOfTask(
  pool: pg.Pool,
  taskId: string,
): Promise<{ from: string | null; to: string; reason: string | null }[]> {
  const { rows } = await pool.query<{ from_status: string | null; to_status: string; reason: string | null }>(
    "select from_status, to_status, reason from task_events where task_id = $1 order by id",
    [taskId],
  );
  return rows.map((r) => ({ from: r.from_status, to: r.to_status, reason: r.reason }));
}
