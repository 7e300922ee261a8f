import type { ToolContext } from "./context.js";

/**
 * Appends one row to `tool_calls` for every call the contract handles, so that a run can be audited and a
 * resumed run can be checked for repeated work. A logging failure never fails the call itself.
 */
export async function recordToolCall(
  ctx: ToolContext,
  tool: string,
  args: unknown,
  outcome: { status: "ok" | "invalid_arguments" | "error" | "rejected"; output?: unknown; error?: string },
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
        JSON.stringify(args ?? null),
        outcome.status,
        outcome.output === undefined ? null : JSON.stringify(outcome.output),
        outcome.error ?? null,
        Math.round(durationMs),
      ],
    );
  } catch {
    // The audit row is best effort: a call that already happened must not be reported as failed.
  }
}
