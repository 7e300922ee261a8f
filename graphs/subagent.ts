import {
  AIMessage,
  HumanMessage,
  SystemMessage,
  ToolMessage,
  type BaseMessage,
} from "@langchain/core/messages";
import {
  END,
  interrupt,
  MessagesValue,
  START,
  StateGraph,
  StateSchema,
  type LangGraphRunnableConfig,
} from "@langchain/langgraph";
import { z } from "zod";
import { AgentResult, AgentTask } from "../agents/contracts.js";
import type { AgentSpec } from "../agents/spec.js";
import { SystemError } from "../core/errors.js";
import { KEEL, recordSpan } from "../observability/spans.js";
import { redact } from "../policy/pii.js";
import { decide, needsApproval, type DecisionInput, type PolicyDecision } from "../policy/risk.js";
import { provenanceOf, type Source } from "../policy/provenance.js";
import {
  checkToolWiring,
  executeTool,
  splitConfidence,
  ToolCallStatus,
  validateArgs,
  type KeelTool,
} from "../tools/contract.js";
import type { ToolContext } from "../tools/context.js";
import { recordDecision, recordSimulatedEffect, recordToolCall } from "../tools/log.js";
import { charge } from "../tools/usage.js";
import {
  resolveDecisions,
  type ApprovalDecision,
  type ApprovalRequest,
  type PendingAction,
} from "./approval.js";
import type { GraphDeps } from "./deps.js";
import { callModel, checkReply } from "./model-call.js";
import { emit } from "./progress.js";
import { runContext } from "./run-context.js";

/** Sub-agent state, declared once; node input and update types are derived from it. */
/** The requester's request as the provenance rule reads it: their own words, and what they quoted in it. */
export const Instruction = z
  .object({
    own: z.string().describe("The requester's own words"),
    quoted: z.string().describe("Content the requester quoted or pasted into the request"),
  })
  .describe("The request, split for the provenance rule");

export const SubagentState = new StateSchema({
  task: AgentTask,
  instruction: Instruction.optional().describe(
    "The request, for the provenance rule; a sub-agent run alone takes its task's objective as the instruction",
  ),
  messages: MessagesValue,
  steps: z.number().int().default(0).describe("Model turns taken"),
  tool_calls: z.number().int().default(0).describe("Tool calls made"),
  tokens: z.number().int().default(0).describe("Tokens reported by the model"),
  cost_usd: z.number().default(0).describe("Priced cost of this agent's model calls"),
  last_output: z.unknown().optional().describe("Output of the last successful tool call"),
  artifacts: z
    .array(z.string())
    .default(() => [])
    .describe("Ids of things the tools produced"),
  rejections: z
    .array(z.string())
    .default(() => [])
    .describe("Reasons reviewers gave for rejected actions"),
  outcomes: z
    .array(ToolCallStatus)
    .default(() => [])
    .describe("How each tool call ended, in order"),
  effects_done: z.number().int().default(0).describe("Successful calls of tools with a side effect"),
  confidences: z
    .array(z.number())
    .default(() => [])
    .describe("Confidences the model stated in its tool calls"),
  result: AgentResult.optional(),
});
type State = typeof SubagentState.State;
type Update = typeof SubagentState.Update;

export const SubagentInput = new StateSchema({ task: AgentTask, instruction: Instruction.optional() });
export const SubagentOutput = new StateSchema({ result: AgentResult.optional() });

function textOf(message: BaseMessage | undefined): string {
  if (!message) return "";
  if (typeof message.content === "string") return message.content;
  return message.content
    .map((part) => ("text" in part && typeof part.text === "string" ? part.text : ""))
    .join("");
}

export function taskBrief(task: AgentTask): string {
  const lines = [`Task ${task.task_id}: ${task.objective}`];
  if (task.context.trim()) lines.push(`Context:\n${task.context}`);
  if (task.constraints.length)
    lines.push(`Constraints:\n${task.constraints.map((c) => `- ${c}`).join("\n")}`);
  return lines.join("\n\n");
}

/**
 * The provenance rule's input for one call: its target when the requester did not name it, and where it came
 * from — content they quoted, a tool's output, the results of an earlier task, the plan, or the model itself.
 */
