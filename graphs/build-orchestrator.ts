import { HumanMessage, SystemMessage } from "@langchain/core/messages";
import { OutputParserException } from "@langchain/core/output_parsers";
import {
  END,
  isGraphBubbleUp,
  type AddNodeOptions,
  ReducedValue,
  Send,
  START,
  StateGraph,
  StateSchema,
  type LangGraphRunnableConfig,
} from "@langchain/langgraph";
import { z } from "zod";
import { AGENTS, TOOLS } from "../agents/index.js";
import {
  AGENT_TYPES,
  AgentResult,
  Plan,
  PlanProposal,
  type AgentTask,
  type AgentType,
} from "../agents/contracts.js";
import { failureOf, isKeelError, PlanError, SystemError } from "../core/errors.js";
import { boundedSignal } from "../core/signals.js";
import { BlockedRequestError, guardRequest } from "../policy/guard.js";
import { splitInstruction, type Instruction } from "../policy/provenance.js";
import { errorClass, inSpan, KEEL } from "../observability/spans.js";
import { recordStepQuietly } from "../observability/trajectory.js";
import { recordGuardrailEvent } from "../observability/audit.js";
import { agentSpanAttributes, recordHandoffs } from "./handoffs.js";
import { checkPlan } from "./check-plan.js";
import type { GraphDeps } from "./deps.js";
import { callModel, checkReply } from "./model-call.js";
import { emit } from "./progress.js";
import { promptFor } from "./prompts.js";
import { buildSubagentGraph } from "./subagent.js";
import { keelConfigurable, runContext } from "./run-context.js";

/** Results keyed by task id: a task that reports twice (a retried wave) replaces its earlier result. */
function mergeResults(current: AgentResult[], update: AgentResult[]): AgentResult[] {
  const merged = new Map(current.map((r) => [r.task_id, r]));
  for (const result of update) merged.set(result.task_id, result);
  return [...merged.values()];
}

/** Orchestrator state, declared once with its reducers. */
export const OrchestratorState = new StateSchema({
  request: z.string().describe("What the person asked for"),
  proposal: z.unknown().optional().describe("The planner's raw reply, before check_plan"),
  plan: Plan.optional(),
  wave: z.number().int().default(0).describe("How many dispatch waves have started"),
  results: new ReducedValue(
    z.array(AgentResult).default(() => []),
    {
      inputSchema: z.array(AgentResult),
      reducer: mergeResults,
    },
  ),
  final_answer: z.string().optional().describe("The synthesized answer"),
});
type State = typeof OrchestratorState.State;
type Update = typeof OrchestratorState.Update;

// Input and output are StateSchemas too, so that `langgraph dev` serves them as Studio's forms.
export const OrchestratorInput = new StateSchema({ request: z.string().describe("What you want done") });
export const OrchestratorOutput = new StateSchema({
  plan: Plan.optional(),
  results: z.array(AgentResult).describe("One result per task"),
  final_answer: z.string().optional().describe("The synthesized answer"),
});

/** A task's context plus what the tasks it depends on found. */
function withDependencyResults(task: AgentTask, results: readonly AgentResult[]): AgentTask {
  const found = task.depends_on
    .map((id) => results.find((r) => r.task_id === id))
    .filter((r) => r !== undefined);
  if (found.length === 0) return task;
  const lines = found.map((r) => {
    const data = r.data === undefined ? "" : `\nData: ${JSON.stringify(r.data).slice(0, 6000)}`;
    return `[${r.task_id}] ${r.summary}${data}`;
  });
  const context = [task.context, `Results of earlier tasks:\n${lines.join("\n")}`]
    .filter(Boolean)
    .join("\n\n");
  return { ...task, context };
}

function resultsText(state: State): string {
  return (state.plan?.tasks ?? [])
    .map((task) => {
      const r = state.results.find((x) => x.task_id === task.task_id);
      return `[${task.task_id}] (${task.type}) ${task.objective}\nstatus: ${r?.status ?? "not run"}\n${r?.summary ?? ""}`;
    })
    .join("\n\n");
}

// Symbol.for: the mark survives a second copy of this module (langgraph.json's loader imports the graph by path).
const KEEL_ORCHESTRATOR = Symbol.for("keel.orchestrator");

/**
 * Marks a compiled graph as Keel's orchestrator, whatever langgraph.json calls it: a server runs a run of it on
 * the behaviour of the run's release (model, prompts, policy, limits), not on whatever the graph was built with.
 */
export function markOrchestrator<G extends object>(graph: G): G {
  Object.defineProperty(graph, KEEL_ORCHESTRATOR, { value: true });
  return graph;
}

/** Whether a graph is Keel's orchestrator (marked by markOrchestrator), which releases describe. */
export const isOrchestrator = (graph: unknown): boolean =>
  typeof graph === "object" &&
  graph !== null &&
  (graph as Record<symbol, unknown>)[KEEL_ORCHESTRATOR] === true;

/**
 * Builds the orchestrator: guard_input -> plan -> check_plan -> dispatch (Send per ready task, in dependency
 * waves) -> one node per sub-agent -> collect -> … -> synthesize. Compile it with a checkpointer for durable runs.
 */
