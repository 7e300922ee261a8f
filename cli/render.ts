import { commandName } from "../core/config.js";
import type { ProgressEvent } from "../graphs/progress.js";

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

/** What a reviewer sees of one held action. */
export interface ApprovalView {
  approval_id?: string;
  task_id: string;
  agent: string;
  objective: string;
  actions: { tool: string; risk: string; args: unknown; decision?: string; why?: string[] }[];
  /** Set for a sync approval: what the second person types to confirm. */
  confirm?: string;
  /** An edit waiting for a second person: who made it, what it changes, and why it needs more. */
  proposed_edit?: {
    by: string | null;
    reasons: string[];
    changes: { field: string; from?: unknown; to?: unknown }[];
  };
}

/** How the commands Keel prints start: `keel` when the shell has it on PATH, else `npx keel`. */
export const KEEL = commandName();

/** An age for people: "12 s ago", "3 min ago", "2 h ago", "5 d ago". */
export function ago(at: Date | null, now = Date.now()): string {
  if (!at) return "-";
  const seconds = Math.max(0, Math.round((now - at.getTime()) / 1000));
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86_400)} d ago`;
}

export function describeApproval(p: ApprovalView): string[] {
  const id = p.approval_id ? ` [approval ${p.approval_id}]` : "";
  const lines = [`approval needed${id}: task ${p.task_id} (${p.agent}) — ${p.objective}`];
  for (const action of p.actions) {
    const decision = action.decision ? `, ${action.decision.replace("_", " ")}` : "";
    lines.push(`  ${action.tool} [risk: ${action.risk}${decision}]`);
    for (const why of action.why ?? []) lines.push(`    why: ${why}`);
    for (const [key, value] of Object.entries(action.args as Record<string, unknown>)) {
      const text = String(value).split("\n");
      lines.push(`    ${key}: ${text[0]}`, ...text.slice(1).map((l) => `      ${l}`));
    }
  }
  if (p.proposed_edit) {
    lines.push(`  edited by ${p.proposed_edit.by ?? "a reviewer"}, waiting for a second person:`);
    for (const c of p.proposed_edit.changes)
      lines.push(`    ${c.field}: ${JSON.stringify(c.from ?? null)} -> ${JSON.stringify(c.to)}`);
    for (const why of p.proposed_edit.reasons) lines.push(`    why: ${why}`);
  }
  if (p.confirm) {
    lines.push(
      `  sync approval: a second person (not the submitter) approves it, typing the held tools:`,
      `    ${KEEL} approve ${p.approval_id ?? "<approval-id>"} --reviewer <name> --confirm "${p.confirm}"`,
    );
  }
  return lines;
}

export function resumeHint(taskId: string, approvalIds: string[]): string[] {
  return [
    `The task is waiting for approval. Task: ${taskId}`,
    "Decide (from any process; a worker then continues the task from its checkpoint):",
    `  ${KEEL} resume ${taskId} --approve            (or: ${KEEL} approve ${approvalIds[0] ?? "<approval-id>"})`,
    `  ${KEEL} resume ${taskId} --approve --edit '{"subject": "…"}'`,
    `  ${KEEL} resume ${taskId} --reject --reason "…"   (or: ${KEEL} reject ${approvalIds[0] ?? "<approval-id>"} --reason "…")`,
  ];
}
