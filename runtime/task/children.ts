import { randomUUID } from "node:crypto";
import type pg from "pg";
import type { AgentResult, Plan } from "../../agents/contracts.js";
import type { ProgressEvent } from "../../graphs/progress.js";
import { namedFailure, type Failure, type FailureReason } from "../../core/errors.js";
import { canTransition, type TaskStatus } from "./rules.js";
import { childOf, childrenOf, insertEvent } from "./sql.js";
import { transition, type TaskRow } from "./store.js";

/**
 * Keeps one child row per AgentTask in step with the run: created when the plan is made, moved as agents start,
 * wait and finish. Moves go through the state machine like any other; a move that is not legal from where the
 * child stands (an event seen again after a resume) is skipped, not forced.
 */
async function moveChild(
  client: pg.PoolClient,
  rootId: string,
  agentTaskId: string,
  to: TaskStatus,
  reason: string,
  worker: string,
  failure?: Failure,
) {
  const child = await childOf(client, rootId, agentTaskId);
  if (!child || child.status === to) return;
  // A child that waited for a person runs again before it finishes: waiting -> running -> done.
  if (child.status === "waiting_for_approval" && (to === "done" || to === "failed")) {
    await transition(client, child.id, "running", { reason: "resumed", worker });
  } else if (!canTransition(child.status, to)) {
    return;
  }
  await transition(client, child.id, to, {
    reason,
    worker,
    patch: to === "failed" && failure ? { failure } : {},
  });
}

type PlannedChild = Pick<Plan["tasks"][number], "task_id" | "type" | "objective">;

export async function insertChildren(
  client: pg.PoolClient,
  root: TaskRow,
  tasks: readonly PlannedChild[],
): Promise<void> {
  for (const task of tasks) {
    const id = randomUUID();
    const { rowCount } = await client.query(
      `insert into tasks (id, parent_id, root_id, agent_task_id, agent_type, request, status, max_attempts)
       values ($1, $2, $2, $3, $4, $5, 'queued', 1) on conflict (root_id, agent_task_id) do nothing`,
      [id, root.id, task.task_id, task.type, task.objective],
    );
    if (rowCount) {
      await insertEvent(client, {
        task_id: id,
        from_status: null,
        to_status: "queued",
        reason: "planned",
        attempt: 0,
      });
    }
  }
}

/** Why an AgentTask ended without its result: rejected by a person, or the failure its agent reported. */
function childFailure(result: { status: string; reason?: FailureReason; summary: string }): Failure {
  return namedFailure(
    result.status === "rejected" ? "rejected" : (result.reason ?? "internal"),
    result.summary,
  );
}

/** The progress events that move child rows; the others (tool calls, waves, the answer) touch no row. */
export const CHILD_EVENTS: ReadonlySet<ProgressEvent["type"]> = new Set([
  "plan",
  "agent_start",
  "agent_done",
]);

/** Applies one progress event to the child rows. */
export async function applyEvent(
  client: pg.PoolClient,
  root: TaskRow,
  event: ProgressEvent,
  worker: string,
): Promise<void> {
  switch (event.type) {
    case "agent_start":
      return moveChild(client, root.id, event.task_id, "running", "agent started", worker);
    case "plan":
      return insertChildren(client, root, event.tasks);
    case "agent_done":
      return moveChild(
        client,
        root.id,
        event.task_id,
        event.status === "done" ? "done" : "failed",
        event.status === "done" ? "agent done" : event.status,
        worker,
        event.status === "done" ? undefined : childFailure(event),
      );
    default:
      return;
  }
}

/** When the run stops for a person: the children whose actions wait. */
export async function markWaiting(
  client: pg.PoolClient,
  root: TaskRow,
  agentTaskIds: string[],
  worker: string,
): Promise<void> {
  for (const id of agentTaskIds)
    await moveChild(client, root.id, id, "waiting_for_approval", "approval needed", worker);
}

/** At the end of a run: results decide each child's final status; children that never ran are cancelled. */
export async function settleChildren(
  client: pg.PoolClient,
  root: TaskRow,
  results: AgentResult[],
  worker: string,
): Promise<void> {
  for (const child of await childrenOf(client, root.id)) {
    const result = results.find((r) => r.task_id === child.agent_task_id);
    if (result && (child.status === "running" || child.status === "waiting_for_approval")) {
      await moveChild(
        client,
        root.id,
        child.agent_task_id!,
        result.status === "done" ? "done" : "failed",
        result.error ?? result.status,
        worker,
        result.status === "done"
          ? undefined
          : childFailure({ ...result, summary: result.error ?? result.summary }),
      );
    } else if (
      !result &&
      (child.status === "queued" || child.status === "running" || child.status === "waiting_for_approval")
    ) {
      await transition(client, child.id, "cancelled", { reason: "not run: the request ended first", worker });
    } else if (result && child.status === "queued") {
      // Failed because a dependency failed: it never started.
      await transition(client, child.id, "cancelled", {
        reason: result.error ?? "dependency failed",
        worker,
      });
    }
  }
}

/**
 * A root that ended failed (out of attempts, a crash limit, a watch that found it dead) settles every AgentTask row
 * still open: those that started fail with the root's reason, those that never started are cancelled.
 */
export async function settleChildrenWithRoot(
  client: pg.PoolClient,
  root: TaskRow,
  failure: Failure,
  worker: string,
): Promise<void> {
  for (const child of await childrenOf(client, root.id)) {
    if (child.status === "queued") {
      await transition(client, child.id, "cancelled", {
        reason: `not run: the request ${failure.reason}`,
        worker,
      });
    } else if (child.status === "running" || child.status === "waiting_for_approval") {
      await transition(client, child.id, "failed", {
        reason: failure.reason,
        worker,
        patch: { failure: { ...failure, message: `The request ended: ${failure.message}` } },
      });
    }
  }
}
