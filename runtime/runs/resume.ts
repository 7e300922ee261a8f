import type pg from "pg";
import { v7 as uuidv7 } from "uuid";
import { z } from "zod";
import { InputError } from "../../core/errors.js";
import { ApprovalDecision } from "../../graphs/approval.js";
import type { RiskPolicy } from "../../policy/risk.js";
import { decide, hasPendingApprovals, listApprovals, type ApprovalRow } from "../approvals.js";
import type { NewRun } from "./store.js";
import type { RunRow } from "./sql.js";

/**
 * A resume sent through the Agent Server API (`command: {resume}`) to a thread waiting on Keel approvals is a
 * Keel decision: it goes through the approvals store, so the caller is recorded as reviewer, an edit is decided
 * by the policy again, a sync approval needs a second person and the typed confirmation, and a second decision is
 * a 409. The new run adopts the waiting task: the worker that resumes it streams into the new run.
 */

/** Keel's own answer, as `keel approve` takes it, with the typed confirmation a sync approval needs. */
const KeelAnswer = ApprovalDecision.omit({ reviewer: true }).extend({
  confirm: z.string().optional().describe("For a sync approval: the held tools' names, as the approval asks"),
});

/** Agent Inbox's answer (`HumanResponse`), alone or in the one-element list Agent Inbox sends. */
const HumanResponse = z.object({
  type: z.enum(["accept", "edit", "response", "ignore"]),
  args: z.unknown().optional(),
});

type Answer = z.infer<typeof KeelAnswer>;

/** Reads one answer in either form; anything else is refused with both forms named. */
export function answerOf(value: unknown): Answer {
  const keel = KeelAnswer.safeParse(value);
  if (keel.success) return keel.data;
  const inbox = HumanResponse.safeParse(Array.isArray(value) && value.length === 1 ? value[0] : value);
  if (inbox.success) {
    const { type, args } = inbox.data;
    if (type === "accept") return { action: "approve" };
    if (type === "ignore") return { action: "reject", reason: "ignored by the reviewer" };
    if (type === "response")
      return { action: "reject", reason: typeof args === "string" ? args : JSON.stringify(args ?? "") };
    const edited = (args as { args?: unknown } | undefined)?.args;
    if (!edited || typeof edited !== "object" || Array.isArray(edited))
      throw new InputError(
        'An Agent Inbox "edit" needs "args": {"action": "<tool>", "args": {…the new arguments…}}.',
        "invalid_argument",
      );
    return { action: "edit", args: edited as Record<string, unknown> };
  }
  throw new InputError(
    'This thread waits for a Keel approval: resume with {"action": "approve" | "reject" | "edit", "args"?: {…}, "reason"?: "…", "confirm"?: "…"} or an Agent Inbox response [{"type": "accept" | "edit" | "response" | "ignore", "args": …}].',
    "invalid_argument",
  );
}

/** The answer for each pending approval: one answer for the only one, or a map keyed by interrupt id. */
function answersFor(resume: unknown, pending: ApprovalRow[]): Map<ApprovalRow, Answer> {
  const answers = new Map<ApprovalRow, Answer>();
  if (pending.length === 1) {
    const only = pending[0]!;
    const keyed =
      resume && typeof resume === "object" && !Array.isArray(resume) && only.interrupt_id in resume;
    answers.set(only, answerOf(keyed ? (resume as Record<string, unknown>)[only.interrupt_id] : resume));
    return answers;
  }
  const map = (resume && typeof resume === "object" ? resume : {}) as Record<string, unknown>;
  for (const approval of pending) {
    if (!(approval.interrupt_id in map))
      throw new InputError(
        `This thread waits for ${pending.length} approvals; resume with a map from interrupt id to answer, one for each of ${pending.map((p) => p.interrupt_id).join(", ")}.`,
        "invalid_argument",
      );
    answers.set(approval, answerOf(map[approval.interrupt_id]));
  }
  return answers;
}

/**
 * Records the caller's decisions on the approvals task `taskId` waits for and stores the run that carries the
 * resume. Nothing is stored when the answer is malformed; a decision the store refuses (self-approval of a sync
 * approval, a second decision) removes the new run again and is the error returned.
 */
export async function resumeThroughApprovals(
  pool: pg.Pool,
  input: NewRun & { threadId: string },
  taskId: string,
  policy: RiskPolicy,
): Promise<RunRow> {
  const pending = await listApprovals(pool, "pending", taskId);
  const answers = answersFor(input.kwargs.command?.resume, pending);
  const runId = uuidv7();
  const { rows } = await pool.query<RunRow>(
    `insert into runs (run_id, thread_id, assistant_id, graph_id, task_id, owner, kwargs, metadata, multitask_strategy, started)
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, true) returning *`,
    [
      runId,
      input.threadId,
      input.assistant.assistant_id,
      input.assistant.graph_id,
      taskId,
      input.caller.identity,
      JSON.stringify(input.kwargs),
      { ...input.assistant.metadata, ...input.metadata, resumes_task: taskId },
      input.multitask,
    ],
  );
  try {
    for (const [approval, { confirm, ...decision }] of answers)
      await decide(pool, approval.id, { ...decision, reviewer: input.caller.identity }, { confirm, policy });
  } catch (error) {
    await pool.query("delete from runs where run_id = $1", [runId]);
    throw error;
  }
  // An edit the policy made a sync approval keeps the task waiting for a second person: this run ends there.
  if (await hasPendingApprovals(pool, taskId)) {
    const ended = await pool.query<RunRow>(
      "update runs set status = 'success', updated_at = now() where run_id = $1 and status = 'pending' returning *",
      [runId],
    );
    return ended.rows[0] ?? rows[0]!;
  }
  return rows[0]!;
}
