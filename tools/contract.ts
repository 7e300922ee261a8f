import { z } from "zod";
import type { AgentType } from "../agents/contracts.js";
import { isKeelError } from "../core/errors.js";
import type { ToolContext } from "./context.js";
import { recordToolCall } from "./log.js";

/** How much harm a tool can do; `high` and `critical` wait for a person before they run. */
export const RiskTier = z.enum(["low", "medium", "high", "critical"]).describe("Risk tier of a tool");
export type RiskTier = z.infer<typeof RiskTier>;

export interface ToolSpec<I extends z.ZodType, O extends z.ZodType> {
  name: string;
  description: string;
  input: I;
  output: O;
  risk: RiskTier;
  /** The sub-agents that may be offered this tool; offering it to another throws when the graph is built. */
  agents: readonly AgentType[];
  timeoutMs: number;
  run: (args: z.infer<I>, ctx: ToolContext) => Promise<z.infer<O>>;
}

/** A tool declared through the one contract every Keel tool goes through. */
export interface KeelTool<I extends z.ZodType = z.ZodType, O extends z.ZodType = z.ZodType> extends ToolSpec<
  I,
  O
> {
  readonly needsApproval: boolean;
  /** The OpenAI-style function definition offered to the model. */
  readonly definition: {
    type: "function";
    function: { name: string; description: string; parameters: object };
  };
}

const NAME = /^[a-z][a-z0-9_]{1,63}$/;

export function defineTool<I extends z.ZodType, O extends z.ZodType>(spec: ToolSpec<I, O>): KeelTool<I, O> {
  if (!NAME.test(spec.name)) throw new Error(`Tool name "${spec.name}" must be snake_case (a-z, 0-9, _).`);
  if (spec.agents.length === 0) throw new Error(`Tool "${spec.name}" is offered to no agent.`);
  const parameters = z.toJSONSchema(spec.input, { io: "input" }) as Record<string, unknown>;
  delete parameters.$schema;
  return {
    ...spec,
    needsApproval: spec.risk === "high" || spec.risk === "critical",
    definition: {
      type: "function",
      function: { name: spec.name, description: spec.description, parameters },
    },
  };
}

/** The outcome of one tool call, as the agent sees it and as it is logged. */
export type ToolOutcome =
  | { status: "ok"; output: unknown; content: string }
  | { status: "invalid_arguments" | "error" | "rejected"; content: string; error: string };

function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((i) => `${i.path.length ? i.path.join(".") : "arguments"}: ${i.message}`)
    .join("; ");
}

/** Validates arguments against the tool's input schema without running it. */
export function validateArgs(
  tool: KeelTool,
  args: unknown,
): { ok: true; args: unknown } | { ok: false; error: string } {
  const parsed = tool.input.safeParse(args);
  return parsed.success
    ? { ok: true, args: parsed.data }
    : { ok: false, error: describeIssues(parsed.error) };
}

/**
 * Runs one tool call under the contract: validate input, run with the tool's timeout (the abort signal reaches
 * the tool), validate output (a tool whose output breaks its schema fails closed). Errors become outcomes the
 * agent can read and react to; they do not crash the graph.
 */
export async function executeTool(tool: KeelTool, args: unknown, ctx: ToolContext): Promise<ToolOutcome> {
  const started = performance.now();
  const outcome = await runContract(tool, args, ctx);
  await recordToolCall(ctx, tool.name, args, outcome, performance.now() - started);
  return outcome;
}

async function runContract(tool: KeelTool, args: unknown, ctx: ToolContext): Promise<ToolOutcome> {
  const checked = validateArgs(tool, args);
  if (!checked.ok) {
    const error = `Invalid arguments for ${tool.name}: ${checked.error}. Fix the arguments and call the tool again.`;
    return { status: "invalid_arguments", content: error, error };
  }
  const signal = AbortSignal.any([ctx.signal, AbortSignal.timeout(tool.timeoutMs)]);
  try {
    const raw: unknown = await tool.run(checked.args, { ...ctx, signal });
    const output = tool.output.safeParse(raw);
    if (!output.success) {
      const error = `${tool.name} returned output that breaks its contract (${describeIssues(output.error)}); the result was discarded.`;
      return { status: "error", content: error, error };
    }
    return { status: "ok", output: output.data, content: JSON.stringify(output.data) };
  } catch (error) {
    const timedOut = signal.aborted && !ctx.signal.aborted;
    const message = timedOut
      ? `${tool.name} timed out after ${tool.timeoutMs} ms.`
      : isKeelError(error) || error instanceof Error
        ? `${tool.name} failed: ${error.message}`
        : `${tool.name} failed: ${String(error)}`;
    if (ctx.signal.aborted) throw error; // the whole task was cancelled or timed out: stop, do not report back
    return { status: "error", content: message, error: message };
  }
}

/** Throws at build time when a tool list breaks the wiring rules. */
export function checkToolWiring(agent: AgentType, tools: readonly KeelTool[]): void {
  const seen = new Set<string>();
  for (const tool of tools) {
    if (seen.has(tool.name)) throw new Error(`Agent "${agent}" is offered two tools named "${tool.name}".`);
    seen.add(tool.name);
    if (!tool.agents.includes(agent)) {
      throw new Error(
        `Tool "${tool.name}" may not be offered to agent "${agent}" (allowed: ${tool.agents.join(", ")}).`,
      );
    }
  }
}
