import { copyThreadCheckpoints, deleteUnreferencedValues } from "../../checkpoints/retention.js";
import type pg from "pg";
import { v7 as uuidv7 } from "uuid";
import type { KeelConfig } from "../../core/config.js";
import { InputError, KeelError, NotFoundError } from "../../core/errors.js";
import { DEFAULT_QUEUE } from "../queue.js";
import { assignRelease, type Assignment } from "../releases/rollouts.js";
import { RELEASE_ID } from "../releases/store.js";
import { cancelTree } from "../task/cancel.js";
import { inTransaction, insertRootTask, payloadHash } from "../task/store.js";
import { webhookIfEnded } from "./webhook.js";
import { ACTIVE_RUN, type MultitaskStrategy, type RunKwargs, type RunRow } from "./sql.js";

/**
 * Creating, cancelling and deleting the Agent Server API's runs. A run is a Keel task: made in one transaction
 * with its thread's change, its task row, its job and its lease watch, so a run is never stored without the job
 * that runs it.
 */

/** A run refused because its thread is busy and the strategy is `reject`: the API answers 422, as LangGraph's. */
export class ThreadBusyError extends KeelError {
  constructor(threadId: string, running: string) {
    super(
      "conflict",
      "user",
      `Thread ${threadId} is already running run ${running}. Wait for it to finish (join it), or send "multitask_strategy": "enqueue", "interrupt" or "rollback".`,
    );
  }
}

/** Who asks: the identity recorded, and whose threads it may use (null: anyone's). */
export interface RunCaller {
  identity: string;
  ownerFilter: string | null;
}

export interface NewRun {
  /** The thread to run on; none for a stateless run (a thread is made for it and removed once it ends). */
  threadId?: string;
  assistant: { assistant_id: string; graph_id: string; metadata: Record<string, unknown> };
  kwargs: RunKwargs;
  metadata: Record<string, unknown>;
  multitask: MultitaskStrategy;
  /** A thread id that does not exist: refused (404), or created for the run. */
  ifNotExists: "reject" | "create";
  afterSeconds?: number;
  caller: RunCaller;
  /** What the task row shows as its request (`keel list`, `keel status`). */
  request: string;
  /** The assistant's graph is Keel's orchestrator: the run runs on a release (see `runRelease`). */
  releasable?: boolean;
}

/**
 * The release a run of Keel's orchestrator runs on: the one its assistant's version in force names
 * (`metadata.release_id`: a release's own assistant, or one made for a release), else the stable release or the
 * rollout's assignment, as for `keel submit`. None: the release of the configuration of the worker that claims it.
 */
async function runRelease(client: pg.PoolClient, input: NewRun, runId: string): Promise<Assignment> {
  const named = input.assistant.metadata.release_id;
  if (named === undefined)
    return assignRelease(client, { id: runId, submittedBy: input.caller.identity, workflow: "default" });
  const found =
    typeof named === "string" && RELEASE_ID.test(named)
      ? (await client.query("select 1 from releases where id = $1", [named])).rowCount
      : 0;
  if (!found)
    throw new InputError(
      `Assistant ${input.assistant.assistant_id} names release ${JSON.stringify(named)} in its metadata.release_id, and there is no such release. Set its metadata.release to a release (keel release list shows them), or remove release_id.`,
    );
  return { releaseId: named as string };
}

interface ThreadLock {
  thread_id: string;
  owner: string;
  metadata: Record<string, unknown>;
}

async function lockThread(client: pg.PoolClient, id: string, owner: string | null) {
  return (
    await client.query<ThreadLock>(
      "select thread_id, owner, metadata from threads where thread_id = $1 and ($2::text is null or owner = $2) for update",
      [id, owner],
    )
  ).rows[0];
}

/**
 * Stores a run on its thread (made when stateless or `if_not_exists: create`), applying the multitask strategy:
 * `reject` refuses while a run is in flight; `enqueue` stores it behind them (a worker takes it when they end);
 * `interrupt` and `rollback` cancel them (rollback also removes them and what they checkpointed).
 */