export function buildOrchestratorGraph(deps: GraphDeps) {
  const subgraphs = Object.fromEntries(
    AGENT_TYPES.map((type) => [
      type,
      buildSubagentGraph(AGENTS[type], deps, TOOLS).compile({ name: `${type}_agent` }),
    ]),
  ) as Record<AgentType, ReturnType<ReturnType<typeof buildSubagentGraph>["compile"]>>;

  const guardInput = (state: State, config: LangGraphRunnableConfig): Promise<Update> =>
    inSpan("guardrail input", { [KEEL.agent]: "orchestrator" }, async (span) => {
      try {
        const request = guardRequest(state.request, {
          maxChars: deps.limits.maxRequestChars,
          scope: deps.policy.scope,
        });
        span.setAttribute(KEEL.guardrailAction, "pass");
        return { request };
      } catch (error) {
        if (error instanceof BlockedRequestError) {
          span.setAttributes({
            [KEEL.guardrailAction]: error.event.action,
            [KEEL.guardrailReason]: error.event.reason,
          });
          const { threadId } = runContext(config);
          await recordGuardrailEvent(deps.db, error.event, threadId);
        }
        throw error;
      }
    });

  const plan = async (state: State, config: LangGraphRunnableConfig): Promise<Update> => {
    const planner = deps
      .model("planner")
      .withStructuredOutput(PlanProposal, { name: "submit_plan", method: "functionCalling" });
    try {
      const messages = [
        new SystemMessage(promptFor(deps.prompts, "planner")),
        new HumanMessage(state.request),
      ];
      const { value: proposal } = await callModel(deps, config, { agent: "planner", messages }, (options) =>
        planner.invoke(messages, options),
      );
      return { proposal };
    } catch (error) {
      if (isGraphBubbleUp(error) || config.signal?.aborted) throw error;
      // The structured-output parser refused the reply: hand what the model said to check_plan, which names
      // every problem precisely. A reply that is not even JSON is a bad plan, not a crash.
      if (error instanceof OutputParserException) {
        try {
          return { proposal: JSON.parse(error.llmOutput ?? "") as unknown };
        } catch {
          throw new PlanError(
            [`the model's reply is not a plan in JSON (${(error.llmOutput ?? "").slice(0, 200)})`],
            {
              cause: error,
            },
          );
        }
      }
      throw error;
    }
  };

  const checkPlanNode = (state: State, config: LangGraphRunnableConfig): Update => {
    const rootId = runContext(config).threadId ?? null;
    const checked = checkPlan(state.proposal, state.request, rootId, deps.limits);
    emit(config, {
      type: "plan",
      tasks: checked.tasks.map((t) => ({
        task_id: t.task_id,
        type: t.type,
        objective: t.objective,
        depends_on: t.depends_on,
      })),
    });
    return { plan: checked };
  };

  const readyTasks = (state: State): AgentTask[] =>
    (state.plan?.tasks ?? []).filter(
      (t) =>
        !state.results.some((r) => r.task_id === t.task_id) &&
        t.depends_on.every((d) => state.results.some((r) => r.task_id === d && r.status === "done")),
    );

  const dispatch = async (state: State, config: LangGraphRunnableConfig): Promise<Update> => {
    const ready = readyTasks(state);
    if (ready.length === 0) return {};
    emit(config, { type: "wave", wave: state.wave + 1, task_ids: ready.map((t) => t.task_id) });
    await recordHandoffs(deps, config, ready, state.wave + 1);
    return { wave: state.wave + 1 };
  };

  const route = (state: State): Send[] | "synthesize" => {
    const ready = readyTasks(state);
    if (ready.length === 0) return "synthesize";
    const instruction = splitInstruction(state.request);
    return ready.map(
      (task) => new Send(task.type, { task: withDependencyResults(task, state.results), instruction }),
    );
  };

  /** Tasks whose dependencies did not succeed can never run: they fail here, named, instead of hanging. */
  const collect = (state: State): Update => {
    const blocked: AgentResult[] = [];
    const settled = new Map(state.results.map((r) => [r.task_id, r]));
    let changed = true;
    while (changed) {
      changed = false;
      for (const task of state.plan?.tasks ?? []) {
        if (settled.has(task.task_id)) continue;
        const bad = task.depends_on.find((d) => settled.has(d) && settled.get(d)!.status !== "done");
        if (!bad) continue;
        const result: AgentResult = {
          task_id: task.task_id,
          status: "failed",
          summary: `Not run: task ${bad} it depends on did not succeed.`,
          confidence: 0,
          tool_calls: 0,
          tokens: 0,
          cost_usd: 0,
          error: `dependency ${bad} ${settled.get(bad)!.status}`,
          reason: "subtask_failed",
        };
        settled.set(task.task_id, result);
        blocked.push(result);
        changed = true;
      }
    }
    return blocked.length > 0 ? { results: blocked } : {};
  };

  const synthesize = async (state: State, config: LangGraphRunnableConfig): Promise<Update> => {
    const messages = [
      new SystemMessage(promptFor(deps.prompts, "synthesizer")),
      new HumanMessage(`Request: ${state.request}\n\nTask results:\n${resultsText(state)}`),
    ];
    const { value: raw, finishReason } = await callModel(
      deps,
      config,
      { agent: "synthesizer", messages },
      (options) => deps.model("synthesizer").invoke(messages, options),
    );
    const reply = checkReply(raw, deps.modelInfo?.name ?? "in use", {
      maxTokens: deps.modelInfo?.maxTokens,
      finishReason,
    });
    const text = typeof reply.content === "string" ? reply.content : JSON.stringify(reply.content);
    emit(config, { type: "answer", text });
    return { final_answer: text };
  };

  // Declaring the compiled sub-agent as the node's subgraph lets Studio and getSubgraphs() show it.
  const asSubgraph = (type: AgentType) => ({
    subgraphs: [subgraphs[type]] as unknown as AddNodeOptions["subgraphs"],
  });
  return (
    new StateGraph(OrchestratorState, { input: OrchestratorInput, output: OrchestratorOutput })
      .addNode("guard_input", guardInput)
      .addNode("planner", plan)
      .addNode("check_plan", checkPlanNode)
      .addNode("dispatch", dispatch)
      .addNode("research", runSubagentNode("research", subgraphs.research, deps), asSubgraph("research"))
      .addNode("code", runSubagentNode("code", subgraphs.code, deps), asSubgraph("code"))
      .addNode("data", runSubagentNode("data", subgraphs.data, deps), asSubgraph("data"))
      .addNode(
        "communication",
        runSubagentNode("communication", subgraphs.communication, deps),
        asSubgraph("communication"),
      )
      .addNode("collect", collect)
      .addNode("synthesize", synthesize)
      .addEdge(START, "guard_input")
      .addEdge("guard_input", "planner")
      .addEdge("planner", "check_plan")
      .addEdge("check_plan", "dispatch")
      .addConditionalEdges("dispatch", route, [...AGENT_TYPES, "synthesize"])
      // One edge per agent (not a join): collect runs once after whichever agents ran in this wave.
      .addEdge("research", "collect")
      .addEdge("code", "collect")
      .addEdge("data", "collect")
      .addEdge("communication", "collect")
      .addEdge("collect", "dispatch")
      .addEdge("synthesize", END)
  );
}

