import { bestEffort } from "../observability/audit.js";
import { createHash } from "node:crypto";
import type pg from "pg";
import { ToolCallError } from "../core/errors.js";
import { inTransaction } from "../core/transaction.js";
import type { ToolContext } from "./context.js";
import type { KeelTool } from "./contract.js";

/**
 * The effect ledger: one row per side-effecting tool call, keyed by (thread, checkpoint namespace, tool call
 * id). A node that runs again (resume after a crash, a retry) gets the committed result back instead of
 * acting twice.
 *
 * - internal effects (Keel's own database) run inside the transaction that commits their ledger row: the
 *   effect and the record of it exist together or not at all, so they happen exactly once;
 * - external effects are recorded as `started` before they run and receive the key as their idempotency key;
 *   a call interrupted between the two is repeated with the same key, so it is exactly once only when the
 *   outside system honours idempotency keys, and at least once otherwise.
 */
export interface EffectRow {
  key: string;
  seq: string;
  thread_id: string;
  tool_call_id: string;
  agent: string;
  tool: string;
  args_hash: string;
  args: unknown;
  state: "started" | "committed" | "failed" | "compensated" | "compensation_failed";
  result: unknown;
  error: string | null;
  started_at: Date;
  finished_at: Date | null;
  compensated_at: Date | null;
}

export function effectKey(ctx: Pick<ToolContext, "threadId" | "checkpointNs" | "toolCallId">): string {
  return `${ctx.threadId}|${ctx.checkpointNs ?? ""}|${ctx.toolCallId}`;
}

const hashArgs = (args: unknown) =>
  createHash("sha256")
    .update(JSON.stringify(args ?? null))
    .digest("hex");

/** Kills the process at a named point when the test hook asks for it: the crash tests' way in. */
function failpoint(ctx: ToolContext, name: string): void {
  if (ctx.failpoint === name) process.kill(process.pid, "SIGKILL");
}

function replay(row: EffectRow, argsHash: string): { output: unknown; replayed: true } {
  if (row.args_hash !== argsHash) {
    throw new ToolCallError(
      `the effect ${row.key} already committed with other arguments; it was not run again`,
      "conflict",
    );
  }
  return { output: row.result, replayed: true };
}

const INSERT = `insert into effects (key, thread_id, tool_call_id, agent, tool, args_hash, args, state, result, error, finished_at)
  values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, case when $8 = 'started' then null else now() end)
  on conflict (key) do update set state = excluded.state, result = excluded.result, error = excluded.error,
    finished_at = excluded.finished_at`;

/**
 * Runs a side-effecting call through the ledger. `call` runs the tool; `validate` checks its output (an output
 * that breaks the contract rolls an internal effect back).
 */
