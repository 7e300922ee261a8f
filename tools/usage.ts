import type pg from "pg";
import { PolicyError } from "../core/errors.js";
import { exceededBudget, type Budgets, type Usage } from "../policy/budget.js";

/**
 * What a task tree has used, kept in Postgres so that every sub-agent of the tree (parallel branches, other
 * workers after a crash) draws on one budget. A call is charged before it runs; tokens and cost are added after.
 * A node that runs again after a crash is charged again: budgets err on the side of stopping.
 */
export async function usageOf(pool: pg.Pool, threadId: string): Promise<Usage> {
  const { rows } = await pool.query<Usage>(
    "select model_calls, tool_calls, tokens::float8 as tokens, cost_usd::float8 as cost_usd from task_usage where thread_id = $1",
    [threadId],
  );
  return rows[0] ?? { model_calls: 0, tool_calls: 0, tokens: 0, cost_usd: 0 };
}

const LABEL: Record<keyof Budgets, string> = {
  model_calls: "model calls",
  tool_calls: "tool calls",
  tokens: "tokens",
  cost_usd: "cost (USD)",
};

/** Charges one model or tool call to the tree, or stops the tree when a budget would be exceeded. */
export async function charge(
  pool: pg.Pool,
  threadId: string,
  kind: "model" | "tool",
  budgets: Budgets,
): Promise<void> {
  const column = kind === "model" ? "model_calls" : "tool_calls";
  // One statement: the tree's first call creates its row; later ones count only while every budget has room.
  const { rowCount } = await pool.query(
    `insert into task_usage as u (thread_id, ${column}) values ($1, 1)
     on conflict (thread_id) do update set ${column} = u.${column} + 1, updated_at = now()
      where u.${column} < $2 and u.tokens < $3 and u.cost_usd < $4`,
    [threadId, budgets[column], budgets.tokens, budgets.cost_usd],
  );
  if (rowCount) return;
  const usage = await usageOf(pool, threadId);
  const name = exceededBudget(usage, budgets, kind) ?? column;
  throw new PolicyError(
    "budget_exceeded",
    `budget_exceeded:${name}`,
    `The task tree reached its budget of ${budgets[name]} ${LABEL[name]} (used: ${usage[name]}); it was stopped before another ${kind} call. Raise budgets.${name} in keel.policy.yaml if this work needs more.`,
  );
}

/** Adds a finished model call's tokens and cost. */
export async function addUsage(
  pool: pg.Pool,
  threadId: string,
  tokens: number,
  costUsd: number,
): Promise<void> {
  await pool.query(
    "update task_usage set tokens = tokens + $2, cost_usd = cost_usd + $3, updated_at = now() where thread_id = $1",
    [threadId, tokens, costUsd],
  );
}
