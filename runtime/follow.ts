import type pg from "pg";
import type { TaskEvent, TaskRow } from "./task/store.js";
import { eventsOf, getTask } from "./task/store.js";

const EVENTS_CHANNEL = "keel_task_events";

export type FollowedEvent = TaskEvent & { agent_task_id: string | null };

/**
 * Follows a request's task events as they are written (LISTEN/NOTIFY, with a slow re-read as a safety net) until
 * `until(root)` holds, and returns the root task then. Events are delivered in order, each once.
 */
export async function followTask(
  pool: pg.Pool,
  rootId: string,
  onEvent: (event: FollowedEvent) => void,
  until: (root: TaskRow) => boolean | Promise<boolean>,
  signal?: AbortSignal,
): Promise<TaskRow> {
  const client = await pool.connect();
  let last = "0";
  let wake: (() => void) | undefined;
  const onNotify = (message: pg.Notification) => {
    if (message.payload === rootId) wake?.();
  };
  client.on("notification", onNotify);
  try {
    await client.query(`listen ${EVENTS_CHANNEL}`);
    for (;;) {
      for (const event of await eventsOf(pool, rootId, last)) {
        onEvent(event);
        last = event.id;
      }
      const root = await getTask(pool, rootId);
      if (await until(root)) return root;
      if (signal?.aborted) throw signal.reason;
      // One abort listener per wait, removed after it: a long follow must not pile them up on the signal.
      const onAbort = () => wake?.();
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 2000);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
        signal?.addEventListener("abort", onAbort, { once: true });
      });
      signal?.removeEventListener("abort", onAbort);
      wake = undefined;
    }
  } finally {
    client.removeListener("notification", onNotify);
    await client.query(`unlisten ${EVENTS_CHANNEL}`).catch(() => undefined);
    client.release();
  }
}

export const isSettled = (root: TaskRow) => root.status !== "queued" && root.status !== "running";
export const isTerminal = (root: TaskRow) =>
  root.status === "done" || root.status === "cancelled" || root.status === "failed";

/**
 * Settled for someone waiting on a run: finished, or waiting for a person with something to decide. A task that
 * waits with every approval decided is about to be resumed by a worker, so it is not settled yet.
 */
export async function isSettledForCaller(pool: pg.Pool, root: TaskRow): Promise<boolean> {
  if (!isSettled(root)) return false;
  if (root.status !== "waiting_for_approval") return true;
  const { rowCount } = await pool.query("select 1 from approvals where task_id = $1 and status = 'pending'", [
    root.id,
  ]);
  return (rowCount ?? 0) > 0;
}
