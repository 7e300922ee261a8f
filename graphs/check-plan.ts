import { createHash } from "node:crypto";
import { AGENT_TYPES, PlanProposal, type AgentTask, type Plan } from "../agents/contracts.js";
import { PlanError } from "../core/errors.js";

export interface PlanLimits {
  maxPlanTasks: number;
  defaultTaskTimeoutSeconds: number;
}

function zodProblems(proposal: unknown): string[] {
  const parsed = PlanProposal.safeParse(proposal);
  if (parsed.success) return [];
  return parsed.error.issues.map((issue) => {
    const where = issue.path.join(".");
    const last = issue.path.at(-1);
    if (last === "type" && issue.code === "invalid_value") {
      const tasks = (proposal as { tasks?: { type?: unknown; task_id?: unknown }[] }).tasks;
      const task = tasks?.[Number(issue.path[1])];
      return `task ${JSON.stringify(task?.task_id ?? issue.path[1])} asks for unknown agent type ${JSON.stringify(task?.type)} (known: ${AGENT_TYPES.join(", ")})`;
    }
    return `${where || "plan"}: ${issue.message}`;
  });
}

/** The task ids of a cycle in depends_on, if there is one (depth-first search). */
function findCycle(tasks: readonly { task_id: string; depends_on: string[] }[]): string[] | undefined {
  const byId = new Map(tasks.map((t) => [t.task_id, t]));
  const state = new Map<string, "visiting" | "done">();
  const stack: string[] = [];
  const visit = (id: string): string[] | undefined => {
    if (state.get(id) === "done") return undefined;
    if (state.get(id) === "visiting") return [...stack.slice(stack.indexOf(id)), id];
    state.set(id, "visiting");
    stack.push(id);
    for (const dep of byId.get(id)?.depends_on ?? []) {
      const cycle = visit(dep);
      if (cycle) return cycle;
    }
    stack.pop();
    state.set(id, "done");
    return undefined;
  };
  for (const task of tasks) {
    const cycle = visit(task.task_id);
    if (cycle) return cycle;
  }
  return undefined;
}

/**
 * Turns the planner's proposal into a checked Plan, or throws a PlanError that lists every problem found:
 * schema, unknown agent types, duplicate ids, dangling or cyclic depends_on, too many tasks.
 */
export function checkPlan(
  proposal: unknown,
  request: string,
  rootId: string | null,
  limits: PlanLimits,
): Plan {
  const schemaProblems = zodProblems(proposal);
  if (schemaProblems.length > 0) throw new PlanError(schemaProblems);
  const { tasks } = PlanProposal.parse(proposal);
  const problems: string[] = [];
  if (tasks.length > limits.maxPlanTasks) {
    problems.push(`it has ${tasks.length} tasks, more than the limit of ${limits.maxPlanTasks}`);
  }
  const ids = new Set<string>();
  for (const task of tasks) {
    if (ids.has(task.task_id)) problems.push(`task id ${task.task_id} is used twice`);
    ids.add(task.task_id);
  }
  for (const task of tasks) {
    for (const dep of task.depends_on) {
      if (!ids.has(dep)) problems.push(`task ${task.task_id} depends on ${dep}, which is not in the plan`);
      if (dep === task.task_id) problems.push(`task ${task.task_id} depends on itself`);
    }
  }
  const cycle = problems.length === 0 ? findCycle(tasks) : undefined;
  if (cycle) problems.push(`depends_on has a cycle: ${cycle.join(" -> ")}`);
  if (problems.length > 0) throw new PlanError(problems);

  const requestHash = createHash("sha256").update(request).digest("hex").slice(0, 16);
  const checked: AgentTask[] = tasks.map((task) => ({
    task_id: task.task_id,
    parent_task_id: rootId,
    type: task.type,
    objective: task.objective,
    context: task.context,
    constraints: task.constraints,
    depends_on: task.depends_on,
    timeout_seconds: task.timeout_seconds ?? limits.defaultTaskTimeoutSeconds,
    idempotency_key: `${rootId ?? requestHash}:${task.task_id}`,
  }));
  return { tasks: checked };
}
