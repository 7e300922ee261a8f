import { AIMessage, type BaseMessage } from "@langchain/core/messages";
import { Command } from "@langchain/langgraph";
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KeelSaver } from "../../checkpoints/keel-saver.js";
import { PlanError } from "../../core/errors.js";
import { buildOrchestratorGraph } from "../../graphs/build-orchestrator.js";
import { fakeModel, scriptedDeps } from "../fakes/deps.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";

let t: TestDatabase;
let saver: KeelSaver;
beforeAll(async () => {
  t = await createTestDatabase();
  saver = new KeelSaver(t.db.pool);
});
afterAll(async () => {
  await t?.drop();
});

const task = (task_id: string, type: string, depends_on: string[] = [], extra: object = {}) => ({
  task_id,
  type,
  objective: `objective of ${task_id}`,
  context: "",
  constraints: [],
  depends_on,
  ...extra,
});
const text = (m: BaseMessage) => (typeof m.content === "string" ? m.content : JSON.stringify(m.content));
const echoSynthesizer = () =>
  fakeModel().respond((messages) => new AIMessage(`ANSWER\n${text(messages.at(-1)!)}`));

function compile(models: Parameters<typeof scriptedDeps>[2], limits = t.config.limits) {
  const deps = scriptedDeps(t.db.pool, limits, models);
  return { deps, graph: buildOrchestratorGraph(deps).compile({ checkpointer: saver }) };
}
const threadConfig = () => ({ configurable: { thread_id: randomUUID() } });
const toolRows = async (threadId: string) =>
  (
    await t.db.pool.query<{ tool: string; status: string }>(
      "select tool, status from tool_calls where thread_id = $1 order by id",
      [threadId],
    )
  ).rows;

