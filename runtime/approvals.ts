import { randomUUID } from "node:crypto";
import type pg from "pg";
import { z } from "zod";
import { InputError, namedFailure, NotFoundError, SystemError } from "../core/errors.js";
import {
  ApprovalDecision,
  ApprovalRequest,
  checkEditedArgs,
  decideEdit,
  EditChange,
  editChanges,
} from "../graphs/approval.js";
import type { RiskPolicy } from "../policy/risk.js";
import { KEEL, recordSpan } from "../observability/spans.js";
import { recordStep } from "../observability/trajectory.js";
import { eraseStrings, HIGH_RISK_PII, PURGED, redact, redactDeep } from "../policy/pii.js";
import { enqueue, scheduleApprovalExpiry, scheduleCompensation, scheduleWatch } from "./queue.js";
import type { PendingApproval } from "./runner.js";
import { inTransaction, transition, type TaskRow } from "./task/store.js";
import { settleChildrenWithRoot } from "./task/children.js";
import { readTask, resolveId, rootOf } from "./task/sql.js";
import { splitInstruction } from "../policy/provenance.js";

/** One row of `approvals`: a held action, its full context, and (once decided) the decision. */
export interface ApprovalRow {
  id: string;
  task_id: string;
  agent_task_id: string | null;
  interrupt_id: string;
  context: ApprovalContext;
  status: "pending" | "approved" | "rejected" | "expired" | "withdrawn";
  /** async: any reviewer; sync: a second person (not the submitter) with a typed confirmation. */
  mode: "async" | "sync";
  decision: ApprovalDecision | null;
  reviewer: string | null;
  reason: string | null;
  created_at: Date;
  decided_at: Date | null;
  expires_at: Date;
}

/** Everything a reviewer needs without opening anything else; stored as the row's `context`, parsed when read. */
export const ApprovalContext = z.object({
  request: z.string(),
  task_id: z.string(),
  agent: ApprovalRequest.shape.agent,
  objective: z.string(),
  actions: ApprovalRequest.shape.actions,
  why: z.string(),
  /** For a sync approval: the text the reviewer must type to confirm (the tool names, comma-separated). */
  confirm: z.string().optional(),
  /**
   * An edit that made the call riskier than the approval asked for: it waits for a second person (not the
   * submitter, not the one who edited), who approves the edited call or rejects it.
   */
  proposed_edit: z
    .object({
      args: z.record(z.string(), z.unknown()),
      by: z.string().nullable(),
      reasons: z.array(z.string()),
      changes: z.array(EditChange),
    })
    .optional(),
});
export type ApprovalContext = z.infer<typeof ApprovalContext>;

/**
 * Runs a statement over `approvals` and parses what it returns: a context or decision that does not match its
 * schema is an error naming the approval, never a cast.
 */
async function queryApprovals(
  db: Pick<pg.ClientBase, "query">,
  sql: string,
  params: unknown[],
): Promise<ApprovalRow[]> {
  const { rows } = await db.query<ApprovalRow>(sql, params);
  return rows.map((row) => {
    const context = ApprovalContext.safeParse(row.context);
    const decision = ApprovalDecision.nullable().safeParse(row.decision);
    if (!context.success || !decision.success) {
      throw new SystemError(
        "internal",
        `Approval ${row.id} holds a ${context.success ? "decision" : "context"} Keel cannot read: ${(context.error ??
          decision.error)!.issues
          .map((issue) => `${issue.path.join(".")}: ${issue.message}`)
          .join("; ")}.`,
      );
    }
    return { ...row, context: context.data, decision: decision.data };
  });
}

/** What a reviewer types to confirm a sync approval: the names of the held tools, in order. */
export const confirmationFor = (actions: ApprovalRequest["actions"]) => actions.map((a) => a.tool).join(",");

/**
 * An approval's context and decision with their content erased (for `keel purge`), still readable through their
 * schemas: who decided, how, in which mode, on which tools and at which risk stay; requests, objectives,
 * arguments and reasons go (the policy's reasons keep their words, without personal data).
 */
export function purgedApproval(
  context: unknown,
  decision: unknown,
): { context: ApprovalContext; decision: ApprovalDecision | null } {
  const c = ApprovalContext.parse(context);
  const d = ApprovalDecision.nullable().parse(decision ?? null);
  return {
    context: {
      ...c,
      request: PURGED,
      objective: PURGED,
      why: redact(c.why),
      actions: c.actions.map((a) => ({
        ...a,
        args: eraseStrings(a.args),
        why: a.why?.map((w) => redact(w)),
      })),
      proposed_edit: c.proposed_edit && {
        ...c.proposed_edit,
        args: eraseStrings(c.proposed_edit.args) as Record<string, unknown>,
        reasons: c.proposed_edit.reasons.map((r) => redact(r)),
        changes: c.proposed_edit.changes.map((x) => ({
          field: x.field,
          from: eraseStrings(x.from),
          to: eraseStrings(x.to),
        })),
      },
    },
    decision: d && {
      ...d,
      args: d.args && (eraseStrings(d.args) as Record<string, unknown>),
      reason: d.reason === undefined ? undefined : PURGED,
    },
  };
}

