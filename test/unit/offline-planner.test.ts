import vm from "node:vm";
import { describe, expect, it } from "vitest";
import { SAMPLES } from "../../evals/samples.js";
import { planRequest } from "../../models/offline/planner.js";
import { writeProgram } from "../../models/offline/code.js";
import { questionToSql } from "../../models/offline/sql.js";

const agentsOf = (request: string) => [...new Set(planRequest(request).tasks.map((t) => t.type))].sort();

describe("offline planner", () => {
  it.each(SAMPLES.map((s) => [s.id, s.request, s.agents] as const))(
    "sample %i plans the expected agents",
    (_id, request, agents) => {
      expect(agentsOf(request)).toEqual([...agents].sort());
    },
  );

  // Rephrasings with other words and order: the planner reads intents, not exact strings.
  it.each([
    [
      "Give me the shipping rules, then get revenue per region and work out what percentage each region contributes; finally notify ops@harbor.example with the results",
      ["code", "communication", "data", "research"],
    ],
    ["Can you tell me how SEV1 incidents are handled according to the incident runbook?", ["research"]],
    ["Top 3 products by units sold in 2025", ["data"]],
    ["Work out 12 factorial", ["code"]],
    ["Please send a message to oncall@harbor.example saying that the drill is postponed", ["communication"]],
    ["Count the orders per month for 2025 and then calculate the average growth", ["code", "data"]],
    ["What is our policy on expenses for client entertainment?", ["research"]],
    ["Which region had the lowest revenue in 2025?", ["data"]],
  ])("rephrased: %s", (request, agents) => {
    expect(agentsOf(request)).toEqual(agents);
  });

  it("makes computations depend on the data before them and messages on every finding", () => {
    const { tasks } = planRequest(SAMPLES[0]!.request);
    const byType = Object.fromEntries(tasks.map((t) => [t.type, t]));
    expect(byType.research!.depends_on).toEqual([]);
    expect(byType.data!.depends_on).toEqual([]);
    expect(byType.code!.depends_on).toEqual([byType.data!.task_id]);
    expect(byType.communication!.depends_on.sort()).toEqual(
      [byType.research!.task_id, byType.data!.task_id, byType.code!.task_id].sort(),
    );
    expect(byType.communication!.context).toContain("ops@harbor.example");
  });

  it("falls back to one research task for a request with no recognisable intent", () => {
    expect(planRequest("Hello there")).toMatchObject({ tasks: [{ type: "research", depends_on: [] }] });
  });
});

describe("offline question-to-SQL", () => {
  it("groups, filters and limits from the words of the question", () => {
    const plan = questionToSql("Which 5 customers generated the most revenue in 2025?")!;
    expect(plan.sql).toContain("c.name as customer");
    expect(plan.sql).toContain("extract(year from o.ordered_at) = 2025");
    expect(plan.sql).toMatch(/order by revenue desc/);
    expect(plan.sql).toMatch(/limit 5$/);
    expect(plan.tables.sort()).toEqual(["customers", "order_items", "orders"]);
  });

  it("counts orders by month in calendar order", () => {
    const plan = questionToSql("How many orders were placed each month in 2025")!;
    expect(plan).toMatchObject({ measure: "orders", dimension: "month" });
    expect(plan.sql).toMatch(/order by month$/);
    expect(plan.sql).not.toContain("status"); // "were placed" is the verb, not a status filter
  });

  it("filters on an order status and groups by region", () => {
    const plan = questionToSql("count refunded orders by region")!;
    expect(plan.sql).toContain("o.status = 'refunded'");
    expect(plan.sql).toContain("r.name as region");
  });

  it("returns nothing for a question the dataset cannot answer", () => {
    expect(questionToSql("what is the weather like")).toBeUndefined();
  });
});

describe("offline program writer", () => {
  const run = (objective: string) => {
    const program = writeProgram(objective, undefined);
    // A program's value is its last expression, as in the sandbox; a fresh context runs it here.
    return program ? (vm.runInNewContext(program.code) as unknown) : undefined;
  };

  it.each([
    ["Compute the sum of the squares of 1 to 10", 385],
    ["What is the sum of the cubes of 1 to 3?", 36],
    ["Calculate the sum of the numbers from 1 to 100", 5050],
    ["Calculate the average of 3, 5 and 10", { sum: 18, average: 6, median: 5, min: 3, max: 10 }],
  ])("computes %s", (objective, expected) => {
    expect(run(objective)).toEqual(expected);
  });

  it.each([
    "Compute the sum of the odd numbers below 20",
    "What is the variance of 3, 5 and 10?",
    "Sum the multiples of 3 and 5 below 1000",
  ])("fails closed on what it has no rule for: %s", (objective) => {
    expect(writeProgram(objective, undefined)).toBeUndefined();
  });
});
