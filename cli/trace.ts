import type { KeelConfig } from "../core/config.js";
import { readTaskTrace, type TaskTrace, type TimelineEntry } from "../reports/trace.js";
import { pruneTrajectories } from "../observability/trajectory.js";
import { printJson, withDatabase } from "./common.js";

const seconds = (ms: number) => `${(ms / 1000).toFixed(2)}s`;
const usd = (n: number) => `$${n.toFixed(6)}`;
const tokens = (n: number) => n.toLocaleString("en-US");

/** What one entry says, after its offset and indentation. */
function describe(e: TimelineEntry): string {
  const parts: string[] = [];
  const measure: string[] = [];
  const quiet = [
    "handoff",
    "approval_requested",
    "approval_decided",
    "status",
    "policy_decision",
    "guardrail",
  ];
  if (e.duration_ms !== null && !quiet.includes(e.kind)) measure.push(`${e.duration_ms} ms`);
  if (e.input_tokens !== null || e.output_tokens !== null)
    measure.push(`${tokens((e.input_tokens ?? 0) + (e.output_tokens ?? 0))} tok`);
  if (e.cost_usd !== null) measure.push(usd(e.cost_usd));
  switch (e.kind) {
    case "model_call":
      parts.push(`${e.agent === "planner" || e.agent === "synthesizer" ? `${e.agent} ` : ""}chat ${e.name}`);
      if (e.turn) parts.push(`(turn ${e.turn})`);
      break;
    case "tool_call":
      parts.push(`tool ${e.name}`);
      break;
    case "handoff":
      parts.push(`handoff → ${e.name} ${e.task_id ?? ""}`);
      break;
    case "status":
      parts.push(`task ${e.status}${e.attempt ? ` (attempt ${e.attempt})` : ""}`);
      break;
    case "policy_decision":
      parts.push(`policy ${e.name}: ${e.status}`);
      break;
    case "guardrail":
      parts.push(`guardrail ${e.name}: ${e.status}`);
      break;
    case "approval_requested":
      parts.push(`approval requested (${e.status}) for ${e.name}`);
      break;
    case "approval_decided":
      parts.push(`approval ${e.status} for ${e.name}`);
      break;
    case "retry":
      parts.push(`retry ${e.name}${e.error_class ? ` after ${e.error_class}` : ""}`);
      break;
    case "error":
      parts.push(`error in ${e.name}${e.error_class ? ` (${e.error_class})` : ""}`);
      break;
  }
  if (!quiet.includes(e.kind)) measure.push(e.status);
  const head = `${parts.join(" ")}${measure.length ? ` · ${measure.join(" · ")}` : ""}`;
  const tail = [e.detail, e.error ? `error: ${e.error}` : ""].filter(Boolean).join(" · ");
  return tail ? `${head}  ${tail}` : head;
}

/**
 * Renders a task tree as an indented timeline: the task's own steps in order, and each sub-agent's steps as a
 * block under its handoff. Problems (failures, refusals, rejections, retries, errors) are marked with ✗, and
 * shown in red on a terminal.
 */
export function renderTrace(trace: TaskTrace, color = false): string[] {
  const { task, totals } = trace;
  const red = (s: string) => (color ? `\u001b[31m${s}\u001b[0m` : s);
  const lines: string[] = [];
  lines.push(
    [
      `task ${task.id}`,
      task.status,
      `${task.attempts} attempt${task.attempts === 1 ? "" : "s"}`,
      task.duration_ms !== null ? seconds(task.duration_ms) : "unfinished",
      `${tokens(totals.input_tokens + totals.output_tokens)} tokens`,
      usd(totals.cost_usd),
      task.trace_id ? `trace ${task.trace_id}` : "not traced",
    ].join(" · "),
  );
  lines.push(`request: ${task.request}`);
  lines.push(
    `workflow ${task.workflow}${task.release ? ` · release ${task.release}` : ""} · submitted by ${task.submitted_by ?? "?"} · ${totals.model_calls} model calls · ${totals.tool_calls} tool calls · ${totals.approvals} approvals · ${totals.retries} retries`,
  );
  if (task.error_reason)
    lines.push(red(`✗ failed: ${task.error_reason}${task.last_error ? ` — ${task.last_error}` : ""}`));
  lines.push("");

  const line = (e: TimelineEntry, indent: string) => {
    const text = `${seconds(e.offset_ms).padStart(9)}  ${indent}${e.problem ? "✗ " : ""}${describe(e)}`;
    return e.problem ? red(text) : text;
  };
  const shown = new Set<string>();
  for (const e of trace.timeline) {
    if (e.task_id && e.kind !== "handoff") continue; // shown in its agent's block
    lines.push(line(e, ""));
    if (e.kind !== "handoff" || !e.task_id || shown.has(e.task_id)) continue;
    shown.add(e.task_id);
    const agent = trace.agents.find((a) => a.task_id === e.task_id);
    if (agent) {
      const head = `${" ".repeat(11)}┌ ${agent.task_id} ${agent.agent} · ${agent.status} · ${agent.model_calls} model calls · ${agent.tool_calls} tool calls · ${tokens(agent.tokens)} tok · ${usd(agent.cost_usd)}`;
      lines.push(agent.status === "failed" ? red(head) : head);
    }
    for (const own of trace.timeline.filter((x) => x.task_id === e.task_id && x.kind !== "handoff"))
      lines.push(line(own, "│ "));
  }
  // Steps of an AgentTask that was never handed off in this store (pruned, or recorded before tracing).
  for (const e of trace.timeline)
    if (e.task_id && e.kind !== "handoff" && !shown.has(e.task_id)) lines.push(line(e, `${e.task_id} `));
  return lines;
}

export function traceCommand(config: KeelConfig, taskId: string, opts: { json?: boolean }): Promise<number> {
  return withDatabase(config, opts.json, async (db) => {
    const trace = await readTaskTrace(db.pool, taskId);
    if (opts.json) printJson(trace);
    else for (const l of renderTrace(trace, Boolean(process.stdout.isTTY))) console.log(l);
    return 0;
  });
}

/** Deletes trajectory steps older than the retention period (or `days`), now. */
export function pruneTracesCommand(
  config: KeelConfig,
  opts: { olderThan?: number; json?: boolean },
): Promise<number> {
  const days = opts.olderThan ?? config.observability.retentionDays;
  return withDatabase(config, opts.json, async (db) => {
    const removed = await pruneTrajectories(db.pool, days);
    if (opts.json) printJson({ removed, older_than_days: days });
    else console.log(`keel: removed ${removed} trajectory step(s) older than ${days} day(s)`);
    return 0;
  });
}
