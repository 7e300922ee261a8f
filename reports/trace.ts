import type pg from "pg";
import { NotFoundError } from "../core/errors.js";
import { getRelease, releaseLabel } from "../runtime/releases/store.js";
import { childrenOf, historyOf, resolveId, rootOf } from "../runtime/task/sql.js";
import { redact } from "../policy/pii.js";
import { stepsOf, type StepRow } from "../observability/trajectory.js";

/** One line of a task's timeline: a step, a status change, a policy decision or a guardrail verdict. */
export interface TimelineEntry {
  at: string;
  /** Milliseconds since the task was submitted. */
  offset_ms: number;
  /** The AgentTask it belongs to; none for the orchestrator and the task itself. */
  task_id: string | null;
  agent: string;
  kind: StepRow["kind"] | "status" | "policy_decision" | "guardrail";
  name: string;
  status: string;
  duration_ms: number | null;
  input_tokens: number | null;
  output_tokens: number | null;
  cost_usd: number | null;
  attempt: number | null;
  turn: number | null;
  /** One line saying what happened (arguments, reasons, reviewer, delay). */
  detail: string;
  error: string | null;
  error_class: string | null;
  /** True for anything that went wrong: a failed call, a refusal, an error, a rejection. */
  problem: boolean;
}

export interface AgentSummary {
  task_id: string;
  agent: string;
  objective: string;
  status: string;
  model_calls: number;
  tool_calls: number;
  tokens: number;
  cost_usd: number;
  error: string | null;
}

/** Everything `keel trace` shows about one task tree. */
export interface TaskTrace {
  task: {
    id: string;
    status: string;
    request: string;
    workflow: string;
    /** The release it ran on (`name@version`), when it has one. */
    release: string | null;
    submitted_by: string | null;
    attempts: number;
    created_at: string;
    finished_at: string | null;
    duration_ms: number | null;
    error_reason: string | null;
    last_error: string | null;
    trace_id: string | null;
  };
  totals: {
    model_calls: number;
    tool_calls: number;
    input_tokens: number;
    output_tokens: number;
    cost_usd: number;
    approvals: number;
    retries: number;
    problems: number;
  };
  agents: AgentSummary[];
  timeline: TimelineEntry[];
}

const PROBLEM_STATUSES = new Set(["error", "invalid_arguments", "refused", "rejected", "failed", "expired"]);

