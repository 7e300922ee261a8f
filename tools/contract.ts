import { SpanStatusCode } from "@opentelemetry/api";
import { RateLimiterMemory, RateLimiterQueue } from "rate-limiter-flexible";
import { z } from "zod";
import type { AgentType } from "../agents/contracts.js";
import { isKeelError, OutputContractError, TransientError, WiringError } from "../core/errors.js";
import { boundedSignal } from "../core/signals.js";
import { inSpan, KEEL, recordSpan } from "../observability/spans.js";
import { guardToolOutput, NEUTRALISED_NOTICE } from "../policy/guard.js";
import { redact, redactDeep } from "../policy/pii.js";
import type { EffectScope, RiskTier } from "../policy/risk.js";
import type { TargetKind } from "../policy/provenance.js";
import type { ToolContext } from "./context.js";
import { runEffect } from "./ledger.js";
import { recordGuardrailEvent } from "../observability/audit.js";
import { recordToolCall, toolCallStep } from "./log.js";
import { recordStep } from "../observability/trajectory.js";
import type pg from "pg";

export { EffectScope, RiskTier } from "../policy/risk.js";

/** What a compensation receives: the call as it committed. */
export interface CommittedCall {
  args: unknown;
  output: unknown;
}

export interface ToolSpec<I extends z.ZodType, O extends z.ZodType> {
  name: string;
  description: string;
  input: I;
  output: O;
  risk: RiskTier;
  /** Where the side effect lands: none (read-only), Keel's database (exactly once), an outside system. */
  effects: EffectScope;
  /** Whether a committed call can be undone by `compensate`. Read-only tools count as reversible. */
  reversible: boolean;
  /** Undoes a committed call when its task tree finally fails or is cancelled (saga). */
  compensate?: (call: CommittedCall, ctx: ToolContext) => Promise<void>;
  /** Whether running the same call twice has the effect of running it once. */
  idempotent: boolean;
  /** The sub-agents that may be offered this tool; offering it to another throws when the graph is built. */
  agents: readonly AgentType[];
  timeoutMs: number;
  /** Retries of transient failures (external tools go through their dependency's retry and breaker). */
  retry: { attempts: number };
  /** Most calls per window in one process; callers beyond it wait their turn (within the timeout). */
  rateLimit?: { calls: number; perSeconds: number };
  /**
   * The argument that says where the side effect goes (a recipient, a channel, a URL). A call whose target is
   * not in the requester's own instruction needs the strongest approval (the provenance rule).
   */
  target?: { arg: string; kind: TargetKind };
  /** The id of what a successful call produced (`document:<id>`, `outbox:<id>`), for the agent's result. */
  artifact?: (output: z.infer<O>) => string | undefined;
  run: (args: z.infer<I>, ctx: ToolContext) => Promise<z.infer<O>>;
}

/** A tool declared through the one contract every Keel tool goes through. */
export interface KeelTool<I extends z.ZodType = z.ZodType, O extends z.ZodType = z.ZodType> extends ToolSpec<
  I,
  O
> {
  /** The OpenAI-style function definition offered to the model. */
  readonly definition: {
    type: "function";
    function: { name: string; description: string; parameters: object };
  };
  readonly limiter?: RateLimiterQueue;
}

const NAME = /^[a-z][a-z0-9_]{1,63}$/;

/** Tools with a side effect ask the model how sure it is; the policy escalates unsure calls to a person. */
export const CONFIDENCE_ARG = "confidence";

/** What every read-only tool declares: low risk, no effect, safe to run again. Spread it into a ToolSpec. */
export const READ_ONLY = { risk: "low", effects: "none", reversible: true, idempotent: true } as const;

export function defineTool<I extends z.ZodType, O extends z.ZodType>(spec: ToolSpec<I, O>): KeelTool<I, O> {
  if (!NAME.test(spec.name))
    throw new WiringError(`Tool name "${spec.name}" must be snake_case (a-z, 0-9, _).`);
  if (spec.agents.length === 0) throw new WiringError(`Tool "${spec.name}" is offered to no agent.`);
  if (spec.effects !== "none" && spec.reversible && !spec.compensate)
    throw new WiringError(`Tool "${spec.name}" is declared reversible but has no compensate function.`);
  if (spec.compensate && !spec.reversible)
    throw new WiringError(`Tool "${spec.name}" has a compensate function but is declared irreversible.`);
  const parameters = z.toJSONSchema(spec.input, { io: "input" }) as {
    properties?: Record<string, unknown>;
    [key: string]: unknown;
  };
  delete parameters.$schema;
  if (spec.effects !== "none") {
    parameters.properties = {
      ...parameters.properties,
      [CONFIDENCE_ARG]: {
        type: "number",
        minimum: 0,
        maximum: 1,
        description:
          "How sure you are (0 to 1) that this action is right and wanted. Below 0.7 a person decides.",
      },
    };
  }
  const limiter = spec.rateLimit
    ? new RateLimiterQueue(
        new RateLimiterMemory({ points: spec.rateLimit.calls, duration: spec.rateLimit.perSeconds }),
        { maxQueueSize: 1000 },
      )
    : undefined;
  return {
    ...spec,
    limiter,
    definition: {
      type: "function",
      function: { name: spec.name, description: spec.description, parameters },
    },
  };
}

