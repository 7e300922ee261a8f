import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import stableStringify from "fast-json-stable-stringify";
import { parseDocument } from "yaml";
import { z } from "zod";
import { KeelConfig } from "../../core/config.js";
import { InputError } from "../../core/errors.js";
import { modelInfo } from "../../graphs/deps.js";
import { DEFAULT_PROMPTS, MODEL_ROLES } from "../../graphs/prompts.js";
import { parsePolicy, Policy, type PolicyCatalog } from "../../policy/file.js";

/** The model a release runs: its name and endpoint, never its key (OPENAI_API_KEY stays in the environment). */
export const ReleaseModel = z
  .object({
    name: z
      .string()
      .min(1)
      .describe("The model's name at its endpoint, or 'offline' for Keel's offline model"),
    base_url: z
      .string()
      .url()
      .optional()
      .describe("Its OpenAI-compatible endpoint; unset: the worker's OPENAI_BASE_URL (or OpenAI's own)"),
    max_tokens: z.number().int().positive().describe("Most tokens one model reply may use"),
    temperature: z.number().min(0).max(2).default(0).describe("Sampling temperature"),
  })
  .strict();
export type ReleaseModel = z.infer<typeof ReleaseModel>;

const promptShape = Object.fromEntries(
  MODEL_ROLES.map((role) => [role, z.string().min(1).describe(`The ${role}'s system prompt`)]),
) as Record<(typeof MODEL_ROLES)[number], z.ZodString>;

/** The system prompt of every role, written out in full: a release does not change when Keel's built-ins do. */
export const ReleasePrompts = z.object(promptShape).strict();
export type ReleasePrompts = z.infer<typeof ReleasePrompts>;

/** Everything that changes how an agent behaves, as one immutable bundle. */
export const ReleaseSpec = z
  .object({
    graph: z.enum(["orchestrator"]).describe("The graph the release's tasks run"),
    model: ReleaseModel,
    prompts: ReleasePrompts,
    policy: Policy.describe(
      "The policy file's content: risk rules, scope, budgets, SLO targets, prices, retention",
    ),
    limits: KeelConfig.shape.limits,
  })
  .strict();
export type ReleaseSpec = z.infer<typeof ReleaseSpec>;

/**
 * A release file (`keel release create NAME --file F`): each part is optional and what it leaves out is taken
 * from the current configuration (the model and limits of the environment, the policy file in force, the
 * built-in prompts).
 */
export const ReleaseFile = z
  .object({
    description: z.string().max(500).optional().describe("One line on what this release changes"),
    graph: z.enum(["orchestrator"]).optional().describe("The graph its tasks run"),
    model: ReleaseModel.partial().strict().optional().describe("Model settings over the current ones"),
    prompts: ReleasePrompts.partial()
      .strict()
      .optional()
      .describe("System prompts that replace the built-ins"),
    policy_file: z.string().min(1).optional().describe("A policy file, relative to the release file"),
    policy: z.record(z.string(), z.unknown()).optional().describe("A policy written inline"),
    limits: KeelConfig.shape.limits.partial().strict().optional().describe("Limits over the current ones"),
  })
  .strict()
  .refine((f) => !(f.policy && f.policy_file), { message: "give policy or policy_file, not both" });
export type ReleaseFile = z.infer<typeof ReleaseFile>;

/** The release of the current configuration: its model, its limits, the policy in force, the built-in prompts. */
export function specFromConfig(config: KeelConfig, policy: Policy): ReleaseSpec {
  const model = modelInfo(config);
  return ReleaseSpec.parse({
    graph: "orchestrator",
    model: {
      name: model.name,
      ...(model.provider === "openai" && config.model.baseURL ? { base_url: config.model.baseURL } : {}),
      max_tokens: config.model.maxTokens,
      temperature: config.model.temperature ?? 0,
    },
    prompts: DEFAULT_PROMPTS,
    policy,
    limits: config.limits,
  });
}

/** Reads a release file (YAML or JSON) into a spec; every problem is an InputError naming the file and the field. */
export function specFromFile(
  file: string,
  config: KeelConfig,
  currentPolicy: Policy,
  catalog: PolicyCatalog,
): { spec: ReleaseSpec; description?: string } {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (error) {
    throw new InputError(
      `Cannot read the release file ${file} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}). Give the path of a YAML or JSON file.`,
    );
  }
  const doc = parseDocument(text, { prettyErrors: false });
  if (doc.errors.length > 0)
    throw new InputError(
      `${file} is not valid YAML: ${doc.errors[0]!.message.split("\n")[0]}. Fix the file.`,
    );
  const parsed = ReleaseFile.safeParse(doc.toJS({ maxAliasCount: 100 }) ?? {});
  if (!parsed.success) {
    const problems = parsed.error.issues
      .map((i) => `${i.path.length ? i.path.join(".") : "(top level)"}: ${i.message}`)
      .join("; ");
    throw new InputError(
      `${file} is not a valid release file: ${problems}. It may give description, graph, model, prompts, policy or policy_file, and limits.`,
    );
  }
  const f = parsed.data;
  let policy = currentPolicy;
  if (f.policy_file) {
    const policyPath = path.resolve(path.dirname(file), f.policy_file);
    let policyText: string;
    try {
      policyText = fs.readFileSync(policyPath, "utf8");
    } catch (error) {
      throw new InputError(
        `${file}: policy_file ${f.policy_file} cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}); paths are relative to the release file.`,
      );
    }
    policy = parsePolicy(policyText, policyPath, catalog);
  } else if (f.policy) {
    policy = parsePolicy(JSON.stringify(f.policy), `${file} (policy)`, catalog);
  }
  const base = specFromConfig(config, policy);
  const spec = ReleaseSpec.parse({
    graph: f.graph ?? base.graph,
    model: { ...base.model, ...f.model },
    prompts: { ...base.prompts, ...f.prompts },
    policy,
    limits: { ...base.limits, ...f.limits },
  });
  return { spec, description: f.description };
}

/** The SHA-256 of a spec's JSON with sorted keys: equal bundles have equal digests, whatever the key order. */
export function digestOf(spec: ReleaseSpec): string {
  return createHash("sha256").update(stableStringify(spec)).digest("hex");
}