export async function createRun(pool: pg.Pool, config: KeelConfig, input: NewRun): Promise<RunRow> {
  const runId = uuidv7();
  const { run, inflight } = await inTransaction(pool, async (client) => {
    const threadId = (input.threadId ?? uuidv7()).toLowerCase();
    let thread = input.threadId ? await lockThread(client, threadId, input.caller.ownerFilter) : undefined;
    if (!thread) {
      if (input.threadId && input.ifNotExists !== "create")
        throw new NotFoundError(
          `There is no thread ${threadId}; create it first (POST /threads), or send "if_not_exists": "create".`,
        );
      const made = await client.query<ThreadLock>(
        `insert into threads (thread_id, owner, metadata) values ($1, $2, $3) on conflict do nothing
           returning thread_id, owner, metadata`,
        [threadId, input.caller.identity, input.metadata],
      );
      if (!made.rows[0])
        throw new InputError(`Thread ${threadId} already exists; use another id.`, "conflict");
      thread = made.rows[0];
    }
    const inflight = (
      await client.query<{ run_id: string; task_id: string; status: string }>(
        "select run_id, task_id, status from runs where thread_id = $1 and status = any($2) order by created_at",
        [threadId, ACTIVE_RUN],
      )
    ).rows;
    if (inflight.length > 0 && input.multitask === "reject")
      throw new ThreadBusyError(threadId, inflight[0]!.run_id);
    const waiting = await waitingApproval(client, threadId);
    if (waiting && input.kwargs.command?.resume === undefined)
      throw new InputError(
        `Thread ${threadId} is waiting for approval ${waiting.approval_id} (${waiting.tools}); resume it with "command": {"resume": …}, decide it with POST /approvals/${waiting.approval_id}/approve or /reject, or cancel run ${waiting.run_id}.`,
        "conflict",
      );
    const runAt = input.afterSeconds ? new Date(Date.now() + input.afterSeconds * 1000) : undefined;
    await insertRootTask(client, config, {
      id: runId,
      ...(input.releasable ? await runRelease(client, input, runId) : {}),
      hash: payloadHash(JSON.stringify(input.kwargs)),
      request: input.request,
      submittedBy: input.caller.identity,
      queue: DEFAULT_QUEUE,
      maxRetries: config.runtime.maxRetries,
      runAt,
    });
    const metadata = { ...input.assistant.metadata, ...thread.metadata, ...input.metadata };
    const { rows } = await client.query<RunRow>(
      `insert into runs (run_id, thread_id, assistant_id, graph_id, task_id, owner, kwargs, metadata, multitask_strategy)
       values ($1, $2, $3, $4, $1, $5, $6, $7, $8) returning *`,
      [
        runId,
        threadId,
        input.assistant.assistant_id,
        input.assistant.graph_id,
        input.caller.identity,
        JSON.stringify(input.kwargs),
        metadata,
        input.multitask,
      ],
    );
    // The thread keeps its last run's configuration: its state is read through a graph made with it.
    await client.query(
      `update threads set status = 'busy', updated_at = now(),
          metadata = metadata || jsonb_build_object('graph_id', $2::text, 'assistant_id', $3::text),
          config = jsonb_build_object('configurable', $4::jsonb)
        where thread_id = $1`,
      [
        threadId,
        input.assistant.graph_id,
        input.assistant.assistant_id,
        JSON.stringify(
          Object.fromEntries(
            Object.entries(input.kwargs.config?.configurable ?? {}).filter(
              ([k]) => !k.startsWith("checkpoint"),
            ),
          ),
        ),
      ],
    );
    return { run: rows[0]!, inflight };
  });
  if (input.multitask === "interrupt" || input.multitask === "rollback") {
    await cancelRuns(
      pool,
      run.thread_id,
      inflight.map((r) => r.run_id),
      input.multitask,
      input.caller,
    );
  }
  return run;
}

/** A Keel approval the thread's newest run is waiting for, if any. */
export async function waitingApproval(
  db: Pick<pg.ClientBase, "query">,
  threadId: string,
): Promise<{ run_id: string; task_id: string; approval_id: string; tools: string } | undefined> {
  const { rows } = await db.query<{ run_id: string; task_id: string; approval_id: string; tools: string }>(
    `select r.run_id, r.task_id, a.id as approval_id,
            (select string_agg(x->>'tool', ', ') from jsonb_array_elements(a.context->'actions') x) as tools
       from runs r join tasks t on t.id = r.task_id
       join approvals a on a.task_id = r.task_id and a.status = 'pending'
      where r.thread_id = $1 and t.status = 'waiting_for_approval'
      order by r.created_at desc, a.created_at limit 1`,
    [threadId],
  );
  return rows[0];
}

/**
 * Cancels runs of a thread: each run's task tree is cancelled (its worker stops at once, approvals are withdrawn,
 * effects compensated as for any cancel). With `rollback` the runs are removed too, with the checkpoints they
 * wrote, so the thread is as it was before them. A run that already ended is left as it is.
 */
export async function cancelRuns(
  pool: pg.Pool,
  threadId: string,
  runIds: readonly string[],
  action: "interrupt" | "rollback",
  caller: RunCaller,
): Promise<void> {
  for (const runId of runIds) {
    const run = await visibleRun(pool, runId, threadId, caller);
    if (ACTIVE_RUN.includes(run.status) || run.status === "success") {
      const task = await pool.query<{ status: string }>("select status from tasks where id = $1", [
        run.task_id,
      ]);
      const active = ["queued", "running", "waiting_for_approval"].includes(task.rows[0]?.status ?? "");
      if (active) await cancelTree(pool, run.task_id, `cancelled through the API (${action})`);
      if (action === "interrupt") await webhookIfEnded(pool, run.run_id);
    }
    if (action === "rollback") await deleteRun(pool, run, true);
  }
}

