import { z } from "zod";
import { highRiskPii } from "./pii.js";

/** How much harm a tool can do. */
export const RiskTier = z.enum(["low", "medium", "high", "critical"]).describe("Risk tier of a tool");
export type RiskTier = z.infer<typeof RiskTier>;

/** Where a tool's side effect lands: nowhere (read-only), Keel's own database, or an outside system. */
export const EffectScope = z
  .enum(["none", "internal", "external"])
  .describe("none: read-only; internal: Keel's database (exactly once); external: an outside system");
export type EffectScope = z.infer<typeof EffectScope>;

/** What the policy decides for one tool call. */
export const Decision = z
  .enum(["autonomous", "logged", "async_approval", "sync_approval"])
  .describe(
    "autonomous: runs; logged: runs and is flagged for audit; async_approval: waits for any reviewer; sync_approval: the tree waits for a second person's typed confirmation",
  );
export type Decision = z.infer<typeof Decision>;

const ORDER: readonly Decision[] = ["autonomous", "logged", "async_approval", "sync_approval"];

export const needsApproval = (d: Decision): boolean => d === "async_approval" || d === "sync_approval";

/** The stricter of two decisions. */
export const stricter = (a: Decision, b: Decision): Decision =>
  ORDER.indexOf(a) >= ORDER.indexOf(b) ? a : b;

/** One argument rule of the policy file: a call whose argument matches gets at least `decision`. */
export const ArgumentRule = z
  .object({
    tool: z.string().describe("Tool the rule applies to"),
    arg: z.string().describe("Top-level argument name"),
    matches: z.string().optional().describe("Regular expression the argument's text matches"),
    not_matches: z.string().optional().describe("Regular expression the argument's text does not match"),
    decision: Decision,
    reason: z.string().describe("Why, recorded with the decision"),
  })
  .strict()
  .refine((r) => r.matches !== undefined || r.not_matches !== undefined, {
    message: "a rule needs matches or not_matches",
  });
export type ArgumentRule = z.infer<typeof ArgumentRule>;

export const DEFAULT_TIERS: Readonly<Record<RiskTier, Decision>> = {
  low: "autonomous",
  medium: "logged",
  high: "async_approval",
  critical: "sync_approval",
};

/** The part of the policy file that decides tool calls. Defaults are the documented table. */
export const RiskPolicy = z
  .object({
    tiers: z
      .object({ low: Decision, medium: Decision, high: Decision, critical: Decision })
      .partial()
      .strict()
      .default({})
      .transform((tiers) => ({ ...DEFAULT_TIERS, ...tiers }))
      .describe("Decision per risk tier; tiers left out keep their default"),
    low_confidence_below: z
      .number()
      .min(0)
      .max(1)
      .default(0.7)
      .describe("A stated confidence below this (or none) is low"),
    tools: z
      .record(
        z.string(),
        z
          .object({
            risk: RiskTier.optional(),
            decision: Decision.optional(),
            agents: z.record(z.string(), Decision).optional(),
          })
          .strict(),
      )
      .default({})
      .describe("Per tool: another risk tier, a fixed decision, or a decision per calling agent"),
    rules: z.array(ArgumentRule).default([]).describe("Decisions by argument value"),
  })
  .strict();
export type RiskPolicy = z.infer<typeof RiskPolicy>;

/** Everything a decision depends on; recorded with it, so "why did this need a person" has an answer. */
export interface DecisionInput {
  tool: string;
  agent: string;
  risk: RiskTier;
  reversible: boolean;
  effects: EffectScope;
  args: unknown;
  /** What the model stated; missing counts as low. */
  confidence?: number;
  /**
   * The call's target (recipient, channel, URL) when it is not in the requester's own instruction, and where it
   * came from instead (`provenance.ts`).
   */
  untrustedTarget?: { arg: string; value: string; source: string };
}

export interface PolicyDecision {
  decision: Decision;
  reasons: string[];
}

/**
 * The one function that decides whether a tool call runs on its own, runs and is flagged, or waits for a
 * person. Starts from the tier (or the tool's override), then only ever escalates: argument rules, and a
 * low-confidence call to a tool that writes or cannot be undone.
 */
export function decide(input: DecisionInput, policy: RiskPolicy): PolicyDecision {
  const override = policy.tools[input.tool];
  const risk = override?.risk ?? input.risk;
  let decision = policy.tiers[risk];
  const reasons = [`${input.tool} is ${risk} risk, and ${risk} risk means ${decision.replace("_", " ")}`];
  const fixed = override?.agents?.[input.agent] ?? override?.decision;
  if (fixed) {
    decision = fixed;
    reasons.push(
      `the policy file sets ${input.tool}${override?.agents?.[input.agent] ? ` for ${input.agent}` : ""} to ${fixed}`,
    );
  }
  const args = (input.args ?? {}) as Record<string, unknown>;
  for (const rule of policy.rules) {
    if (rule.tool !== input.tool || !(rule.arg in args)) continue;
    const text =
      typeof args[rule.arg] === "string" ? (args[rule.arg] as string) : JSON.stringify(args[rule.arg]);
    const hit =
      (rule.matches === undefined || new RegExp(rule.matches, "i").test(text)) &&
      (rule.not_matches === undefined || !new RegExp(rule.not_matches, "i").test(text));
    if (hit && stricter(decision, rule.decision) !== decision) {
      decision = rule.decision;
      reasons.push(`${rule.reason}: ${rule.decision}`);
    }
  }
  const writes = input.effects !== "none";
  // The right half of the guardrail sandwich: a call that would carry payment or national-id data out of the
  // task needs the strongest approval, whatever else the policy says.
  const carried = writes ? highRiskPii(input.args) : [];
  if (carried.length > 0 && decision !== "sync_approval") {
    decision = "sync_approval";
    reasons.push(
      `the call carries high-risk personal data (${carried.join(", ")}): a second person must approve it (sync approval)`,
    );
  }
  // The provenance rule: a side effect aimed somewhere the requester did not name needs the strongest approval.
  const foreign = writes ? input.untrustedTarget : undefined;
  if (foreign && decision !== "sync_approval") {
    decision = "sync_approval";
    reasons.push(
      `the ${foreign.arg} ${foreign.value} is not in the requester's instruction; it came from ${foreign.source}: a second person must approve it (sync approval)`,
    );
  }
  const low = input.confidence === undefined || input.confidence < policy.low_confidence_below;
  if (low && (writes || !input.reversible) && !needsApproval(decision)) {
    decision = "async_approval";
    reasons.push(
      `${input.confidence === undefined ? "no confidence was stated" : `confidence ${input.confidence} is below ${policy.low_confidence_below}`} for a tool that ${writes ? "writes" : "cannot be undone"}: a person decides`,
    );
  }
  return { decision, reasons };
}