/** Whether a person still has to decide something for this task. */
export async function hasPendingApprovals(
  db: Pick<pg.ClientBase, "query">,
  taskId: string,
): Promise<boolean> {
  const { rowCount } = await db.query("select 1 from approvals where task_id = $1 and status = 'pending'", [
    taskId,
  ]);
  return (rowCount ?? 0) > 0;
}

/** Records one approval row per pending interrupt (skipping ones already recorded), with an expiry job each. */
export async function recordApprovals(
  client: pg.PoolClient,
  task: TaskRow,
  pending: PendingApproval[],
  ttlSeconds: number,
): Promise<void> {
  for (const p of pending) {
    // One approval per interrupt: a decided one stays decided (its decision resumes the thread).
    const known = await client.query(
      "select 1 from approvals where task_id = $1 and interrupt_id = $2 and status in ('pending', 'approved', 'rejected')",
      [task.id, p.interrupt_id],
    );
    if (known.rowCount) continue;
    const id = randomUUID();
    const sync = p.request.actions.some((a) => a.decision === "sync_approval");
    // What reviewers are shown keeps addresses (they decide on them) but never card, bank or national-id numbers.
    const context: ApprovalContext = {
      request: redact(task.request ?? "", HIGH_RISK_PII),
      task_id: p.request.task_id,
      agent: p.request.agent,
      objective: redact(p.request.objective, HIGH_RISK_PII),
      actions: redactDeep(p.request.actions, HIGH_RISK_PII),
      why: p.request.actions
        .map((a) =>
          a.why?.length
            ? a.why.join("; ")
            : `${a.tool} is a ${a.risk}-risk action: a person must approve it before it runs`,
        )
        .join(" | "),
      ...(sync ? { confirm: confirmationFor(p.request.actions) } : {}),
    };
    const { rows } = await client.query<{ expires_at: Date }>(
      `insert into approvals (id, task_id, agent_task_id, interrupt_id, context, status, mode, expires_at)
       values ($1, $2, $3, $4, $5, 'pending', $6, now() + make_interval(secs => $7)) returning expires_at`,
      [
        id,
        task.id,
        p.request.task_id,
        p.interrupt_id,
        JSON.stringify(context),
        sync ? "sync" : "async",
        ttlSeconds,
      ],
    );
    await scheduleApprovalExpiry(client, id, rows[0]!.expires_at);
    await recordStep(client, {
      thread_id: task.root_id,
      task_id: p.request.task_id,
      agent: p.request.agent,
      kind: "approval_requested",
      name: p.request.actions.map((a) => a.tool).join(","),
      status: sync ? "sync" : "async",
      input: { approval_id: id, actions: p.request.actions.map((a) => ({ tool: a.tool, args: a.args })) },
      output: { why: context.why },
      attempt: task.attempts,
    });
  }
}

/** Approvals in a status (or all), optionally of one task only. */
export async function listApprovals(
  db: pg.Pool,
  status: ApprovalRow["status"] | "all" = "pending",
  taskId?: string,
): Promise<ApprovalRow[]> {
  return queryApprovals(
    db,
    "select * from approvals where ($1 = 'all' or status = $1) and ($2::uuid is null or task_id = $2) order by created_at",
    [status, taskId ?? null],
  );
}

export async function getApproval(
  db: pg.Pool | pg.PoolClient,
  id: string,
  lock = false,
): Promise<ApprovalRow> {
  id = await resolveId(db, "approvals", id, "keel approvals");
  const [row] = await queryApprovals(
    db,
    `select * from approvals where id = $1${lock ? " for update" : ""}`,
    [id],
  );
  if (!row) throw new NotFoundError(`No approval has id ${id}. keel approvals lists the pending ones.`);
  return row;
}

/**
 * Records a person's decision. When it was the task's last pending approval, the resume is enqueued in the same
 * transaction; a worker then resumes the thread with the decisions.
 */
