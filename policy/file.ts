import fs from "node:fs";
import { parse as parseYaml, YAMLParseError } from "yaml";
import { z } from "zod";
import { InputError } from "../core/errors.js";
import { Budgets, DEFAULT_BUDGETS } from "./budget.js";
import { RiskPolicy } from "./risk.js";
import { DEFAULT_SCOPE, ScopePolicy } from "./scope.js";
import { PriceTable } from "./prices.js";
import { DEFAULT_SLO_TARGETS, SloPolicy } from "./slo-targets.js";

/**
 * `keel.policy.yaml`: who may do what without a person, the task boundary, the budgets of a task tree, service-
 * level targets and model prices.
 * Every field has a default, so an empty file (or none) is the documented default policy.
 */
export const Policy = z
  .object({
    version: z.literal(1).default(1).describe("Policy file format version"),
    ...RiskPolicy.shape,
    scope: ScopePolicy.default(DEFAULT_SCOPE).describe("Allowed intents and prohibited actions"),
    budgets: Budgets.partial()
      .default({})
      .transform((b) => ({ ...DEFAULT_BUDGETS, ...b }))
      .describe("Limits per task tree"),
    slo: SloPolicy.default({ targets: DEFAULT_SLO_TARGETS, workflows: {} }).describe(
      "Service-level targets keel slo checks, per workflow",
    ),
    prices: PriceTable.default({}).describe("Model prices over the built-in table"),
  })
  .strict();
export type Policy = z.infer<typeof Policy>;

export const DEFAULT_POLICY: Policy = Policy.parse({});

/** Parses a policy file's text; `source` names it in errors. */
export function parsePolicy(text: string, source: string): Policy {
  let raw: unknown;
  try {
    raw = parseYaml(text) ?? {};
  } catch (error) {
    const where = error instanceof YAMLParseError && error.linePos ? ` at line ${error.linePos[0].line}` : "";
    throw new InputError(
      `${source} is not valid YAML${where}: ${(error as Error).message.split("\n")[0]}. Fix the file or remove it to use the default policy.`,
      "configuration_error",
    );
  }
  const parsed = Policy.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues
      .map((i) => `${i.path.length ? i.path.join(".") : "(top level)"}: ${i.message}`)
      .join("; ");
    throw new InputError(
      `${source} is not a valid Keel policy: ${problems}. See keel.policy.example.yaml for every field.`,
      "configuration_error",
    );
  }
  for (const rule of parsed.data.rules) {
    for (const pattern of [rule.matches, rule.not_matches]) {
      if (pattern === undefined) continue;
      try {
        new RegExp(pattern);
      } catch {
        throw new InputError(
          `${source}: rule for ${rule.tool} has an invalid regular expression ${pattern}.`,
          "configuration_error",
        );
      }
    }
  }
  return parsed.data;
}

/** The policy in force: the file at `path` when given (it must exist), else the defaults. */
export function loadPolicy(path: string | undefined): Policy {
  if (!path) return DEFAULT_POLICY;
  let text: string;
  try {
    text = fs.readFileSync(path, "utf8");
  } catch (error) {
    throw new InputError(
      `Cannot read the policy file ${path} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}). Check KEEL_POLICY_FILE, or unset it to use the default policy.`,
      "configuration_error",
    );
  }
  return parsePolicy(text, path);
}
