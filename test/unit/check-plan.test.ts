import { describe, expect, it } from "vitest";
import { PlanError } from "../../core/errors.js";
import { checkPlan } from "../../graphs/check-plan.js";

const limits = { maxPlanTasks: 3, defaultTaskTimeoutSeconds: 90 };
const task = (id: string, type: string, depends_on: string[] = []) => ({
  task_id: id,
  type,
  objective: `do ${id}`,
  depends_on,
});

function problemsOf(proposal: unknown): string[] {
  try {
    checkPlan(proposal, "request", "root-1", limits);
  } catch (error) {
    expect(error).toBeInstanceOf(PlanError);
    return (error as PlanError).problems;
  }
  throw new Error("expected the plan to be rejected");
}

describe("checkPlan", () => {
  it("completes a valid plan into AgentTasks with defaults and idempotency keys", () => {
    const plan = checkPlan(
      { tasks: [task("t1", "data"), task("t2", "code", ["t1"])] },
      "request",
      "root-1",
      limits,
    );
    expect(plan.tasks).toHaveLength(2);
    expect(plan.tasks[1]).toMatchObject({
      task_id: "t2",
      parent_task_id: "root-1",
      depends_on: ["t1"],
      timeout_seconds: 90,
      idempotency_key: "root-1:t2",
      context: "",
      constraints: [],
    });
  });

  it("names an unknown agent type and lists the known ones", () => {
    const [problem] = problemsOf({ tasks: [task("t1", "finance")] });
    expect(problem).toContain('unknown agent type "finance"');
    expect(problem).toContain("research, code, data, communication");
  });

  it("finds a cycle in depends_on", () => {
    const problems = problemsOf({
      tasks: [task("t1", "data", ["t3"]), task("t2", "code", ["t1"]), task("t3", "research", ["t2"])],
    });
    expect(problems.join()).toMatch(/cycle: t1 -> t3 -> t2 -> t1/);
  });

  it("finds a dangling dependency and a self-dependency", () => {
    const problems = problemsOf({ tasks: [task("t1", "data", ["t9"]), task("t2", "code", ["t2"])] });
    expect(problems).toContain("task t1 depends on t9, which is not in the plan");
    expect(problems).toContain("task t2 depends on itself");
  });

  it("refuses more tasks than the budget", () => {
    const problems = problemsOf({ tasks: ["t1", "t2", "t3", "t4"].map((id) => task(id, "research")) });
    expect(problems.join()).toContain("4 tasks, more than the limit of 3");
  });

  it("refuses duplicate task ids", () => {
    expect(problemsOf({ tasks: [task("t1", "data"), task("t1", "code")] })).toContain(
      "task id t1 is used twice",
    );
  });

  it.each([
    ["not an object", "a plan in prose"],
    ["no tasks", { tasks: [] }],
    ["tasks of the wrong type", { tasks: "t1, t2" }],
    ["a task without objective", { tasks: [{ task_id: "t1", type: "data" }] }],
  ])("refuses a model reply that is not a valid plan: %s", (_label, proposal) => {
    expect(problemsOf(proposal).length).toBeGreaterThan(0);
  });
});
