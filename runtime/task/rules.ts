import { z } from "zod";
import { KeelError } from "../../core/errors.js";

/** Where a task is in its life. */
export const TaskStatus = z
  .enum(["queued", "running", "waiting_for_approval", "done", "failed", "cancelled"])
  .describe("Lifecycle status of a task");
export type TaskStatus = z.infer<typeof TaskStatus>;
export const TASK_STATUSES = TaskStatus.options;

/** The legal transitions; everything else is refused. */
const NEXT: Readonly<Record<TaskStatus, readonly TaskStatus[]>> = {
  queued: ["running", "cancelled"],
  // running -> queued: a clean release (a stopping worker gives the task back); it is not a failure.
  running: ["waiting_for_approval", "done", "failed", "cancelled", "queued"],
  waiting_for_approval: ["running", "failed", "cancelled"],
  failed: ["queued"],
  done: [],
  cancelled: [],
};

/** Statuses a task can still leave on its own; cancel applies to these. */
export const ACTIVE_STATUSES: readonly TaskStatus[] = ["queued", "running", "waiting_for_approval"];

export function canTransition(from: TaskStatus, to: TaskStatus): boolean {
  return NEXT[from].includes(to);
}

export class IllegalTransitionError extends KeelError {
  constructor(
    readonly taskId: string,
    readonly from: TaskStatus,
    readonly to: TaskStatus,
  ) {
    super("conflict", "user", `Task ${taskId} cannot go from ${from} to ${to}.`);
  }
}

/** A worker whose lease was lost (or whose task was cancelled) may no longer write the task's state. */
export class FencedOutError extends KeelError {
  constructor(readonly taskId: string) {
    super(
      "conflict",
      "system",
      `This worker no longer holds task ${taskId}; another worker or a cancel took it over.`,
    );
  }
}

export function assertTransition(taskId: string, from: TaskStatus, to: TaskStatus): void {
  if (!canTransition(from, to)) throw new IllegalTransitionError(taskId, from, to);
}