type CompiledSubagent = ReturnType<ReturnType<typeof buildSubagentGraph>["compile"]>;

/** The node that runs one AgentTask in its sub-agent graph, under the task's timeout_seconds. */
function runSubagentNode(type: AgentType, subgraph: CompiledSubagent, deps: GraphDeps) {
  return async (
    input: { task: AgentTask; instruction?: Instruction },
    config: LangGraphRunnableConfig,
  ): Promise<Update> => {
    const { task, instruction } = input;
    emit(config, { type: "agent_start", task_id: task.task_id, agent: type, objective: task.objective });
    // Released when the sub-agent ends: a worker runs many sub-agents under one run's signal.
    const bound = boundedSignal([config.signal], task.timeout_seconds * 1000);
    const signal = bound.signal;
    try {
      const deadline = Date.now() + task.timeout_seconds * 1000;
      const out = await inSpan(`invoke_agent ${type}`, agentSpanAttributes(type, task, config), () =>
        subgraph.invoke(
          { task, instruction },
          {
            ...config,
            signal,
            configurable: { ...config.configurable, ...keelConfigurable({ keel_deadline: deadline }) },
          },
        ),
      );
      if (!out.result) throw new SystemError("internal", `The ${type} agent ended without a result.`);
      return { results: [out.result] };
    } catch (error) {
      if (isGraphBubbleUp(error) || config.signal?.aborted) throw error;
      // A budget or guardrail stops the whole tree, not just this agent.
      if (isKeelError(error) && error.fault === "policy") throw error;
      const message = bound.timedOut()
        ? `Timed out after ${task.timeout_seconds} s (timeout_seconds).`
        : `The ${type} agent failed: ${(error as Error).message}`;
      const reason = bound.timedOut() ? "timeout" : failureOf(error).reason;
      emit(config, {
        type: "agent_done",
        task_id: task.task_id,
        agent: type,
        status: "failed",
        summary: message,
        reason,
      });
      const { threadId, attempt } = runContext(config);
      if (threadId) {
        await recordStepQuietly(deps.db, {
          thread_id: threadId,
          task_id: task.task_id,
          agent: type,
          kind: "error",
          name: `${type}_agent`,
          status: "failed",
          error: message,
          error_class: bound.timedOut() ? "timeout" : errorClass(error),
          attempt,
        });
      }
      const failed: AgentResult = {
        task_id: task.task_id,
        status: "failed",
        summary: message,
        confidence: 0,
        tool_calls: 0,
        tokens: 0,
        cost_usd: 0,
        error: message,
        reason,
      };
      return { results: [failed] };
    } finally {
      bound.release();
    }
  };
}