export async function decide(
  db: pg.Pool,
  approvalId: string,
  decision: ApprovalDecision,
  options: {
    confirm?: string;
    /** The policy in force: an edit is decided by it again (needed for an edit, refused without it). */
    policy?: RiskPolicy;
  } = {},
): Promise<ApprovalRow> {
  let parsed = ApprovalDecision.parse(decision);
  return inTransaction(db, async (client) => {
    const approval = await getApproval(client, approvalId, true);
    approvalId = approval.id; // a prefix names the approval from here on by its whole id
    const proposed = approval.status === "pending" ? approval.context.proposed_edit : undefined;
    if (proposed && parsed.action !== "reject" && parsed.reviewer && parsed.reviewer === proposed.by) {
      throw new InputError(
        `Approval ${approvalId} holds ${proposed.by}'s edit, which needs a second person; ${proposed.by} cannot approve it. Nothing was changed.`,
        "conflict",
      );
    }
    // Approving a proposed edit approves the edited call.
    if (proposed && parsed.action === "approve") parsed = { ...parsed, action: "edit", args: proposed.args };
    if (approval.mode === "sync" && approval.status === "pending" && parsed.action !== "reject") {
      await checkSecondPerson(client, approval, parsed.reviewer, options.confirm);
    }
    if (approval.status !== "pending") {
      throw new InputError(
        `Approval ${approvalId} is already ${approval.status}${approval.reviewer ? ` (by ${approval.reviewer})` : ""}; nothing was changed.`,
        "conflict",
      );
    }
    if (approval.expires_at.getTime() <= Date.now()) {
      throw new InputError(
        `Approval ${approvalId} expired at ${approval.expires_at.toISOString()}; nothing was changed.`,
        "conflict",
      );
    }
    if (parsed.action === "edit") {
      const edit = parsed.args ?? {};
      checkEditedArgs(approval.context.actions, edit);
      if (!options.policy) {
        throw new SystemError("internal", "An edit is decided by the policy again, and no policy was given.");
      }
      const policy = options.policy;
      const root = await rootOf(client, approval.task_id);
      const instruction = root?.request ? splitInstruction(root.request) : undefined;
      const decided = approval.context.actions.map((a) =>
        decideEdit(a, approval.context.agent, edit, policy, instruction),
      );
      if (approval.mode === "async" && decided.some((d) => d.decision === "sync_approval")) {
        return escalate(client, approval, {
          args: edit,
          by: parsed.reviewer ?? null,
          reasons: decided.flatMap((d) => d.reasons),
          changes: approval.context.actions.flatMap((a) => editChanges(a, edit)),
        });
      }
    }
    const status = parsed.action === "reject" ? "rejected" : "approved";
    const rows = await queryApprovals(
      client,
      `update approvals set status = $2, decision = $3, reviewer = $4, reason = $5, decided_at = now() where id = $1 returning *`,
      [approvalId, status, JSON.stringify(parsed), parsed.reviewer ?? null, parsed.reason ?? null],
    );
    await recordDecided(client, rows[0]!);
    if (!(await hasPendingApprovals(client, approval.task_id))) {
      await enqueue(client, (await readTask(client, approval.task_id))!, "resume");
      await scheduleWatch(client, approval.task_id, new Date(Date.now() + 30_000));
    }
    return rows[0]!;
  });
}

/**
 * Holds an edit that made the call riskier: the approval becomes a sync one with the edit proposed, and stays
 * pending for a second person. The run is not resumed.
 */
async function escalate(
  client: pg.PoolClient,
  approval: ApprovalRow,
  proposed: NonNullable<ApprovalContext["proposed_edit"]>,
): Promise<ApprovalRow> {
  const context: ApprovalContext = {
    ...approval.context,
    proposed_edit: proposed,
    confirm: confirmationFor(approval.context.actions),
    why: `${proposed.by ?? "A reviewer"} edited ${proposed.changes.map((c) => c.field).join(", ") || "nothing"}, and the edited call needs a sync approval: ${proposed.reasons.join("; ")}`,
  };
  const rows = await queryApprovals(
    client,
    "update approvals set mode = 'sync', context = $2 where id = $1 returning *",
    [approval.id, JSON.stringify(context)],
  );
  recordSpan(
    `approval_escalated ${approval.context.actions.map((a) => a.tool).join(",")}`,
    {
      [KEEL.taskId]: approval.agent_task_id ?? "",
      [KEEL.agent]: approval.context.agent,
      [KEEL.approvalMode]: "sync",
      [KEEL.reviewer]: redact(proposed.by ?? ""),
    },
    Date.now(),
    Date.now(),
  );
  return rows[0]!;
}

