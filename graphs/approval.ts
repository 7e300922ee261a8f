import { z } from "zod";
import { AgentType } from "../agents/contracts.js";
import { POLICY_CATALOG, TOOLS } from "../agents/index.js";
import { InputError } from "../core/errors.js";
import { closestName } from "../core/names.js";
import {
  decide as decideCall,
  Decision,
  RiskTier,
  type PolicyDecision,
  type RiskPolicy,
} from "../policy/risk.js";
import { provenanceOf, type Instruction } from "../policy/provenance.js";
import { CONFIDENCE_ARG, validateArgs } from "../tools/contract.js";

/** One risky tool call waiting for a person. */
export const PendingAction = z.object({
  tool_call_id: z.string().describe("Id of the proposed tool call"),
  tool: z.string().describe("Tool name"),
  args: z.unknown().describe("Proposed arguments"),
  risk: RiskTier.describe("Risk tier of the tool"),
  decision: Decision.optional().describe("What the policy decided: async_approval or sync_approval"),
  why: z.array(z.string()).optional().describe("The policy's reasons, for the reviewer"),
});
export type PendingAction = z.infer<typeof PendingAction>;

/** The value of the one interrupt a sub-agent raises when a turn proposes risky calls. */
export const ApprovalRequest = z.object({
  kind: z.literal("approval"),
  task_id: z.string().describe("The AgentTask that proposed the actions"),
  agent: AgentType.describe("The sub-agent"),
  objective: z.string().describe("What the task is for, so the reviewer has the context"),
  actions: z.array(PendingAction).min(1).describe("Every action waiting, in the order proposed"),
});
export type ApprovalRequest = z.infer<typeof ApprovalRequest>;

/** A person's decision on one action. */
export const ApprovalDecision = z.object({
  action: z
    .enum(["approve", "edit", "reject"])
    .describe("approve as proposed, approve with edited arguments, or reject"),
  args: z.record(z.string(), z.unknown()).optional().describe("With edit: the arguments to change"),
  reason: z.string().optional().describe("Why; shown to the agent on reject"),
  reviewer: z.string().optional().describe("Who decided"),
});
export type ApprovalDecision = z.infer<typeof ApprovalDecision>;

/** What resumes the interrupt: one decision for every pending action, or one per tool call id. */
export const ApprovalResume = z.union([
  ApprovalDecision,
  z.object({ decisions: z.record(z.string(), ApprovalDecision).describe("Decision per tool_call_id") }),
]);
export type ApprovalResume = z.infer<typeof ApprovalResume>;

/** Maps a resume value onto the pending actions; a malformed or incomplete answer is refused, not guessed. */
export function resolveDecisions(
  resume: unknown,
  pending: readonly PendingAction[],
): Map<string, ApprovalDecision> {
  const parsed = ApprovalResume.safeParse(resume);
  if (!parsed.success) {
    throw new InputError(
      `The approval answer is not valid (${parsed.error.issues.map((i) => i.message).join("; ")}). ` +
        'Resume with {"action": "approve"}, {"action": "reject", "reason": "…"} or {"action": "edit", "args": {…}}.',
      "invalid_argument",
    );
  }
  const decisions = new Map<string, ApprovalDecision>();
  for (const action of pending) {
    const decision = "decisions" in parsed.data ? parsed.data.decisions[action.tool_call_id] : parsed.data;
    if (!decision) {
      throw new InputError(
        `No decision was given for ${action.tool} (${action.tool_call_id}).`,
        "invalid_argument",
      );
    }
    if (decision.action === "edit" && !decision.args) {
      throw new InputError(
        `An edit of ${action.tool} needs "args" with the new arguments.`,
        "invalid_argument",
      );
    }
    decisions.set(action.tool_call_id, decision);
  }
  return decisions;
}

/**
 * Edited arguments must name only fields the tool has (a misspelt field would be dropped and the original sent)
 * and must still satisfy each tool's contract; callers check before touching the run.
 */
export function checkEditedArgs(actions: readonly PendingAction[], edit: Record<string, unknown>): void {
  for (const action of actions) {
    const tool = TOOLS.get(action.tool);
    if (!tool) continue;
    // The arguments the tool declares (as the policy file may name them), less the confidence the model states.
    const fields = (POLICY_CATALOG.tools.get(tool.name)?.args ?? []).filter((f) => f !== CONFIDENCE_ARG);
    for (const field of Object.keys(edit)) {
      if (fields.includes(field)) continue;
      const near = closestName(field, fields);
      const hint = near ? `did you mean "${near}"?` : `its fields: ${fields.join(", ")}.`;
      throw new InputError(
        `The edit names "${field}", which is not a field of ${action.tool}; ${hint} Nothing was changed.`,
        "invalid_argument",
      );
    }
    const checked = validateArgs(tool, { ...(action.args as object), ...edit });
    if (!checked.ok) {
      throw new InputError(
        `The edited arguments for ${action.tool} are not valid: ${checked.error}.`,
        "invalid_argument",
      );
    }
  }
}

/** One field an edit changed, for the reviewer who approves the edited call. */
export const EditChange = z.object({
  field: z.string().describe("The argument"),
  from: z.unknown().describe("What the agent proposed"),
  to: z.unknown().describe("What the edit sets"),
});
export type EditChange = z.infer<typeof EditChange>;

/** What an edit changes in one action's arguments. */
export function editChanges(action: PendingAction, edit: Record<string, unknown>): EditChange[] {
  const before = (action.args ?? {}) as Record<string, unknown>;
  return Object.entries(edit)
    .filter(([field, to]) => JSON.stringify(before[field]) !== JSON.stringify(to))
    .map(([field, to]) => ({ field, from: before[field], to }));
}

/**
 * The policy's decision for an action as edited: the same rules as for the agent's own call, on the edited
 * arguments (a stated confidence does not carry over: a person's edit is judged on its own).
 */
export function decideEdit(
  action: PendingAction,
  agent: AgentType,
  edit: Record<string, unknown>,
  policy: RiskPolicy,
  instruction?: Instruction,
): PolicyDecision {
  const tool = TOOLS.get(action.tool);
  if (!tool) return { decision: "sync_approval", reasons: [`${action.tool} is not a known tool`] };
  // The provenance rule holds for a reviewer too: a target the edit changes to one the requester did not
  // name came from the reviewer, and a second person approves it.
  const before = (action.args ?? {}) as Record<string, unknown>;
  const target = tool.target && edit[tool.target.arg];
  const changed = tool.target && typeof target === "string" && target !== before[tool.target.arg];
  const source =
    changed && tool.target
      ? instruction
        ? provenanceOf(target, tool.target.kind, instruction, [])
        : "the reviewer's edit"
      : undefined;
  return decideCall(
    {
      tool: tool.name,
      agent,
      risk: tool.risk,
      reversible: tool.reversible,
      effects: tool.effects,
      args: { ...before, ...edit },
      untrustedTarget:
        source && tool.target && typeof target === "string"
          ? {
              arg: tool.target.arg,
              value: target,
              source: source.startsWith("the model") ? "the reviewer's edit" : source,
            }
          : undefined,
    },
    policy,
  );
}
