import type { LangGraphRunnableConfig } from "@langchain/langgraph";
import type { AgentTask, AgentType } from "../agents/contracts.js";
import { KEEL, recordSpan } from "../observability/spans.js";
import { recordStepQuietly } from "../observability/trajectory.js";
import type { GraphDeps } from "./deps.js";
import { runContext } from "./run-context.js";

/** Attributes of a sub-agent's `invoke_agent` span (OpenTelemetry GenAI, plus Keel's task lineage). */
export function agentSpanAttributes(type: AgentType, task: AgentTask, config: LangGraphRunnableConfig) {
  const { threadId: root, attempt } = runContext(config);
  return {
    "gen_ai.operation.name": "invoke_agent",
    "gen_ai.agent.name": `${type}_agent`,
    [KEEL.agent]: type,
    [KEEL.taskId]: task.task_id,
    ...(root ? { [KEEL.parentTaskId]: root, [KEEL.rootTaskId]: root } : {}),
    ...(attempt ? { [KEEL.attempt]: attempt } : {}),
  };
}

/**
 * The orchestrator handing AgentTasks to sub-agents, one wave at a time: a `handoff` span and a trajectory
 * step per task, naming the agent, the objective and what it waits for.
 */
export async function recordHandoffs(
  deps: GraphDeps,
  config: LangGraphRunnableConfig,
  tasks: readonly AgentTask[],
  wave: number,
): Promise<void> {
  const { threadId, attempt } = runContext(config);
  const now = Date.now();
  for (const task of tasks) {
    recordSpan(
      `handoff ${task.type}`,
      {
        "keel.handoff.from": "orchestrator",
        "keel.handoff.to": task.type,
        "keel.handoff.wave": wave,
        [KEEL.taskId]: task.task_id,
        ...(threadId ? { [KEEL.parentTaskId]: threadId } : {}),
      },
      now,
      now,
    );
    if (!threadId) continue;
    await recordStepQuietly(deps.db, {
      thread_id: threadId,
      task_id: task.task_id,
      agent: "orchestrator",
      kind: "handoff",
      name: task.type,
      status: "sent",
      input: { objective: task.objective, depends_on: task.depends_on, wave },
      attempt,
      started_at: new Date(now),
      duration_ms: 0,
    });
  }
}
