import type { GuardrailEvent } from "../policy/guard.js";
import { redact, redactDeep } from "../policy/pii.js";
import type { DecisionInput, PolicyDecision } from "../policy/risk.js";
import type { ToolContext } from "./context.js";

/**
 * The audit trail of tool calls, policy decisions and guardrail verdicts. Every row is redacted first: it is a
 * record of the work, not a copy of the personal data the work touched. A logging failure never fails the call.
 */
export async function recordToolCall(
  ctx: ToolContext,
  tool: string,
  args: unknown,
  outcome: {
    status: "ok" | "invalid_arguments" | "error" | "rejected" | "refused";
    output?: unknown;
    error?: string;
  },
  durationMs: number,
): Promise<void> {
  try {
    const pool = await ctx.db();
    await pool.query(
      `insert into tool_calls (thread_id, agent, tool, tool_call_id, args, status, result, error, duration_ms)
       values ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
      [
        ctx.threadId,
        ctx.agent,
        tool,
        ctx.toolCallId,
        JSON.stringify(redactDeep(args ?? null)),
        outcome.status,
        outcome.output === undefined ? null : JSON.stringify(redactDeep(outcome.output)),
        outcome.error === undefined ? null : redact(outcome.error),
        Math.round(durationMs),
      ],
    );
  } catch {
    // The audit row is best effort: a call that already happened must not be reported as failed.
  }
}

/** Records a policy decision with everything it was based on; the first record of a call stands. */
export async function recordDecision(
  ctx: ToolContext,
  input: DecisionInput,
  decision: PolicyDecision,
): Promise<void> {
  const pool = await ctx.db();
  await pool.query(
    `insert into policy_decisions (thread_id, tool_call_id, agent, tool, decision, reasons, inputs)
     values ($1, $2, $3, $4, $5, $6, $7) on conflict (thread_id, tool_call_id) do nothing`,
    [
      ctx.threadId,
      ctx.toolCallId,
      input.agent,
      input.tool,
      decision.decision,
      decision.reasons.map(redact),
      JSON.stringify(redactDeep(input)),
    ],
  );
}

export async function recordGuardrailEvent(
  ctx: Pick<ToolContext, "db"> & { threadId?: string },
  event: GuardrailEvent,
): Promise<void> {
  try {
    const pool = await ctx.db();
    await pool.query(
      "insert into guardrail_events (thread_id, stage, action, reason, detail) values ($1, $2, $3, $4, $5)",
      [ctx.threadId ?? null, event.stage, event.action, event.reason, redact(event.detail)],
    );
  } catch {
    // Best effort, like the tool-call log: the verdict itself has already been applied.
  }
}