describe("orchestrator with scripted models", () => {
  it("plans, dispatches independent tasks in one parallel wave, feeds results forward and synthesizes", async () => {
    const { deps, graph } = compile({
      planner: fakeModel().structuredResponse({
        tasks: [task("t1", "research"), task("t2", "data"), task("t3", "code", ["t2"])],
      }),
      research: fakeModel()
        .respondWithTools([{ name: "search_kb", args: { query: "refund policy" }, id: "r1" }])
        .respond(new AIMessage("Refunds are accepted within 30 days.")),
      data: fakeModel()
        .respondWithTools([
          { name: "run_sql", args: { sql: "select count(*)::int as n from orders" }, id: "d1" },
        ])
        .respond(new AIMessage("There are 639 orders.")),
      code: fakeModel()
        .respondWithTools([{ name: "run_javascript", args: { code: "639 * 2" }, id: "c1" }])
        .respond(new AIMessage("Twice the orders is 1278.")),
      synthesizer: echoSynthesizer(),
    });
    const config = threadConfig();
    const out = await graph.invoke({ request: "refunds, orders, and double the orders" }, config);

    expect(out.results.map((r) => [r.task_id, r.status]).sort()).toEqual([
      ["t1", "done"],
      ["t2", "done"],
      ["t3", "done"],
    ]);
    expect(out.results.find((r) => r.task_id === "t2")!.data).toEqual({
      columns: ["n"],
      rows: [{ n: 639 }],
      row_count: 1,
      truncated: false,
    });
    // t1 and t2 were sent in the same superstep; t3 waited for t2.
    const history = [];
    for await (const snapshot of graph.getStateHistory(config)) history.push(snapshot.next);
    expect(history.some((next) => next.includes("research") && next.includes("data"))).toBe(true);
    expect(history.some((next) => next.includes("code") && next.includes("data"))).toBe(false);
    // The code agent was given the data agent's result in its brief.
    const codeBrief = text(deps.models.code!.calls[0]!.messages.find((m) => m.getType() === "human")!);
    expect(codeBrief).toContain("[t2] There are 639 orders.");
    // Each agent was offered only its own tools.
    expect(deps.bound.research).toEqual(["search_kb", "read_document"]);
    expect(deps.bound.data).toEqual(["list_tables", "describe_table", "run_sql"]);
    expect(deps.bound.code).toEqual(["run_javascript"]);
    // The final answer is the synthesizer's, built from every task's result.
    expect(out.final_answer).toContain("Refunds are accepted within 30 days.");
    expect(out.final_answer).toContain("There are 639 orders.");
    expect(out.final_answer).toContain("Twice the orders is 1278.");
    expect(out.plan!.tasks.map((x) => x.idempotency_key)).toEqual(
      ["t1", "t2", "t3"].map((id) => `${config.configurable.thread_id}:${id}`),
    );
  });

  it("returns invalid tool arguments and foreign tools to the agent, which recovers", async () => {
    const { deps, graph } = compile({
      planner: fakeModel().structuredResponse({ tasks: [task("t1", "data")] }),
      data: fakeModel()
        .respondWithTools([
          { name: "run_sql", args: { query: 5 }, id: "bad" },
          { name: "search_kb", args: { query: "x" }, id: "foreign" },
        ])
        .respondWithTools([{ name: "run_sql", args: { sql: "select 1 as one" }, id: "good" }])
        .respond(new AIMessage("one is 1")),
      synthesizer: echoSynthesizer(),
    });
    const config = threadConfig();
    const out = await graph.invoke({ request: "data question" }, config);
    expect(out.results[0]).toMatchObject({ status: "done", summary: "one is 1", tool_calls: 3 });
    const secondTurn = deps.models.data!.calls[1]!.messages.filter((m) => m.getType() === "tool").map(text);
    expect(secondTurn[0]).toMatch(/Invalid arguments for run_sql: sql: /);
    expect(secondTurn[1]).toMatch(
      /The data agent may not call search_kb \(it belongs to: research\)\. The call was refused and recorded\./,
    );
    expect(await toolRows(config.configurable.thread_id)).toEqual([
      { tool: "run_sql", status: "invalid_arguments" },
      { tool: "search_kb", status: "refused" },
      { tool: "run_sql", status: "ok" },
    ]);
  });

  it.each([
    ["an unknown agent type", { tasks: [task("t1", "finance")] }, /unknown agent type "finance"/],
    ["a cycle", { tasks: [task("t1", "data", ["t2"]), task("t2", "code", ["t1"])] }, /cycle/],
    [
      "a dangling depends_on",
      { tasks: [task("t1", "data", ["t7"])] },
      /depends on t7, which is not in the plan/,
    ],
    [
      "too many tasks",
      { tasks: Array.from({ length: 9 }, (_, i) => task(`t${i}`, "research")) },
      /more than the limit of 8/,
    ],
    ["a reply that is not a plan", { steps: "first research, then data" }, /tasks: /],
  ])("rejects a plan with %s before anything runs", async (_label, proposal, message) => {
    const { graph } = compile({ planner: fakeModel().structuredResponse(proposal) });
    const config = threadConfig();
    const run = graph.invoke({ request: "Count the orders by region" }, config);
    await expect(run).rejects.toThrow(PlanError);
    await expect(graph.invoke({ request: "Count the orders by region" }, threadConfig())).rejects.toThrow(
      message,
    );
    expect(await toolRows(config.configurable.thread_id)).toEqual([]);
  });

  it("refuses an empty request in guard_input, before the planner", async () => {
    const planner = fakeModel();
    const { graph } = compile({ planner });
    await expect(graph.invoke({ request: "  " }, threadConfig())).rejects.toThrow(/request is empty/);
    expect(planner.callCount).toBe(0);
  });

  it("stops an agent at the step limit", async () => {
    const loop = fakeModel();
    for (let i = 0; i < 3; i++) loop.respondWithTools([{ name: "list_tables", args: {}, id: `l${i}` }]);
    const { graph } = compile(
      {
        planner: fakeModel().structuredResponse({ tasks: [task("t1", "data")] }),
        data: loop,
        synthesizer: echoSynthesizer(),
      },
      { ...t.config.limits, maxAgentSteps: 2 },
    );
    const out = await graph.invoke({ request: "Count the orders" }, threadConfig());
    expect(out.results[0]).toMatchObject({
      status: "failed",
      error: "Stopped after the step limit of 2 model turns.",
    });
  });

  it("enforces timeout_seconds: the abort reaches the sandbox and dependants are not run", async () => {
    const { graph } = compile(
      {
        planner: fakeModel().structuredResponse({
          tasks: [task("t1", "code", [], { timeout_seconds: 0.5 }), task("t2", "communication", ["t1"])],
        }),
        code: fakeModel().respondWithTools([
          { name: "run_javascript", args: { code: "while (true) {}" }, id: "spin" },
        ]),
        synthesizer: echoSynthesizer(),
      },
      { ...t.config.limits, sandboxTimeoutMs: 30_000 },
    );
    const started = Date.now();
    const out = await graph.invoke({ request: "Calculate a long sum" }, threadConfig());
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(out.results.find((r) => r.task_id === "t1")).toMatchObject({
      status: "failed",
      reason: "timeout",
      error: "Timed out after 0.5 s (timeout_seconds).",
    });
    expect(out.results.find((r) => r.task_id === "t2")).toMatchObject({
      status: "failed",
      reason: "subtask_failed",
      error: "dependency t1 failed",
    });
    expect(out.final_answer).toContain("status: failed");
  });
});

