import type pg from "pg";
import { z } from "zod";

/**
 * The Agent Server API's runs as Keel stores them (`runs`, migration 18): the row types and the statements the
 * runtime and the server run on them.
 */

export const RUN_STATUSES = ["pending", "running", "error", "success", "timeout", "interrupted"] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];
export const ACTIVE_RUN: readonly RunStatus[] = ["pending", "running"];

/** The stream modes a run offers, as the SDK names them. */
const MODES = [
  "values",
  "updates",
  "messages",
  "messages-tuple",
  "custom",
  "debug",
  "tasks",
  "checkpoints",
  "events",
] as const;
export const StreamMode = z
  .enum(MODES, {
    error: `a stream mode is one of ${MODES.join(", ")}`,
  })
  .describe(`What the run streams: ${MODES.join(", ")}`);
export type StreamMode = z.infer<typeof StreamMode>;

export const MultitaskStrategy = z
  .enum(["reject", "enqueue", "interrupt", "rollback"])
  .describe(
    "What to do when the thread already has a run: reject (422), enqueue after it, interrupt it, or roll it back",
  );
export type MultitaskStrategy = z.infer<typeof MultitaskStrategy>;

const Send = z.object({ node: z.string().min(1), input: z.unknown().optional() });

/** `command`: resume an interrupt, update the state, and/or go to nodes. */
export const RunCommand = z
  .object({
    resume: z.unknown().optional().describe("The value the pending interrupt(s) return"),
    update: z
      .union([z.record(z.string(), z.unknown()), z.array(z.tuple([z.string(), z.unknown()]))])
      .optional()
      .describe("State to write before continuing"),
    goto: z
      .union([z.string(), Send, z.array(z.union([z.string(), Send]))])
      .optional()
      .describe("Node(s) to run next"),
  })
  .strict();
export type RunCommand = z.infer<typeof RunCommand>;

const NodeList = z.union([z.literal("*"), z.array(z.string())]);

/** What a run was asked to do, stored with it so that any worker can run it and a retry can run it again. */
export const RunKwargs = z.object({
  input: z.unknown().optional().describe("The graph's input"),
  command: RunCommand.optional(),
  config: z
    .object({
      configurable: z.record(z.string(), z.unknown()).optional(),
      tags: z.array(z.string()).optional(),
      recursion_limit: z.number().int().positive().optional(),
    })
    .optional()
    .describe("The run's configuration (merged over the assistant's)"),
  context: z.unknown().optional().describe("The graph's runtime context"),
  stream_mode: z.array(StreamMode).describe("The stream modes asked for"),
  subgraphs: z.boolean().describe("Whether subgraphs' events are streamed too"),
  interrupt_before: NodeList.optional(),
  interrupt_after: NodeList.optional(),
  webhook: z.string().optional().describe("Where the run's outcome is POSTed when it ends"),
  temporary: z.boolean().describe("A stateless run: its thread is removed once it ends"),
});
export type RunKwargs = z.infer<typeof RunKwargs>;

export interface RunRow {
  run_id: string;
  thread_id: string;
  assistant_id: string;
  graph_id: string;
  task_id: string;
  owner: string;
  status: RunStatus;
  kwargs: RunKwargs;
  metadata: Record<string, unknown>;
  multitask_strategy: MultitaskStrategy;
  base_checkpoint: string | null;
  started: boolean;
  created_at: Date;
  updated_at: Date;
}

export type Queryable = Pick<pg.ClientBase, "query">;

/** A run, or undefined. */
export async function readRun(db: Queryable, runId: string): Promise<RunRow | undefined> {
  return (await db.query<RunRow>("select * from runs where run_id = $1", [runId])).rows[0];
}

/** The run a task is carrying now: its newest. */
export async function currentRun(db: Queryable, taskId: string): Promise<RunRow | undefined> {
  return (
    await db.query<RunRow>("select * from runs where task_id = $1 order by created_at desc limit 1", [taskId])
  ).rows[0];
}

/** Whether a run made before this one on its thread has not finished (an enqueued run waits for it). */
export async function earlierRunActive(db: Queryable, run: RunRow): Promise<boolean> {
  const { rows } = await db.query(
    `select 1 from runs where thread_id = $1 and created_at < $2 and run_id <> $3
        and status in ('pending', 'running') limit 1`,
    [run.thread_id, run.created_at, run.run_id],
  );
  return rows.length > 0;
}

/** The next run waiting on a thread, oldest first (an enqueued run whose turn has come). */
export async function nextPendingRun(db: Queryable, threadId: string): Promise<RunRow | undefined> {
  return (
    await db.query<RunRow>(
      "select * from runs where thread_id = $1 and status = 'pending' order by created_at limit 1",
      [threadId],
    )
  ).rows[0];
}
