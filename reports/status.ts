import type pg from "pg";
import type { AgentResult, Plan } from "../agents/contracts.js";
import { FAILURES, parseFailureReason, type Fault, type FailureReason } from "../core/failures.js";
import { parseRunResult } from "../graphs/result.js";
import { listApprovals, type ApprovalRow } from "../runtime/approvals.js";
import { getRelease, releaseLabel } from "../runtime/releases/store.js";
import { getTree, type TaskRow } from "../runtime/task/store.js";

/** Where a request stands, in one object: what `--json` prints and what the human views are drawn from. */
export interface TaskOutcome {
  task_id: string;
  thread_id: string;
  status: TaskRow["status"];
  attempts: number;
  max_attempts: number;
  /** The release it runs on (`name@version`), once it has one. */
  release: { id: string; label: string } | null;
  /** Why it failed (or why its last attempt did): the reason code, who was at fault, and what retries can do. */
  error: {
    code: FailureReason | null;
    fault: Fault | null;
    /** The policy rule that stopped it, when one did (`budget_exceeded:tokens`). */
    rule: string | null;
    retryable: boolean | null;
    message: string | null;
  } | null;
  plan: Plan | null;
  results: AgentResult[];
  final_answer: string | null;
  children: {
    task_id: string;
    agent_task_id: string | null;
    agent: string | null;
    status: TaskRow["status"];
    error: FailureReason | null;
  }[];
  pending_approvals: {
    approval_id: string;
    mode: ApprovalRow["mode"];
    expires_at: string;
    context: ApprovalRow["context"];
  }[];
  /** Side effects of the run, from the effect ledger, with their compensation state. */
  effects: { tool: string; agent: string; state: string; error: string | null }[];
}

export async function describeTask(db: pg.Pool, taskId: string): Promise<TaskOutcome> {
  const [root, ...children] = await getTree(db, taskId);
  const approvals = await listApprovals(db, "pending", root!.id);
  const { rows: effects } = await db.query<{
    tool: string;
    agent: string;
    state: string;
    error: string | null;
  }>("select tool, agent, state, error from effects where thread_id = $1 order by seq", [root!.id]);
  const result = parseRunResult(root!.result, root!.id);
  const release = root!.release_id ? await getRelease(db, root!.release_id) : undefined;
  const code = parseFailureReason(root!.error_reason);
  const failed = root!.status === "failed" || root!.status === "cancelled";
  return {
    task_id: root!.id,
    thread_id: root!.id,
    status: root!.status,
    attempts: root!.attempts,
    max_attempts: root!.max_attempts,
    release: release ? { id: release.id, label: releaseLabel(release) } : null,
    error:
      failed || root!.last_error
        ? {
            code,
            fault: root!.error_fault ?? (code ? FAILURES[code].fault : null),
            rule: root!.error_rule,
            retryable: code ? FAILURES[code].retryable : null,
            message: root!.last_error,
          }
        : null,
    plan: result.plan,
    results: result.results,
    final_answer: root!.final_answer,
    children: children.map((c) => ({
      task_id: c.id,
      agent_task_id: c.agent_task_id,
      agent: c.agent_type,
      status: c.status,
      error: parseFailureReason(c.error_reason),
    })),
    pending_approvals: approvals.map((a) => ({
      approval_id: a.id,
      mode: a.mode,
      expires_at: a.expires_at.toISOString(),
      context: a.context,
    })),
    effects,
  };
}
