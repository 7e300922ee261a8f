import { createTrajectoryMatchEvaluator } from "agentevals";
import type { EvalCase } from "./dataset.js";

/** One tool call of a run, as the evaluators see it. */
export interface ActualCall {
  agent: string;
  tool: string;
  args: Record<string, unknown>;
  /** ok, error, invalid_arguments, refused, rejected */
  status: string;
}

/** Everything a case's run produced that the checks look at. */
export interface CaseRun {
  task_id: string | null;
  status: "done" | "failed" | "blocked" | "cancelled" | "timeout";
  reason: string | null;
  answer: string;
  agents: string[];
  calls: ActualCall[];
  approvals_requested: number;
  outbox: { to: string; subject: string; status: string }[];
  handoffs: number;
  failed_subtasks: number;
  latency_ms: number;
  tokens: number;
  cost_usd: number;
}

export interface Check {
  name: string;
  pass: boolean;
  detail: string;
}

type Expected = NonNullable<EvalCase["expect"]["trajectory"]>;

/** Tool calls as OpenAI-style messages, one assistant message per call: the form agentevals compares. */
function asMessages(calls: readonly { tool: string; args: Record<string, unknown> }[]) {
  return calls.map((c) => ({
    role: "assistant" as const,
    content: "",
    tool_calls: [{ function: { name: c.tool, arguments: JSON.stringify(c.args) } }],
  }));
}

/**
 * Trajectory match in agentevals' four modes (strict, unordered, subset, superset), with argument matching by
 * default and per tool. Only calls that ran (not refused or invalid) count as the trajectory.
 */
export async function matchTrajectory(actual: readonly ActualCall[], expected: Expected): Promise<Check> {
  const evaluator = createTrajectoryMatchEvaluator({
    trajectoryMatchMode: expected.mode,
    toolArgsMatchMode: expected.args_match,
    toolArgsMatchOverrides: expected.per_tool,
  });
  const ran = actual.filter((c) => c.status === "ok" || c.status === "error" || c.status === "rejected");
  const result = (await evaluator({
    outputs: asMessages(ran),
    referenceOutputs: asMessages(expected.calls.map((c) => ({ tool: c.tool, args: c.args }))),
  })) as { score: boolean | number };
  const pass = result.score === true || result.score === 1;
  return {
    name: `trajectory_${expected.mode}`,
    pass,
    detail: pass
      ? `${ran.length} call(s) match (${expected.mode})`
      : `expected (${expected.mode}): ${expected.calls.map((c) => c.tool).join(" → ") || "none"}; got: ${ran.map((c) => c.tool).join(" → ") || "none"}`,
  };
}

/** Expected vs actual calls side by side, for the report's failing cases. */
export function trajectoryDiff(actual: readonly ActualCall[], expected: Expected | undefined) {
  const want = expected?.calls.map((c) => c.tool) ?? [];
  const got = actual.map((c) => c.tool);
  return { expected: want, actual: got, missing: minus(want, got), extra: minus(got, want) };
}

/** The items of `a` left after taking out one per item of `b` (multiset difference, in `a`'s order). */
function minus(a: readonly string[], b: readonly string[]): string[] {
  const left = [...b];
  return a.filter((item) => {
    const i = left.indexOf(item);
    if (i < 0) return true;
    left.splice(i, 1);
    return false;
  });
}

const norm = (s: string) => s.toLowerCase().replace(/\s+/g, " ");

/** The outcome checks: how it ended, what the answer says, which agents, approvals and messages. */
export function checkOutcome(c: EvalCase, run: CaseRun): Check[] {
  const e = c.expect;
  const checks: Check[] = [
    {
      name: "status",
      pass: run.status === e.status,
      detail: `expected ${e.status}, got ${run.status}${run.reason ? ` (${run.reason})` : ""}`,
    },
  ];
  if (e.reason) {
    checks.push({
      name: "reason",
      pass: (run.reason ?? "").includes(e.reason),
      detail: `expected reason ${e.reason}, got ${run.reason ?? "none"}`,
    });
  }
  if (e.agents) {
    checks.push({
      name: "agents",
      pass: e.agents.join(",") === run.agents.join(","),
      detail: `expected ${e.agents.join(", ")}; got ${run.agents.join(", ") || "none"}`,
    });
  }
  for (const fact of e.answer_contains) {
    checks.push({
      name: "answer",
      pass: norm(run.answer).includes(norm(fact)),
      detail: `answer mentions "${fact}"`,
    });
  }
  for (const value of e.values) {
    checks.push({
      name: "value",
      pass: run.answer.includes(value),
      detail: `answer has the exact value ${value}`,
    });
  }
  checks.push({
    name: "approvals",
    pass: run.approvals_requested === e.approvals,
    detail: `expected ${e.approvals} approval(s), got ${run.approvals_requested}`,
  });
  if (e.outbox) {
    const queued = run.outbox.filter((m) => m.status === "queued");
    for (const m of e.outbox.must) {
      checks.push({
        name: "outbox_must",
        pass: queued.some(
          (q) => q.to === m.to && (!m.subject_contains || norm(q.subject).includes(norm(m.subject_contains))),
        ),
        detail: `a queued message to ${m.to}${m.subject_contains ? ` about "${m.subject_contains}"` : ""}`,
      });
    }
    for (const m of e.outbox.must_not) {
      checks.push({
        name: "outbox_must_not",
        pass: !queued.some((q) => q.to === m.to),
        detail: `no queued message to ${m.to}`,
      });
    }
    if (e.outbox.count !== undefined) {
      checks.push({
        name: "outbox_count",
        pass: queued.length === e.outbox.count,
        detail: `expected ${e.outbox.count} queued message(s), got ${queued.length}`,
      });
    }
  }
  return checks;
}

/** Trajectory-quality numbers of one run. */
export function qualityOf(c: EvalCase, run: CaseRun) {
  // Only a complete reference (not "superset", which lists the calls that must be there) says what was extra.
  const complete = c.expect.trajectory && c.expect.trajectory.mode !== "superset";
  const unnecessary = complete ? trajectoryDiff(run.calls, c.expect.trajectory).extra.length : 0;
  return {
    tool_calls: run.calls.length,
    unnecessary_tool_calls: unnecessary,
    invalid_arguments: run.calls.filter((x) => x.status === "invalid_arguments").length,
    unsafe_writes_blocked:
      run.calls.filter((x) => x.status === "refused" || x.status === "rejected").length +
      (run.status === "blocked" ? 1 : 0),
    handoffs: run.handoffs,
    failed_handoffs: run.failed_subtasks,
    approvals_requested: run.approvals_requested,
    approvals_expected: c.expect.approvals,
  };
}