function brief(value: unknown, max = 160): string {
  if (value === null || value === undefined) return "";
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function stepDetail(step: StepRow): string {
  const input = step.input as Record<string, unknown> | null;
  const output = step.output as Record<string, unknown> | null;
  switch (step.kind) {
    case "tool_call":
      return brief(step.input);
    case "model_call": {
      const calls = (output?.tool_calls as { name: string }[] | undefined) ?? [];
      return calls.length ? `→ ${calls.map((c) => c.name).join(", ")}` : brief(output?.text, 100);
    }
    case "handoff":
      return `${brief(input?.objective, 100)}${(input?.depends_on as string[] | undefined)?.length ? ` (after ${(input!.depends_on as string[]).join(", ")})` : ""}`;
    case "approval_requested":
      return `why: ${brief(output?.why, 200)}`;
    case "approval_decided":
      return `${brief(output?.action ?? step.status)} by ${brief(output?.reviewer ?? "?")} after ${Math.round(Number(output?.waited_ms ?? 0) / 100) / 10} s${output?.reason ? `: ${brief(output.reason, 100)}` : ""}`;
    case "retry":
      return output?.delay_ms !== undefined
        ? `attempt ${brief(output.next_attempt)} in ${brief(output.delay_ms)} ms`
        : `retry ${step.attempt ?? "?"} of ${step.name}`;
    case "error":
      return "";
  }
}

/**
 * Reads one task tree's whole story from the store: its steps (model and tool calls, handoffs, approvals,
 * retries, errors), its status changes, and the policy decisions and guardrail verdicts made along the way.
 */
export async function readTaskTrace(db: Pick<pg.Pool, "query">, taskId: string): Promise<TaskTrace> {
  const root = await rootOf(db, await resolveId(db, "tasks", taskId, "keel list"));
  if (!root) throw new NotFoundError(`No task has id ${taskId}. keel list shows task ids.`);
  const start = root.created_at.getTime();
  const entry = (e: Partial<TimelineEntry> & Pick<TimelineEntry, "kind" | "name" | "status">, at: Date) => {
    const full: TimelineEntry = {
      at: at.toISOString(),
      offset_ms: at.getTime() - start,
      task_id: null,
      agent: "orchestrator",
      duration_ms: null,
      input_tokens: null,
      output_tokens: null,
      cost_usd: null,
      attempt: null,
      turn: null,
      detail: "",
      error: null,
      error_class: null,
      problem: false,
      ...e,
    };
    full.problem ||= PROBLEM_STATUSES.has(full.status) || full.kind === "error";
    return full;
  };

  const steps = await stepsOf(db, root.id);
  const timeline: TimelineEntry[] = steps.map((s) =>
    entry(
      {
        task_id: s.task_id ?? null,
        agent: s.agent,
        kind: s.kind,
        name: s.name,
        status: s.status,
        duration_ms: s.duration_ms ?? null,
        input_tokens: s.input_tokens ?? null,
        output_tokens: s.output_tokens ?? null,
        cost_usd: s.cost_usd ?? null,
        attempt: s.attempt ?? null,
        turn: s.turn ?? null,
        detail: stepDetail(s),
        error: s.error ?? null,
        error_class: s.error_class ?? null,
        problem: s.kind === "retry",
      },
      s.started_at,
    ),
  );

  for (const e of await historyOf(db, root.id)) {
    timeline.push(
      entry(
        {
          kind: "status",
          name: "task",
          status: e.to_status,
          attempt: e.attempt || null,
          detail: [e.reason, e.worker ? `worker ${e.worker}` : ""].filter(Boolean).join(" · "),
          problem: e.to_status === "failed",
        },
        e.at,
      ),
    );
  }

  const decisions = await db.query<{
    created_at: Date;
    tool_call_id: string;
    agent: string;
    tool: string;
    decision: string;
    reasons: string[];
  }>(
    "select created_at, tool_call_id, agent, tool, decision, reasons from policy_decisions where thread_id = $1",
    [root.id],
  );
  for (const d of decisions.rows) {
    timeline.push(
      entry(
        {
          task_id: d.tool_call_id.split("/")[0] ?? null,
          agent: d.agent,
          kind: "policy_decision",
          name: d.tool,
          status: d.decision,
          detail: d.reasons.join("; "),
        },
        d.created_at,
      ),
    );
  }

  const guardrails = await db.query<{ created_at: Date; stage: string; action: string; reason: string }>(
    "select created_at, stage, action, reason from guardrail_events where thread_id = $1",
    [root.id],
  );
  for (const g of guardrails.rows) {
    timeline.push(
      entry(
        {
          kind: "guardrail",
          name: g.stage,
          status: g.action,
          detail: g.reason,
          problem: g.action === "blocked",
        },
        g.created_at,
      ),
    );
  }
  // Status changes first among entries of one instant: steps written in the same transaction share its time.
  const rank = (e: TimelineEntry) => (e.kind === "status" ? 0 : 1);
  timeline.sort((a, b) => a.offset_ms - b.offset_ms || rank(a) - rank(b));

  const children = await childrenOf(db, root.id);
  const agents: AgentSummary[] = children.map((c) => {
    const own = steps.filter((s) => s.task_id === c.agent_task_id);
    const models = own.filter((s) => s.kind === "model_call");
    return {
      task_id: c.agent_task_id ?? c.id,
      agent: c.agent_type ?? "",
      objective: redact(c.request ?? ""),
      status: c.status,
      model_calls: models.length,
      tool_calls: own.filter((s) => s.kind === "tool_call").length,
      tokens: models.reduce((n, s) => n + (s.input_tokens ?? 0) + (s.output_tokens ?? 0), 0),
      cost_usd: models.reduce((n, s) => n + (s.cost_usd ?? 0), 0),
      error: c.last_error ? redact(c.last_error) : null,
    };
  });

  const models = steps.filter((s) => s.kind === "model_call");
  return {
    task: {
      id: root.id,
      status: root.status,
      request: redact(root.request ?? ""),
      workflow: root.workflow,
      release: root.release_id ? releaseLabel(await getRelease(db, root.release_id)) : null,
      submitted_by: root.submitted_by,
      attempts: root.attempts,
      created_at: root.created_at.toISOString(),
      finished_at: root.finished_at?.toISOString() ?? null,
      duration_ms: root.finished_at ? root.finished_at.getTime() - start : null,
      error_reason: root.error_reason,
      last_error: root.last_error ? redact(root.last_error) : null,
      trace_id: root.trace_context?.split("-")[1] ?? null,
    },
    totals: {
      model_calls: models.length,
      tool_calls: steps.filter((s) => s.kind === "tool_call").length,
      input_tokens: models.reduce((n, s) => n + (s.input_tokens ?? 0), 0),
      output_tokens: models.reduce((n, s) => n + (s.output_tokens ?? 0), 0),
      cost_usd: models.reduce((n, s) => n + (s.cost_usd ?? 0), 0),
      approvals: steps.filter((s) => s.kind === "approval_requested").length,
      retries: steps.filter((s) => s.kind === "retry").length,
      problems: timeline.filter((e) => e.problem).length,
    },
    agents,
    timeline,
  };
}
