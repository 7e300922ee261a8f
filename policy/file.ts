import fs from "node:fs";
import { isMap, LineCounter, parseDocument, type Document } from "yaml";
import { z } from "zod";
import { InputError } from "../core/errors.js";
import { closestName } from "../core/names.js";
import { Budgets, DEFAULT_BUDGETS } from "./budget.js";
import { RiskPolicy } from "./risk.js";
import { DEFAULT_SCOPE, ScopePolicy } from "./scope.js";
import { PriceTable } from "./prices.js";
import { DEFAULT_CHECKPOINT_RETENTION, RetentionPolicy } from "./retention.js";
import { DEFAULT_ROLLOUT_POLICY, RolloutPolicy } from "./rollout.js";
import { DEFAULT_SLO_TARGETS, SloPolicy } from "./slo-targets.js";

/**
 * `keel.policy.yaml`: who may do what without a person, the task boundary, the budgets of a task tree, service-
 * level targets, model prices, the retention of finished threads' checkpoints, and how rollouts are judged.
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
    retention: RetentionPolicy.default({ checkpoints: DEFAULT_CHECKPOINT_RETENTION, workflows: {} }).describe(
      "What finished threads keep of their checkpoints, per workflow",
    ),
    rollout: RolloutPolicy.default(DEFAULT_ROLLOUT_POLICY).describe(
      "How a rollout's steps are judged, and where a rollback is announced",
    ),
  })
  .strict();
export type Policy = z.infer<typeof Policy>;

export const DEFAULT_POLICY: Policy = Policy.parse({});

/**
 * What the policy file may name: every tool with its arguments and the agents it is offered to, and every agent.
 * Built from the tool registry (`agents/index.ts`, `POLICY_CATALOG`); this folder does not import the tools.
 */
export interface PolicyCatalog {
  tools: ReadonlyMap<string, { args: readonly string[]; agents: readonly string[] }>;
  agents: readonly string[];
}

/**
 * Parses a policy file's text; `source` names it in errors. With a catalog, a rule that names a tool, agent or
 * argument that does not exist (it could never apply) is an error with its line and the closest valid name.
 */
export function parsePolicy(text: string, source: string, catalog?: PolicyCatalog): Policy {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  if (doc.errors.length > 0) {
    const error = doc.errors[0]!;
    const where = ` at line ${lines.linePos(error.pos[0]).line}`;
    throw new InputError(
      `${source} is not valid YAML${where}: ${error.message.split("\n")[0]}. Fix the file or remove it to use the default policy.`,
      "configuration_error",
    );
  }
  let raw: unknown;
  try {
    // Aliases are resolved here, not when parsing: an alias to an anchor that does not exist throws now.
    raw = doc.toJS({ maxAliasCount: 100 }) ?? {};
  } catch (error) {
    throw new InputError(
      `${source} is not valid YAML: ${(error as Error).message}. Fix the file or remove it to use the default policy.`,
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
  if (catalog) checkNames(parsed.data, catalog, source, doc, lines);
  return parsed.data;
}

/** Refuses names a rule could never match, pointing at the line and the closest valid name. */
function checkNames(
  policy: Policy,
  catalog: PolicyCatalog,
  source: string,
  doc: Document,
  lines: LineCounter,
): void {
  const problems: string[] = [];
  const lineOf = (path: (string | number)[], key = false): string => {
    const parentPath = key ? path.slice(0, -1) : path;
    const node = doc.getIn(parentPath, true) as { range?: [number, number] } | undefined;
    let range = node?.range;
    if (key && isMap(node)) {
      const pair = node.items.find((p) => (p.key as { value?: unknown } | null)?.value === path.at(-1));
      range = (pair?.key as { range?: [number, number] } | undefined)?.range ?? range;
    }
    return range ? `line ${lines.linePos(range[0]).line}` : "(line unknown)";
  };
  const hint = (name: string, valid: readonly string[]) => {
    if (valid.length === 0) return "";
    const near = closestName(name, valid);
    return near ? `; did you mean "${near}"?` : `; valid: ${valid.join(", ")}`;
  };
  const toolNames = [...catalog.tools.keys()];
  const unknownTool = (name: string, path: (string | number)[], key: boolean) =>
    `${lineOf(path, key)}: ${path.join(".")} names the tool "${name}", which does not exist${hint(name, toolNames)}`;
  for (const [name, override] of Object.entries(policy.tools)) {
    const tool = catalog.tools.get(name);
    if (!tool) {
      problems.push(unknownTool(name, ["tools", name], true));
      continue;
    }
    for (const agent of Object.keys(override.agents ?? {})) {
      if (tool.agents.includes(agent)) continue;
      const path = ["tools", name, "agents", agent];
      problems.push(
        catalog.agents.includes(agent)
          ? `${lineOf(path, true)}: ${path.join(".")}: ${name} is not offered to the ${agent} agent (only to ${tool.agents.join(", ")}), so the rule could never apply`
          : `${lineOf(path, true)}: ${path.join(".")} names the agent "${agent}", which does not exist${hint(agent, catalog.agents)}`,
      );
    }
  }
  policy.rules.forEach((rule, i) => {
    const tool = catalog.tools.get(rule.tool);
    if (!tool) {
      problems.push(unknownTool(rule.tool, ["rules", i, "tool"], false));
      return;
    }
    if (!tool.args.includes(rule.arg)) {
      problems.push(
        `${lineOf(["rules", i, "arg"])}: rules.${i}.arg names "${rule.arg}", which is not an argument of ${rule.tool}${hint(rule.arg, tool.args)}`,
      );
    }
  });
  if (problems.length > 0) {
    throw new InputError(
      `${source} names what does not exist, so these rules would never apply: ${problems.join("; ")}.`,
      "configuration_error",
    );
  }
}

/** The policy in force: the file at `path` when given (it must exist), else the defaults. */
export function loadPolicy(path: string | undefined, catalog: PolicyCatalog): Policy {
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
  return parsePolicy(text, path, catalog);
}