/** Every tool by name; two different tools with one name is a wiring error. */
export function toolRegistry(tools: readonly KeelTool[]): ReadonlyMap<string, KeelTool> {
  const registry = new Map<string, KeelTool>();
  for (const tool of tools) {
    const known = registry.get(tool.name);
    if (known && known !== tool) throw new WiringError(`Two different tools are named "${tool.name}".`);
    registry.set(tool.name, tool);
  }
  return registry;
}

/** How one tool call ended: ran, refused before running, failed, or rejected by a person. */
export const ToolCallStatus = z
  .enum(["ok", "invalid_arguments", "error", "rejected", "refused"])
  .describe("How a tool call ended");
export type ToolCallStatus = z.infer<typeof ToolCallStatus>;

/** The outcome of one tool call, as the agent sees it and as it is logged. */
export type ToolOutcome =
  | { status: "ok"; output: unknown; content: string; replayed?: boolean }
  | { status: Exclude<ToolCallStatus, "ok">; content: string; error: string };

function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((i) => `${i.path.length ? i.path.join(".") : "arguments"}: ${i.message}`)
    .join("; ");
}

/** Splits the model's stated confidence from the tool's own arguments. */
export function splitConfidence(args: unknown): { args: unknown; confidence?: number } {
  if (!args || typeof args !== "object" || !(CONFIDENCE_ARG in args)) return { args };
  const { [CONFIDENCE_ARG]: stated, ...rest } = args as Record<string, unknown>;
  return typeof stated === "number" && stated >= 0 && stated <= 1
    ? { args: rest, confidence: stated }
    : { args: rest };
}

/** Validates arguments against the tool's input schema without running it. */
export function validateArgs(
  tool: KeelTool,
  args: unknown,
): { ok: true; args: unknown } | { ok: false; error: string } {
  const parsed = tool.input.safeParse(splitConfidence(args).args);
  return parsed.success
    ? { ok: true, args: parsed.data }
    : { ok: false, error: describeIssues(parsed.error) };
}

/** Whether `agent` may call `tool`; a call from outside its set is refused at call time too. */
export function mayCall(tool: KeelTool, agent: AgentType): boolean {
  return tool.agents.includes(agent);
}

/**
 * Runs one tool call under the contract: the agent must be allowed, the input must validate, the call runs with
 * the tool's timeout (the abort signal reaches the tool), its rate limit and retries, through the effect ledger
 * when it has a side effect, and its output must validate (fail closed). Instructions found in the output are
 * neutralised before the model sees them. Errors become outcomes the agent reads; they do not crash the graph.
 */
export async function executeTool(tool: KeelTool, args: unknown, ctx: ToolContext): Promise<ToolOutcome> {
  const shown = splitConfidence(args).args;
  return inSpan(
    `execute_tool ${tool.name}`,
    {
      "gen_ai.operation.name": "execute_tool",
      "gen_ai.tool.name": tool.name,
      "gen_ai.tool.call.id": ctx.toolCallId,
      "gen_ai.tool.type": "function",
      [KEEL.toolArgs]: JSON.stringify(redactDeep(shown ?? null)).slice(0, 2000),
      [KEEL.agent]: ctx.agent,
      [KEEL.rootTaskId]: ctx.threadId,
      ...(ctx.taskId ? { [KEEL.taskId]: ctx.taskId } : {}),
    },
    async (span) => {
      const started = new Date();
      const startedMs = performance.now();
      // An internal effect's audit row is written in its ledger transaction; every other call's after it ran.
      const auditInTx = async (tx: pg.PoolClient, output: unknown) => {
        const step = toolCallStep(
          ctx,
          tool.name,
          shown,
          { status: "ok", output: guardToolOutput(output).output },
          performance.now() - startedMs,
          started,
        );
        await recordStep(tx, step);
      };
      const { outcome, audited } = await runContract(tool, args, ctx, auditInTx);
      span.setAttribute(KEEL.toolStatus, outcome.status);
      if (outcome.status !== "ok") {
        span.setAttribute("error.type", outcome.status);
        span.setStatus({ code: SpanStatusCode.ERROR, message: redact(outcome.error ?? "") });
      }
      if (!audited)
        await recordToolCall(ctx, tool.name, shown, outcome, performance.now() - startedMs, started);
      return outcome;
    },
  );
}