function untrustedTarget(tool: KeelTool, args: unknown, state: State): DecisionInput["untrustedTarget"] {
  if (!tool.target || tool.effects === "none") return undefined;
  const value = (args as Record<string, unknown> | undefined)?.[tool.target.arg];
  if (typeof value !== "string") return undefined;
  const instruction = state.instruction ?? { own: state.task.objective, quoted: "" };
  const sources: Source[] = [
    ...state.messages
      .filter((m) => m.getType() === "tool")
      .map((m) => ({ name: `the output of ${(m as ToolMessage).name ?? "a tool"}`, text: textOf(m) })),
    { name: "the results of the tasks this one depends on", text: state.task.context },
    { name: "the plan (the planner wrote it into the task's objective)", text: state.task.objective },
  ];
  const source = provenanceOf(value, tool.target.kind, instruction, sources);
  return source ? { arg: tool.target.arg, value, source } : undefined;
}

/** Tool calls of an AI message (messages restored from a checkpoint may be plain AIMessage or chunks). */
function toolCallsOf(message: BaseMessage | undefined): NonNullable<AIMessage["tool_calls"]> {
  const calls = (message as AIMessage | undefined)?.tool_calls;
  return message?.getType() === "ai" && Array.isArray(calls) ? calls : [];
}

function failedResult(state: State, error: string): AgentResult {
  return {
    task_id: state.task.task_id,
    status: "failed",
    summary: error,
    confidence: state.confidences.length > 0 ? Math.min(...state.confidences) : null,
    tool_calls: state.tool_calls,
    tokens: state.tokens,
    cost_usd: 0,
    artifacts: state.artifacts,
    error,
  };
}

/**
 * How an agent's task ended, from its tool outcomes: rejected when a person said no and no effect happened
 * after all; failed when it called tools and none succeeded; done otherwise.
 */
function statusOf(state: State): Pick<AgentResult, "status" | "reason"> {
  if (state.rejections.length > 0 && state.effects_done === 0)
    return { status: "rejected", reason: "rejected" };
  const ran = state.outcomes.filter((o) => o !== "rejected");
  if (ran.length > 0 && !ran.includes("ok")) return { status: "failed", reason: "tool_error" };
  return { status: "done" };
}

/**
 * Builds the ReAct loop of one sub-agent over its own tools only. Wiring is checked here, at build time.
 * Risky tool calls are gathered first and put to a person in one interrupt, before any tool of that turn runs.
 */