export async function runEffect(
  tool: KeelTool,
  args: unknown,
  ctx: ToolContext,
  call: (ctx: ToolContext) => Promise<unknown>,
  validate: (raw: unknown) => unknown,
  /** Writes the call's audit row in the ledger transaction of an internal effect, so both commit or neither. */
  audit?: (tx: pg.PoolClient, output: unknown) => Promise<void>,
): Promise<{ output: unknown; replayed: boolean; audited: boolean }> {
  const pool = await ctx.db();
  const key = effectKey(ctx);
  const argsHash = hashArgs(args);
  const row = (state: EffectRow["state"], result: unknown, error: string | null) => [
    key,
    ctx.threadId,
    ctx.toolCallId,
    ctx.agent,
    tool.name,
    argsHash,
    JSON.stringify(args ?? null),
    state,
    result === undefined ? null : JSON.stringify(result),
    error,
  ];
  // The call failed already; its ledger record is best effort, and a failure to write it is logged.
  const recordFailure = (error: unknown) =>
    bestEffort({ what: "effect failure record", task_id: ctx.threadId, tool: tool.name }, () =>
      pool.query(INSERT, row("failed", undefined, error instanceof Error ? error.message : String(error))),
    );

  if (tool.effects === "internal") {
    let outcome: { output: unknown; replayed: boolean; audited: boolean };
    try {
      outcome = await inTransaction(pool, async (tx) => {
        // A worker that lost the task (lease taken over, tree cancelled) cannot commit an effect for it.
        if (ctx.fenceToken)
          await tx.query("select keel_hold_fence($1, $2)", [ctx.fenceTaskId ?? ctx.threadId, ctx.fenceToken]);
        // Two runs of one call (a fenced-out worker and its successor) queue here instead of both acting.
        await tx.query("select pg_advisory_xact_lock(hashtextextended($1, 0))", [key]);
        const found = (await tx.query<EffectRow>("select * from effects where key = $1", [key])).rows[0];
        if (found && found.state !== "failed" && found.state !== "started")
          return { ...replay(found, argsHash), audited: false };
        const output = validate(await call({ ...ctx, tx }));
        await tx.query(INSERT, row("committed", output, null));
        await audit?.(tx, output);
        return { output, replayed: false, audited: audit !== undefined };
      });
    } catch (error) {
      await recordFailure(error);
      throw error;
    }
    if (!outcome.replayed) failpoint(ctx, "after_effect_commit");
    return outcome;
  }

  // External: record the attempt first, then act with the key as the idempotency key.
  const found = (await pool.query<EffectRow>("select * from effects where key = $1", [key])).rows[0];
  if (found && (found.state === "committed" || found.state.startsWith("compensat")))
    return { ...replay(found, argsHash), audited: false };
  if (found?.state === "started" && found.args_hash !== argsHash) replay(found, argsHash); // throws: other arguments
  await pool.query(INSERT, row("started", undefined, null));
  let output: unknown;
  try {
    output = validate(await call({ ...ctx, idempotencyKey: key }));
  } catch (error) {
    await recordFailure(error);
    throw error;
  }
  failpoint(ctx, "after_external_effect");
  await pool.query(INSERT, row("committed", output, null));
  return { output, replayed: false, audited: false };
}

/** The ledger rows of one thread, in the order the effects happened. */
export async function effectsOf(pool: pg.Pool, threadId: string): Promise<EffectRow[]> {
  const { rows } = await pool.query<EffectRow>("select * from effects where thread_id = $1 order by seq", [
    threadId,
  ]);
  return rows;
}

export interface CompensationReport {
  key: string;
  tool: string;
  state: "compensated" | "compensation_failed" | "not_reversible";
  error?: string;
}

/**
 * The saga's undo: for a thread whose tree finally failed or was cancelled, runs `compensate` of every committed
 * reversible effect, newest first, each recorded in the ledger. A compensation that fails is recorded and
 * reported; it does not stop the others. Running it again skips what is already compensated.
 */
export async function compensateThread(
  pool: pg.Pool,
  threadId: string,
  tools: ReadonlyMap<string, KeelTool>,
  ctx: Omit<ToolContext, "threadId" | "toolCallId" | "agent">,
): Promise<CompensationReport[]> {
  const { rows } = await pool.query<EffectRow>(
    "select * from effects where thread_id = $1 and state in ('committed', 'compensation_failed') order by seq desc",
    [threadId],
  );
  const reports: CompensationReport[] = [];
  for (const effect of rows) {
    const tool = tools.get(effect.tool);
    if (!tool?.reversible || !tool.compensate) {
      reports.push({ key: effect.key, tool: effect.tool, state: "not_reversible" });
      continue;
    }
    try {
      await inTransaction(pool, async (tx) => {
        const locked = (
          await tx.query<EffectRow>("select * from effects where key = $1 for update", [effect.key])
        ).rows[0];
        if (!locked || locked.state === "compensated") return;
        await tool.compensate!(
          { args: effect.args, output: effect.result },
          {
            ...ctx,
            tx,
            threadId,
            toolCallId: effect.tool_call_id,
            agent: effect.agent as ToolContext["agent"],
          },
        );
        await tx.query(
          "update effects set state = 'compensated', error = null, compensated_at = now() where key = $1",
          [effect.key],
        );
      });
      reports.push({ key: effect.key, tool: effect.tool, state: "compensated" });
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      await pool.query("update effects set state = 'compensation_failed', error = $2 where key = $1", [
        effect.key,
        message,
      ]);
      reports.push({ key: effect.key, tool: effect.tool, state: "compensation_failed", error: message });
    }
  }
  return reports;
}
