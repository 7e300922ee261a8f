import { bestEffort } from "./audit.js";
import type pg from "pg";
import { redact, redactDeep } from "../policy/pii.js";
import { activeIds } from "./spans.js";

/**
 * What one step of a run was. Policy decisions and guardrail verdicts have their own audit tables
 * (policy_decisions, guardrail_events); `keel trace` reads them beside the steps.
 */
export const STEP_KINDS = [
  "model_call",
  "tool_call",
  "handoff",
  "approval_requested",
  "approval_decided",
  "retry",
  "error",
] as const;
export type StepKind = (typeof STEP_KINDS)[number];

/** One step as it is recorded. Text and JSON are redacted before they are stored. */
export interface StepInput {
  thread_id: string;
  /** The AgentTask (t1, t2, …) the step belongs to; none for the orchestrator's own steps. */
  task_id?: string;
  /** orchestrator, planner, synthesizer, or a sub-agent type. */
  agent: string;
  kind: StepKind;
  /** The model, tool, target agent or dependency the step is about. */
  name: string;
  tool_call_id?: string;
  status: string;
  input?: unknown;
  output?: unknown;
  error?: string;
  error_class?: string;
  input_tokens?: number;
  output_tokens?: number;
  cost_usd?: number;
  attempt?: number;
  turn?: number;
  started_at?: Date;
  duration_ms?: number;
  first_token_ms?: number;
}

/** A stored step, as `keel trace` reads it. */
export interface StepRow extends Omit<StepInput, "started_at"> {
  id: number;
  started_at: Date;
  trace_id: string | null;
  span_id: string | null;
}

type Queryable = Pick<pg.Pool | pg.PoolClient, "query">;

/** The longest JSON kept per field; a larger value keeps its beginning and says it was cut. */
const MAX_JSON_CHARS = 16_000;

function stored(value: unknown): string | null {
  if (value === undefined) return null;
  const json = JSON.stringify(redactDeep(value));
  if (json === undefined) return null;
  if (json.length <= MAX_JSON_CHARS) return json;
  return JSON.stringify({ truncated: true, chars: json.length, preview: json.slice(0, MAX_JSON_CHARS) });
}

let enabled = true;

/**
 * Turns the trajectory store on or off for this process (KEEL_TRAJECTORY). Off, only tool calls are still
 * recorded: they are the guardrails' audit trail, not an optional trace.
 */
export function configureTrajectory(options: { enabled: boolean }): void {
  enabled = options.enabled;
}

/**
 * Stores one step of a run, redacted by the guardrails' PII redactor, with the active span's trace id so that
 * the store and the exported trace can be joined. Inside a transaction it commits or rolls back with it.
 */
export async function recordStep(db: Queryable, step: StepInput): Promise<void> {
  if (!enabled && step.kind !== "tool_call") return;
  const ids = activeIds();
  await db.query(
    `insert into trajectory_steps (thread_id, task_id, agent, kind, name, tool_call_id, status, input, output,
        error, error_class, input_tokens, output_tokens, cost_usd, attempt, turn, started_at, duration_ms,
        first_token_ms, trace_id, span_id)
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, coalesce($17, now()), $18, $19,
        $20, $21)`,
    [
      step.thread_id,
      step.task_id ?? null,
      step.agent,
      step.kind,
      step.name,
      step.tool_call_id ?? null,
      step.status,
      stored(step.input),
      stored(step.output),
      step.error === undefined ? null : redact(step.error),
      step.error_class ?? null,
      step.input_tokens ?? null,
      step.output_tokens ?? null,
      step.cost_usd ?? null,
      step.attempt ?? null,
      step.turn ?? null,
      step.started_at ?? null,
      step.duration_ms === undefined ? null : Math.round(step.duration_ms),
      step.first_token_ms === undefined ? null : Math.round(step.first_token_ms),
      ids.trace_id ?? null,
      ids.span_id ?? null,
    ],
  );
}

/** Like recordStep, for steps outside a transaction: a failure to record never fails the work it records. */
export async function recordStepQuietly(db: () => Promise<Queryable>, step: StepInput): Promise<void> {
  // The store is an account of the work; the work itself has already happened, so a failure is logged, not thrown.
  await bestEffort(
    {
      what: `trajectory ${step.kind} ${step.name}`,
      task_id: step.thread_id,
      agent_task_id: step.task_id ?? null,
      tool: step.kind === "tool_call" ? step.name : null,
    },
    async () => recordStep(await db(), step),
  );
}

/** Every step of a task tree, in the order they started. */
export async function stepsOf(db: Queryable, threadId: string): Promise<StepRow[]> {
  const { rows } = await db.query<StepRow>(
    `select id::int, thread_id, task_id, agent, kind, name, tool_call_id, status, input, output, error, error_class,
            input_tokens, output_tokens, cost_usd::float8 as cost_usd, attempt, turn, started_at, duration_ms,
            first_token_ms, trace_id, span_id
       from trajectory_steps where thread_id = $1 order by started_at, id`,
    [threadId],
  );
  return rows;
}

/**
 * Deletes steps older than `days` (and the guardrail events of those days), in batches so that a large prune
 * never holds long locks. Returns how many steps went.
 */
export async function pruneTrajectories(db: Queryable, days: number, batch = 5000): Promise<number> {
  let total = 0;
  for (;;) {
    const { rowCount } = await db.query(
      `delete from trajectory_steps where id in (
         select id from trajectory_steps where started_at < now() - make_interval(days => $1) limit $2)`,
      [days, batch],
    );
    total += rowCount ?? 0;
    if ((rowCount ?? 0) < batch) break;
  }
  await db.query("delete from guardrail_events where created_at < now() - make_interval(days => $1)", [days]);
  return total;
}
