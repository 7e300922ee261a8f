import { redact, redactDeep } from "../policy/pii.js";
import type { DecisionInput, PolicyDecision } from "../policy/risk.js";
import { recordStepQuietly, type StepInput } from "../observability/trajectory.js";
import type { ToolContext } from "./context.js";
import type { ToolCallStatus } from "./contract.js";

/** How a tool call ended, as the audit trail records it. */
export interface ToolCallRecord {
  status: ToolCallStatus;
  output?: unknown;
  error?: string;
}

/** The trajectory step of one tool call (redacted when it is written, like every step). */
export function toolCallStep(
  ctx: ToolContext,
  tool: string,
  args: unknown,
  outcome: ToolCallRecord,
  durationMs: number,
  startedAt: Date = new Date(Date.now() - durationMs),
): StepInput {
  return {
    thread_id: ctx.threadId,
    task_id: ctx.taskId,
    agent: ctx.agent,
    kind: "tool_call",
    name: tool,
    tool_call_id: ctx.toolCallId,
    status: outcome.status,
    input: args ?? null,
    output: outcome.output,
    error: outcome.error,
    error_class: outcome.status === "ok" ? undefined : outcome.status,
    started_at: startedAt,
    duration_ms: durationMs,
  };
}

/**
 * The audit trail of tool calls (steps of the trajectory store), policy decisions and guardrail verdicts. Every
 * row is redacted first: it is a record of the work, not a copy of the personal data the work touched. A call
 * without an effect is recorded after it ran, best effort (a failed write is logged, never silent); a call with
 * an internal effect is recorded inside its ledger transaction (`tools/ledger.ts`), so the two commit together.
 */
export async function recordToolCall(
  ctx: ToolContext,
  tool: string,
  args: unknown,
  outcome: ToolCallRecord,
  durationMs: number,
  startedAt?: Date,
): Promise<void> {
  await recordStepQuietly(ctx.db, toolCallStep(ctx, tool, args, outcome, durationMs, startedAt));
}

/**
 * Records a policy decision with everything it was based on; the first record of a call stands. True when this
 * was the first (code before an interrupt runs again on resume, and must not count twice).
 */
export async function recordDecision(
  ctx: ToolContext,
  input: DecisionInput,
  decision: PolicyDecision,
): Promise<boolean> {
  const pool = await ctx.db();
  const { rowCount } = await pool.query(
    `insert into policy_decisions (thread_id, tool_call_id, agent, tool, decision, reasons, inputs)
     values ($1, $2, $3, $4, $5, $6, $7) on conflict (thread_id, tool_call_id) do nothing`,
    [
      ctx.threadId,
      ctx.toolCallId,
      input.agent,
      input.tool,
      decision.decision,
      decision.reasons.map((r) => redact(r)),
      JSON.stringify(redactDeep(input)),
    ],
  );
  return rowCount === 1;
}

/**
 * A shadow run's side-effecting call, as what it would have done: validated and decided by the policy, never
 * executed (no ledger effect, no outbox row, no webhook, nobody asked). Arguments are stored redacted.
 */
export async function recordSimulatedEffect(
  ctx: ToolContext,
  tool: string,
  args: unknown,
  decision: PolicyDecision,
): Promise<void> {
  const pool = await ctx.db();
  await pool.query(
    `insert into simulated_effects (thread_id, tool_call_id, agent, tool, args, decision, reasons)
     values ($1, $2, $3, $4, $5, $6, $7) on conflict (thread_id, tool_call_id) do nothing`,
    [
      ctx.threadId,
      ctx.toolCallId,
      ctx.agent,
      tool,
      JSON.stringify(redactDeep(args ?? null)),
      decision.decision,
      decision.reasons.map((r) => redact(r)),
    ],
  );
}