async function runContract(
  tool: KeelTool,
  args: unknown,
  ctx: ToolContext,
  auditInTx: (tx: pg.PoolClient, output: unknown) => Promise<void>,
): Promise<{ outcome: ToolOutcome; audited: boolean }> {
  if (!mayCall(tool, ctx.agent)) {
    const error = `The ${ctx.agent} agent may not call ${tool.name} (it belongs to: ${tool.agents.join(", ")}). The call was refused and recorded.`;
    return { outcome: { status: "refused", content: error, error }, audited: false };
  }
  const checked = validateArgs(tool, args);
  if (!checked.ok) {
    const error = `Invalid arguments for ${tool.name}: ${checked.error}. Fix the arguments and call the tool again.`;
    return { outcome: { status: "invalid_arguments", content: error, error }, audited: false };
  }
  const bound = boundedSignal([ctx.signal], tool.timeoutMs);
  const signal = bound.signal;
  const validate = (raw: unknown): unknown => {
    const output = tool.output.safeParse(raw);
    if (!output.success) {
      throw new OutputContractError(
        `${tool.name} returned output that breaks its contract (${describeIssues(output.error)}); the result was discarded.`,
      );
    }
    return output.data;
  };
  try {
    if (tool.limiter) await waitForTurn(tool, signal);
    const call = (c: ToolContext) => runWithRetries(tool, checked.args, c);
    const { output, replayed, audited } =
      tool.effects === "none"
        ? { output: validate(await call({ ...ctx, signal })), replayed: false, audited: false }
        : await runEffect(tool, checked.args, { ...ctx, signal }, call, validate, auditInTx);
    const guarded = guardToolOutput(output);
    if (guarded.event) {
      recordSpan(
        "guardrail tool_output",
        { [KEEL.guardrailAction]: guarded.event.action, [KEEL.guardrailReason]: guarded.event.reason },
        Date.now(),
        Date.now(),
      );
      await recordGuardrailEvent(ctx.db, guarded.event, ctx.threadId);
    }
    const shown =
      guarded.event && guarded.output && typeof guarded.output === "object" && !Array.isArray(guarded.output)
        ? { ...guarded.output, keel_notice: NEUTRALISED_NOTICE }
        : guarded.output;
    return {
      outcome: {
        status: "ok",
        output: guarded.output,
        content: JSON.stringify(shown),
        ...(replayed ? { replayed } : {}),
      },
      audited,
    };
  } catch (error) {
    if (ctx.signal.aborted) throw error; // the whole task was cancelled or timed out: stop, do not report back
    if (isKeelError(error) && error.fault === "policy") throw error; // a budget or guardrail stops the tree
    const timedOut = bound.timedOut();
    const message =
      error instanceof OutputContractError
        ? error.message
        : timedOut
          ? `${tool.name} timed out after ${tool.timeoutMs} ms.`
          : `${tool.name} failed: ${error instanceof Error ? error.message : String(error)}`;
    return { outcome: { status: "error", content: message, error: message }, audited: false };
  } finally {
    bound.release();
  }
}

async function waitForTurn(tool: KeelTool, signal: AbortSignal): Promise<void> {
  const turn = tool.limiter!.removeTokens(1);
  const aborted = new Promise<never>((_, reject) => {
    if (signal.aborted) reject(signal.reason as Error);
    signal.addEventListener("abort", () => reject(signal.reason as Error), { once: true });
  });
  await Promise.race([turn, aborted]);
}

/** Transient failures are retried: external tools through their dependency (retry + breaker), others simply. */
async function runWithRetries(tool: KeelTool, args: unknown, ctx: ToolContext): Promise<unknown> {
  if (tool.effects === "external" && ctx.dependencies) {
    return ctx.dependencies.get(`tool:${tool.name}`, { retries: tool.retry.attempts }).execute((signal) => {
      ctx.injectFault?.(tool.name);
      const both = boundedSignal([ctx.signal, signal]);
      return tool.run(args, { ...ctx, signal: both.signal }).finally(() => both.release());
    }, ctx.signal);
  }
  for (let attempt = 0; ; attempt++) {
    try {
      ctx.injectFault?.(tool.name);
      return await tool.run(args, ctx);
    } catch (error) {
      if (!(error instanceof TransientError) || attempt >= tool.retry.attempts || ctx.signal.aborted)
        throw error;
    }
  }
}

/** Throws at build time when a tool list breaks the wiring rules. */
export function checkToolWiring(agent: AgentType, tools: readonly KeelTool[]): void {
  const seen = new Set<string>();
  for (const tool of tools) {
    if (seen.has(tool.name))
      throw new WiringError(`Agent "${agent}" is offered two tools named "${tool.name}".`);
    seen.add(tool.name);
    if (!tool.agents.includes(agent)) {
      throw new WiringError(
        `Tool "${tool.name}" may not be offered to agent "${agent}" (allowed: ${tool.agents.join(", ")}).`,
      );
    }
  }
}