export function buildSubagentGraph(
  spec: AgentSpec,
  deps: GraphDeps,
  registry: ReadonlyMap<string, KeelTool> = new Map(spec.tools.map((t) => [t.name, t])),
) {
  checkToolWiring(spec.type, spec.tools);
  const tools = new Map<string, KeelTool>(spec.tools.map((t) => [t.name, t]));
  const maxSteps = deps.limits.maxAgentSteps;

  const knownTools: ReadonlySet<string> = new Set(registry.keys());
  const start = (state: State): Update => ({ messages: [new HumanMessage(taskBrief(state.task))] });

  const agent = async (state: State, config: LangGraphRunnableConfig): Promise<Update> => {
    if (state.steps >= maxSteps) {
      return { result: failedResult(state, `Stopped after the step limit of ${maxSteps} model turns.`) };
    }
    const model = deps.model(spec.type);
    if (!model.bindTools)
      throw new SystemError(
        "configuration_error",
        `The model for the ${spec.type} agent cannot call tools; configure a chat model with tool calling.`,
      );
    const bound = model.bindTools(spec.tools.map((t) => t.definition));
    const messages = [new SystemMessage(deps.prompts?.[spec.type] ?? spec.prompt), ...state.messages];
    const {
      value: raw,
      usage,
      cost_usd,
      finishReason,
    } = await callModel(
      deps,
      config,
      { agent: spec.type, taskId: state.task.task_id, turn: state.steps + 1, messages },
      (options) => bound.invoke(messages, options),
    );
    const reply = checkReply(raw, deps.modelInfo?.name ?? "in use", {
      maxTokens: deps.modelInfo?.maxTokens,
      knownTools: knownTools,
      finishReason,
    });
    const tokens = usage.input_tokens + usage.output_tokens;
    return {
      messages: [reply],
      steps: state.steps + 1,
      tokens: state.tokens + tokens,
      cost_usd: state.cost_usd + cost_usd,
    };
  };

  const runTools = async (state: State, config: LangGraphRunnableConfig): Promise<Update> => {
    const calls = toolCallsOf(state.messages.at(-1)).map((call, i) => ({
      ...call,
      id: call.id ?? `${state.task.task_id}_${state.steps}_${i}`,
    }));
    const run = runContext(config);
    const threadId = run.threadId ?? "standalone";
    const context = (toolCallId: string, approvedBy?: string): ToolContext => ({
      db: deps.db,
      signal: config.signal ?? new AbortController().signal,
      deadline: run.deadline,
      threadId,
      taskId: state.task.task_id,
      checkpointNs: run.checkpointNs,
      toolCallId: `${state.task.task_id}/${toolCallId}`,
      agent: spec.type,
      limits: deps.limits,
      approvedBy,
      dependencies: deps.dependencies,
      webhookUrl: deps.webhookUrl,
      failpoint: deps.failpoint,
      injectFault: deps.faults ? (tool: string) => deps.faults!(threadId, tool) : undefined,
      fenceToken: run.fenceToken,
      fenceTaskId: run.fenceTaskId,
    });

    // 1. Every call is decided first: the policy sees the tool, the agent, the arguments and the stated
    //    confidence. Calls that cannot run (unknown tool, another agent's tool, invalid arguments) need no
    //    decision; the contract refuses them when the calls run.
    const decided = new Map<string, PolicyDecision>();
    for (const call of calls) {
      const tool = tools.get(call.name);
      if (!tool || !validateArgs(tool, call.args).ok) continue;
      const { args, confidence } = splitConfidence(call.args);
      const input: DecisionInput = {
        tool: tool.name,
        agent: spec.type,
        risk: tool.risk,
        reversible: tool.reversible,
        effects: tool.effects,
        args,
        confidence,
        untrustedTarget: untrustedTarget(tool, args, state),
      };
      const decision = decide(input, deps.policy);
      decided.set(call.id, decision);
      if (tool.effects === "none" && decision.decision === "autonomous") continue;
      if (await recordDecision(context(call.id), input, decision)) {
        recordSpan(
          `policy_decision ${tool.name}`,
          {
            [KEEL.decision]: decision.decision,
            [KEEL.reasons]: decision.reasons.map((r) => redact(r)),
            "gen_ai.tool.name": tool.name,
            [KEEL.agent]: spec.type,
            [KEEL.taskId]: state.task.task_id,
          },
          Date.now(),
          Date.now(),
        );
      }
    }

    // 2. Interrupts next, all in one, in the order the model proposed: nothing below runs before a decision.
    const pending: PendingAction[] = calls
      .filter((c) => needsApproval(decided.get(c.id)?.decision ?? "autonomous"))
      .map((c) => ({
        tool_call_id: c.id,
        tool: c.name,
        args: splitConfidence(c.args).args,
        risk: tools.get(c.name)!.risk,
        decision: decided.get(c.id)!.decision,
        why: decided.get(c.id)!.reasons,
      }));
    let decisions = new Map<string, ApprovalDecision>();
    // A shadow run asks nobody: its held calls are simulated below like every other side effect.
    if (pending.length > 0 && !run.simulate) {
      emit(config, {
        type: "approval_requested",
        task_id: state.task.task_id,
        agent: spec.type,
        tools: pending.map((p) => p.tool),
      });
      const request: ApprovalRequest = {
        kind: "approval",
        task_id: state.task.task_id,
        agent: spec.type,
        objective: state.task.objective,
        actions: pending,
      };
      decisions = resolveDecisions(interrupt(request), pending);
    }

    const about = (call: { name: string; id: string }) => ({
      task_id: state.task.task_id,
      agent: spec.type,
      tool: call.name,
      tool_call_id: call.id,
    });

    // 2. Then every call, in order.
    const messages: ToolMessage[] = [];
    const artifacts: string[] = [];
    const rejections: string[] = [];
    const outcomes: ToolCallStatus[] = [];
    const confidences: number[] = [];
    let effectsDone = 0;
    let lastOutput = state.last_output;
    for (const call of calls) {
      // Another agent's tool goes to the contract, which refuses and records it; an unknown name is answered here.
      const tool = tools.get(call.name) ?? registry.get(call.name);
      const reply = (content: string, status: "success" | "error") =>
        messages.push(new ToolMessage({ content, tool_call_id: call.id, name: call.name, status }));
      if (!tool) {
        reply(`There is no tool "${call.name}". Your tools: ${[...tools.keys()].join(", ")}.`, "error");
        outcomes.push("refused");
        continue;
      }
      const stated = splitConfidence(call.args).confidence;
      if (stated !== undefined) confidences.push(stated);
      const decision = decisions.get(call.id);
      let args: unknown = call.args;
      if (decision?.action === "reject") {
        const reason = decision.reason ? `: ${decision.reason}` : "";
        rejections.push(`${call.name} rejected by ${decision.reviewer ?? "a reviewer"}${reason}`);
        await recordToolCall(
          context(call.id),
          call.name,
          splitConfidence(call.args).args,
          { status: "rejected", error: decision.reason },
          0,
        );
        emit(config, { type: "tool_call", ...about(call), args: splitConfidence(call.args).args });
        reply(
          `A person rejected this ${call.name} call${reason}. Do not try it again; report that it was not done.`,
          "error",
        );
        emit(config, {
          type: "tool_result",
          ...about(call),
          status: "rejected",
          detail: decision.reason ?? "",
        });
        outcomes.push("rejected");
        continue;
      }
      if (decision?.action === "edit") args = { ...(call.args as object), ...decision.args };
      await charge(await deps.db(), threadId, "tool", deps.policy.budgets);
      if (run.simulate && tool.effects !== "none" && validateArgs(tool, args).ok && decided.has(call.id)) {
        // A shadow run: decided and recorded as what it would have done; the agent is told it was not done.
        const shown = splitConfidence(args).args;
        const verdict = decided.get(call.id)!;
        await recordSimulatedEffect(context(call.id), tool.name, shown, verdict);
        const output = { simulated: true, tool: tool.name, decision: verdict.decision };
        await recordToolCall(context(call.id), tool.name, shown, { status: "ok", output }, 0);
        emit(config, { type: "tool_call", ...about(call), args: shown });
        emit(config, { type: "tool_result", ...about(call), status: "ok", detail: "simulated" });
        reply(
          JSON.stringify({
            ...output,
            note: "Shadow run: this call was checked and decided, but not carried out. Report what you would have done.",
          }),
          "success",
        );
        outcomes.push("ok");
        continue;
      }
      emit(config, { type: "tool_call", ...about(call), args: splitConfidence(args).args });
      const outcome = await executeTool(tool, args, context(call.id, decision?.reviewer));
      emit(config, {
        type: "tool_result",
        ...about(call),
        status: outcome.status,
        detail: outcome.content.slice(0, 300),
      });
      reply(outcome.content, outcome.status === "ok" ? "success" : "error");
      outcomes.push(outcome.status);
      if (outcome.status === "ok") {
        lastOutput = outcome.output;
        if (tool.effects !== "none") effectsDone++;
        const artifact = tool.artifact?.(outcome.output);
        if (artifact) artifacts.push(artifact);
      }
    }
    return {
      messages,
      tool_calls: state.tool_calls + calls.length,
      last_output: lastOutput,
      artifacts: [...state.artifacts, ...artifacts],
      rejections: [...state.rejections, ...rejections],
      outcomes: [...state.outcomes, ...outcomes],
      effects_done: state.effects_done + effectsDone,
      confidences: [...state.confidences, ...confidences],
    };
  };

  const finish = (state: State, config: LangGraphRunnableConfig): Update => {
    const result: AgentResult = state.result ?? {
      task_id: state.task.task_id,
      ...statusOf(state),
      summary: textOf(state.messages.at(-1)) || "(no summary)",
      data: state.last_output,
      artifacts: state.artifacts,
      confidence: state.confidences.length > 0 ? Math.min(...state.confidences) : null,
      tool_calls: state.tool_calls,
      tokens: state.tokens,
      cost_usd: state.cost_usd,
      ...(state.rejections.length > 0 ? { error: state.rejections.join("; ") } : {}),
    };
    emit(config, {
      type: "agent_done",
      task_id: result.task_id,
      agent: spec.type,
      status: result.status,
      summary: result.summary,
      ...(result.reason ? { reason: result.reason } : {}),
    });
    return { result };
  };

  const next = (state: State): "tools" | "finish" => {
    if (state.result) return "finish";
    return toolCallsOf(state.messages.at(-1)).length > 0 ? "tools" : "finish";
  };

  return new StateGraph(SubagentState, { input: SubagentInput, output: SubagentOutput })
    .addNode("start", start)
    .addNode("agent", agent)
    .addNode("tools", runTools)
    .addNode("finish", finish)
    .addEdge(START, "start")
    .addEdge("start", "agent")
    .addConditionalEdges("agent", next, ["tools", "finish"])
    .addEdge("tools", "agent")
    .addEdge("finish", END);
}