/** A run the caller may see, on the thread given (when one is); another submitter's run is "not found". */
export async function visibleRun(
  db: Pick<pg.ClientBase, "query">,
  runId: string,
  threadId: string | undefined,
  caller: RunCaller,
): Promise<RunRow> {
  const { rows } = await db.query<RunRow>(
    `select r.* from runs r join threads t on t.thread_id = r.thread_id
      where r.run_id = $1 and ($2::uuid is null or r.thread_id = $2) and ($3::text is null or t.owner = $3)`,
    [runId, threadId ?? null, caller.ownerFilter],
  );
  if (!rows[0])
    throw new NotFoundError(
      `There is no run ${runId}${threadId ? ` on thread ${threadId}` : ""}; GET /threads/{thread_id}/runs lists a thread's runs.`,
    );
  return rows[0];
}

/**
 * Removes a run and its events. A run in flight cannot be removed (cancel it first). With `rollback`, the
 * checkpoints its thread gained since the run began go too.
 */
export async function deleteRun(pool: pg.Pool, run: RunRow, rollback = false): Promise<void> {
  await inTransaction(pool, async (client) => {
    const { rows } = await client.query<{ status: string }>(
      "select status from runs where run_id = $1 for update",
      [run.run_id],
    );
    if (!rows[0]) return;
    if (!rollback && ACTIVE_RUN.includes(rows[0].status as RunRow["status"]))
      throw new InputError(
        `Run ${run.run_id} is ${rows[0].status}; cancel it first (POST /threads/${run.thread_id}/runs/${run.run_id}/cancel), then delete it.`,
        "conflict",
      );
    if (rollback && run.started) {
      // Checkpoint ids are time-ordered (UUID v6), so what the run wrote is everything after its base.
      const after = run.base_checkpoint ?? "";
      for (const table of ["checkpoints", "checkpoint_writes"])
        await client.query(`delete from ${table} where thread_id = $1 and checkpoint_id > $2`, [
          run.thread_id,
          after,
        ]);
      await deleteUnreferencedValues(client, run.thread_id);
    }
    await client.query("delete from runs where run_id = $1", [run.run_id]);
  });
}

/** A thread's runs, newest first. */
export async function listRuns(
  db: Pick<pg.ClientBase, "query">,
  threadId: string,
  options: { limit: number; offset: number; status?: string; metadata?: Record<string, unknown> },
): Promise<RunRow[]> {
  const { rows } = await db.query<RunRow>(
    `select * from runs where thread_id = $1 and ($2::text is null or status = $2)
        and ($3::jsonb is null or metadata @> $3::jsonb)
      order by created_at desc limit $4 offset $5`,
    [
      threadId,
      options.status ?? null,
      options.metadata ? JSON.stringify(options.metadata) : null,
      options.limit,
      options.offset,
    ],
  );
  return rows;
}

/** Removes stateless runs' threads whose time has come (with their checkpoints); runs with the hourly housekeeping. */
export async function pruneExpiredThreads(pool: pg.Pool, batch = 200): Promise<number> {
  return inTransaction(pool, async (client) => {
    const { rows } = await client.query<{ thread_id: string }>(
      `delete from threads where thread_id in (
         select thread_id from threads where expires_at < now() and status <> 'busy' limit $1 for update skip locked)
       returning thread_id`,
      [batch],
    );
    const ids = rows.map((r) => r.thread_id);
    if (ids.length)
      for (const table of ["checkpoints", "checkpoint_blobs", "checkpoint_writes"])
        await client.query(`delete from ${table} where thread_id = any($1)`, [ids]);
    return ids.length;
  });
}

/**
 * Copies a thread (the Agent Server API's copy): its row with the given owner and metadata (a busy thread's copy
 * is idle: no run is on it) and every checkpoint, pending write and channel value, in one transaction.
 */
export function copyThread<Row>(
  pool: pg.Pool,
  copy: { from: string; to: string; owner: string; metadata: Record<string, unknown> },
): Promise<Row> {
  return inTransaction(pool, async (client) => {
    const { rows } = await client.query(
      `insert into threads (thread_id, owner, metadata, status, config, "values", interrupts, pending_nodes)
       select $2, $3, $4, case when status = 'busy' then 'idle' else status end, config, "values", interrupts,
              pending_nodes
         from threads where thread_id = $1
       returning *`,
      [copy.from, copy.to, copy.owner, copy.metadata],
    );
    if (!rows[0])
      throw new NotFoundError(`There is no thread ${copy.from} (deleted meanwhile?); nothing was copied.`);
    await copyThreadCheckpoints(client, copy.from, copy.to);
    return rows[0] as Row;
  });
}
