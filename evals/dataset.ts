import { createHash } from "node:crypto";
import fs from "node:fs";
import { z } from "zod";
import { AGENT_TYPES } from "../agents/contracts.js";
import { InputError } from "../core/errors.js";

/** How a tool call's arguments are compared with the expected ones (agentevals' modes). */
export const ArgsMatch = z
  .enum(["exact", "ignore", "subset", "superset"])
  .describe(
    "exact: equal; ignore: not compared; superset: the actual args include the expected ones; subset: the reverse",
  );

export const ExpectedCall = z
  .object({
    tool: z.string().min(1).describe("Tool name"),
    args: z
      .record(z.string(), z.unknown())
      .default({})
      .describe("Expected arguments (compared per args_match)"),
  })
  .strict();

/** The expected trajectory: which tool calls, matched how. */
export const ExpectedTrajectory = z
  .object({
    mode: z
      .enum(["strict", "unordered", "subset", "superset"])
      .describe(
        "strict: same calls in order; unordered: same calls; subset: no call outside these; superset: at least these",
      ),
    calls: z.array(ExpectedCall).describe("The reference tool calls, in order"),
    args_match: ArgsMatch.default("ignore").describe("Default argument matching"),
    per_tool: z.record(z.string(), ArgsMatch).default({}).describe("Argument matching per tool"),
  })
  .strict();

/** What a person answers when the case's run asks for approval, in the order asked. */
export const CaseApproval = z
  .object({
    action: z.enum(["approve", "reject", "edit"]),
    args: z.record(z.string(), z.unknown()).optional().describe("For edit: the changed arguments"),
    reason: z.string().optional(),
  })
  .strict();

/** One golden case. */
export const EvalCase = z
  .object({
    id: z
      .string()
      .regex(/^[a-z0-9][a-z0-9_.-]*$/)
      .describe("Unique id"),
    tags: z.array(z.string().min(1)).min(1).describe("Groups for --filter and the report"),
    request: z.string().min(1).describe("What is asked"),
    approvals: z.array(CaseApproval).default([]).describe("Answers to approvals, in order"),
    faults: z
      .array(z.object({ tool: z.string(), failures: z.number().int().positive() }).strict())
      .default([])
      .describe("Transient failures injected into a tool's first calls"),
    expect: z
      .object({
        status: z.enum(["done", "failed", "blocked"]).describe("How the request ends"),
        reason: z.string().optional().describe("For blocked or failed: the reason it must give"),
        agents: z.array(z.enum(AGENT_TYPES)).optional().describe("The agents of the plan, in plan order"),
        answer_contains: z.array(z.string()).default([]).describe("Facts the answer must state"),
        values: z
          .array(z.string())
          .default([])
          .describe("Exact values from the data the answer must contain"),
        approvals: z.number().int().nonnegative().default(0).describe("Approvals the run must ask for"),
        outbox: z
          .object({
            must: z
              .array(z.object({ to: z.string(), subject_contains: z.string().optional() }).strict())
              .default([]),
            must_not: z.array(z.object({ to: z.string() }).strict()).default([]),
            count: z.number().int().nonnegative().optional().describe("Exactly this many queued messages"),
          })
          .strict()
          .optional(),
        trajectory: ExpectedTrajectory.optional(),
      })
      .strict(),
  })
  .strict();
export type EvalCase = z.infer<typeof EvalCase>;

export interface Dataset {
  path: string;
  /** What a baseline is tied to: the name and a hash of the case ids. */
  name: string;
  fingerprint: string;
  cases: EvalCase[];
}

/** Reads a JSONL dataset; every bad line is reported with its number, and nothing runs. */
export function loadDataset(path: string): Dataset {
  let text: string;
  try {
    text = fs.readFileSync(path, "utf8");
  } catch (error) {
    throw new InputError(
      `Cannot read the dataset ${path} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}). Give an existing JSONL file with --dataset.`,
    );
  }
  const problems: string[] = [];
  const cases: EvalCase[] = [];
  const seen = new Set<string>();
  text.split("\n").forEach((line, i) => {
    if (!line.trim() || line.trimStart().startsWith("//")) return;
    let raw: unknown;
    try {
      raw = JSON.parse(line);
    } catch (error) {
      problems.push(`line ${i + 1}: not JSON (${(error as Error).message})`);
      return;
    }
    const parsed = EvalCase.safeParse(raw);
    if (!parsed.success) {
      const issues = parsed.error.issues
        .map((x) => `${x.path.join(".") || "(case)"}: ${x.message}`)
        .join("; ");
      problems.push(`line ${i + 1}: ${issues}`);
      return;
    }
    if (seen.has(parsed.data.id)) problems.push(`line ${i + 1}: case id ${parsed.data.id} is used twice`);
    seen.add(parsed.data.id);
    cases.push(parsed.data);
  });
  if (problems.length) {
    throw new InputError(`${path} has ${problems.length} bad line(s):\n  ${problems.join("\n  ")}`);
  }
  if (cases.length === 0) throw new InputError(`${path} holds no cases.`);
  const fingerprint = createHash("sha256")
    .update(cases.map((c) => c.id).join("\n"))
    .digest("hex")
    .slice(0, 16);
  const name = path
    .split("/")
    .pop()!
    .replace(/\.jsonl$/, "");
  return { path, name, fingerprint, cases };
}

/** The cases carrying `tag`; an unknown tag is an error that lists the known ones. */
export function filterCases(dataset: Dataset, tag: string | undefined): EvalCase[] {
  if (!tag) return dataset.cases;
  const picked = dataset.cases.filter((c) => c.tags.includes(tag));
  if (picked.length === 0) {
    const known = [...new Set(dataset.cases.flatMap((c) => c.tags))].sort();
    throw new InputError(`No case in ${dataset.name} has the tag "${tag}". Tags: ${known.join(", ")}.`);
  }
  return picked;
}