/** The decision as a trajectory step: who decided what, and how long the action waited for them. */
async function recordDecided(client: pg.PoolClient, approval: ApprovalRow): Promise<void> {
  const task = await readTask(client, approval.task_id);
  const decidedAt = approval.decided_at ?? new Date();
  await recordStep(client, {
    thread_id: task?.root_id ?? approval.task_id,
    task_id: approval.agent_task_id ?? undefined,
    agent: approval.context.agent,
    kind: "approval_decided",
    name: approval.context.actions.map((a) => a.tool).join(","),
    status: approval.status,
    input: { approval_id: approval.id, mode: approval.mode },
    output: {
      reviewer: approval.reviewer,
      reason: approval.reason,
      action: approval.decision?.action ?? approval.status,
      waited_ms: decidedAt.getTime() - approval.created_at.getTime(),
    },
    started_at: decidedAt,
    duration_ms: 0,
  });
}

/**
 * A sync approval needs a second person and a typed confirmation: the reviewer must be named and must not be
 * the one who submitted the request, and must type the held tools' names. Rejecting needs neither.
 */
async function checkSecondPerson(
  client: pg.PoolClient,
  approval: ApprovalRow,
  reviewer: string | undefined,
  confirm: string | undefined,
): Promise<void> {
  const submitter = (await rootOf(client, approval.task_id))?.submitted_by;
  if (!reviewer || (submitter && reviewer === submitter)) {
    throw new InputError(
      `Approval ${approval.id} is a sync approval: it needs a reviewer other than the submitter (${submitter ?? "unknown"}). Ask a second person to approve it (keel approve --reviewer <name>, or over HTTP with their own key); nothing was changed.`,
      "conflict",
    );
  }
  const expected = approval.context.confirm ?? confirmationFor(approval.context.actions);
  if (confirm?.trim() !== expected) {
    throw new InputError(
      `Approval ${approval.id} is a sync approval: confirm it by typing the held action(s) with --confirm "${expected}" (over HTTP: "confirm": "${expected}"); nothing was changed.`,
      "invalid_argument",
    );
  }
}

/** The resume value for a task's decided approvals: one decision, or a map keyed by interrupt id. */
export async function decisionsFor(
  db: pg.Pool,
  taskId: string,
  interruptIds: string[],
): Promise<Record<string, ApprovalDecision>> {
  const rows = await queryApprovals(
    db,
    "select * from approvals where task_id = $1 and interrupt_id = any($2) and status in ('approved', 'rejected') order by decided_at desc",
    [taskId, interruptIds],
  );
  const map: Record<string, ApprovalDecision> = {};
  for (const row of rows) map[row.interrupt_id] ??= row.decision!;
  return map;
}

/** Expires a still-pending approval: the task fails (reason approval_expired) and its other approvals are withdrawn. */
export async function expireApproval(db: pg.Pool, approvalId: string): Promise<boolean> {
  return inTransaction(db, async (client) => {
    const rows = await queryApprovals(
      client,
      "update approvals set status = 'expired', decided_at = now() where id = $1 and status = 'pending' and expires_at <= now() returning *",
      [approvalId],
    );
    const expired = rows[0];
    if (!expired) return false;
    await recordDecided(client, expired);
    await client.query(
      "update approvals set status = 'withdrawn', decided_at = now() where task_id = $1 and status = 'pending'",
      [expired.task_id],
    );
    const task = await readTask(client, expired.task_id);
    if (task?.status === "waiting_for_approval") {
      await transition(client, task.id, "failed", {
        reason: "approval_expired",
        patch: {
          failure: namedFailure("approval_expired", `Approval ${approvalId} expired without a decision.`),
        },
      });
      await settleChildrenWithRoot(
        client,
        task,
        namedFailure("approval_expired", `Approval ${approvalId} expired without a decision.`),
        "approval-expiry",
      );
      await scheduleCompensation(client, task.root_id);
    }
    return true;
  });
}

/** Approval waits as spans of the run that resumes them: from the request to the decision, with the reviewer. */
export async function traceApprovalWaits(db: pg.Pool, taskId: string, interruptIds: string[]): Promise<void> {
  const rows = await queryApprovals(
    db,
    "select * from approvals where task_id = $1 and interrupt_id = any($2) and decided_at is not null",
    [taskId, interruptIds],
  );
  for (const row of rows) {
    recordSpan(
      `approval_wait ${row.context.actions.map((a) => a.tool).join(",")}`,
      {
        [KEEL.taskId]: row.agent_task_id ?? "",
        [KEEL.agent]: row.context.agent,
        [KEEL.approvalMode]: row.mode,
        [KEEL.reviewer]: redact(row.reviewer ?? ""),
        "keel.approval.status": row.status,
      },
      row.created_at,
      row.decided_at!,
    );
  }
}