describe("approval cycle", () => {
  const message = { to: "ops@harbor.example", subject: "Orders", body: "There are 639 orders." };

  async function runToApproval() {
    const { deps, graph } = compile({
      planner: fakeModel().structuredResponse({
        tasks: [task("t1", "data"), task("t2", "communication", ["t1"])],
      }),
      data: fakeModel()
        .respondWithTools([{ name: "run_sql", args: { sql: "select count(*) from orders" }, id: "q" }])
        .respond(new AIMessage("639 orders")),
      communication: fakeModel()
        .respondWithTools([{ name: "send_message", args: message, id: "send" }])
        .respond((messages) => new AIMessage(`after review: ${text(messages.at(-1)!)}`)),
      synthesizer: echoSynthesizer(),
    });
    const config = threadConfig();
    await graph.invoke({ request: "count orders and tell ops" }, config);
    const state = await graph.getState(config);
    return { deps, graph, config, state };
  }
  const outbox = async (threadId: string): Promise<Record<string, string | null>[]> => {
    const sql = "select recipient, subject, body, approved_by from outbox where thread_id = $1";
    return (await t.db.pool.query<Record<string, string | null>>(sql, [threadId])).rows;
  };

  it("interrupts before the send with the proposed message, then sends once on approve", async () => {
    const { graph, config, state } = await runToApproval();
    const interrupts = state.tasks.flatMap((x) => x.interrupts);
    expect(interrupts).toHaveLength(1);
    expect(interrupts[0]!.value).toMatchObject({
      kind: "approval",
      task_id: "t2",
      actions: [{ tool: "send_message", args: message, risk: "high" }],
    });
    expect(await outbox(config.configurable.thread_id)).toEqual([]);

    const out = await graph.invoke(new Command({ resume: { action: "approve", reviewer: "dana" } }), config);
    expect(await outbox(config.configurable.thread_id)).toEqual([
      { recipient: message.to, subject: message.subject, body: message.body, approved_by: "dana" },
    ]);
    expect(out.results.find((r) => r.task_id === "t2")).toMatchObject({
      status: "done",
      artifacts: [expect.stringMatching(/^outbox:\d+$/)],
    });
    // The data task before the interrupt did not run again on resume.
    expect((await toolRows(config.configurable.thread_id)).map((r) => r.tool)).toEqual([
      "run_sql",
      "send_message",
    ]);
  });

  it("sends the edited message when the reviewer edits it", async () => {
    const { graph, config } = await runToApproval();
    await graph.invoke(
      new Command({ resume: { action: "edit", args: { subject: "Order count" }, reviewer: "dana" } }),
      config,
    );
    expect(await outbox(config.configurable.thread_id)).toEqual([
      { recipient: message.to, subject: "Order count", body: message.body, approved_by: "dana" },
    ]);
  });

  it("does not send on reject; the agent is told and the task ends rejected", async () => {
    const { deps, graph, config } = await runToApproval();
    const out = await graph.invoke(
      new Command({ resume: { action: "reject", reason: "wrong audience", reviewer: "dana" } }),
      config,
    );
    expect(await outbox(config.configurable.thread_id)).toEqual([]);
    const result = out.results.find((r) => r.task_id === "t2")!;
    expect(result).toMatchObject({
      status: "rejected",
      error: "send_message rejected by dana: wrong audience",
    });
    expect(text(deps.models.communication!.calls[1]!.messages.at(-1)!)).toMatch(
      /A person rejected this send_message call: wrong audience/,
    );
    expect((await toolRows(config.configurable.thread_id)).map((r) => r.status)).toEqual(["ok", "rejected"]);
  });
});
