import type { ProgressEvent } from "../graphs/progress.js";
import type { PendingApproval, RunOutcome } from "../runtime/runner.js";

/** Human-readable progress, one line per event, written as it happens. */
export function renderEvent(event: ProgressEvent, write: (line: string) => void): void {
  switch (event.type) {
    case "plan":
      write(`plan: ${event.tasks.length} task${event.tasks.length === 1 ? "" : "s"}`);
      for (const t of event.tasks) {
        const deps = t.depends_on.length ? ` (after ${t.depends_on.join(", ")})` : "";
        write(`  ${t.task_id} ${t.type.padEnd(13)} ${t.objective}${deps}`);
      }
      break;
    case "wave":
      write(`wave ${event.wave}: ${event.task_ids.join(", ")}`);
      break;
    case "agent_start":
      write(`  > ${event.task_id} ${event.agent} started`);
      break;
    case "tool_call":
      write(`    ${event.task_id} ${event.tool} ${short(JSON.stringify(event.args), 120)}`);
      break;
    case "tool_result":
      if (event.status !== "ok")
        write(`    ${event.task_id} ${event.tool} -> ${event.status}: ${short(event.detail, 160)}`);
      break;
    case "agent_done":
      write(`  < ${event.task_id} ${event.agent} ${event.status}: ${short(event.summary, 160)}`);
      break;
    case "approval_requested":
      break; // shown in full by the approval prompt or the waiting summary
    case "answer":
      break; // printed once at the end
  }
}

function short(text: string, max: number): string {
  const flat = text.replace(/\s+/g, " ");
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

export function describeApproval(p: PendingApproval): string[] {
  const lines = [`approval needed: task ${p.request.task_id} (${p.request.agent}) — ${p.request.objective}`];
  for (const action of p.request.actions) {
    lines.push(`  ${action.tool} [risk: ${action.risk}]`);
    for (const [key, value] of Object.entries(action.args as Record<string, unknown>)) {
      const text = String(value).split("\n");
      lines.push(`    ${key}: ${text[0]}`, ...text.slice(1).map((l) => `      ${l}`));
    }
  }
  return lines;
}

export function resumeHint(threadId: string): string[] {
  return [
    `The run is waiting for approval. Thread: ${threadId}`,
    "Continue it (in any process) with one of:",
    `  keel resume ${threadId} --approve`,
    `  keel resume ${threadId} --approve --edit '{"subject": "…"}'`,
    `  keel resume ${threadId} --reject --reason "…"`,
  ];
}

/** The one JSON object `--json` prints. */
export function outcomeJson(outcome: RunOutcome): object {
  return {
    thread_id: outcome.thread_id,
    status: outcome.status,
    plan: outcome.plan ?? null,
    results: outcome.results,
    final_answer: outcome.final_answer ?? null,
    pending_approval: outcome.pending[0]
      ? { ...outcome.pending[0].request, interrupt_id: outcome.pending[0].interrupt_id }
      : null,
  };
}

export function exitCodeForOutcome(outcome: RunOutcome): number {
  return outcome.status === "waiting_for_approval" ? 3 : outcome.status === "failed" ? 1 : 0;
}
