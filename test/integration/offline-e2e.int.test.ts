import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SAMPLES } from "../../evals/samples.js";
import { DEFAULT_POLICY } from "../../policy/file.js";
import { decide, listApprovals } from "../../runtime/approvals.js";
import { isSettledForCaller } from "../../runtime/follow.js";
import { describeTask, type TaskOutcome } from "../../reports/status.js";
import { submitRequest } from "../../runtime/submit.js";
import { TaskWorker } from "../../runtime/worker.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";
import { waitForTask } from "../helpers/tasks.js";

let t: TestDatabase;
let worker: TaskWorker;
beforeAll(async () => {
  t = await createTestDatabase();
  worker = await TaskWorker.start(t.db, t.config, { concurrency: 2 });
});
afterAll(async () => {
  await worker?.stop();
  await t?.drop();
});

/**
 * Runs a request as a user does (submit, a worker drives it), approving every held action, and returns where it
 * ended and how many approvals it asked for.
 */
async function runApproving(request: string): Promise<{ outcome: TaskOutcome; approvals: number }> {
  const { task } = await submitRequest(t.db.pool, t.config, DEFAULT_POLICY.scope, { request });
  let approvals = 0;
  for (;;) {
    const root = await waitForTask(t.db.pool, task.id, (r) => isSettledForCaller(t.db.pool, r), 60_000);
    if (root.status !== "waiting_for_approval" || approvals >= 5) break;
    for (const pending of await listApprovals(t.db.pool, "pending", task.id)) {
      approvals++;
      await decide(t.db.pool, pending.id, { action: "approve", reviewer: "test" });
    }
  }
  return { outcome: await describeTask(t.db.pool, task.id), approvals };
}

describe("offline model, end to end on real tools", () => {
  it.each(SAMPLES.map((s) => [s.id, s] as const))(
    "sample %i completes with the expected agents",
    async (_id, sample) => {
      const { outcome, approvals } = await runApproving(sample.request);
      expect(outcome.status).toBe("done");
      expect(outcome.results.every((r) => r.status === "done")).toBe(true);
      expect([...new Set(outcome.plan!.tasks.map((x) => x.type))].sort()).toEqual([...sample.agents].sort());
      expect(approvals > 0).toBe(sample.needsApproval);
      for (const task of outcome.plan!.tasks) expect(outcome.final_answer).toContain(`[${task.task_id}]`);
    },
  );

  it("answers the data question with the numbers in the database", async () => {
    const { rows } = await t.db.pool.query<{ name: string }>(
      `select c.name from demo.orders o join demo.order_items oi on oi.order_id = o.id join demo.customers c on c.id = o.customer_id
        where extract(year from o.ordered_at) = 2025 and o.status not in ('cancelled', 'refunded')
        group by c.name order by sum(oi.quantity * oi.unit_price) desc limit 1`,
    );
    const { outcome } = await runApproving("Who were our 3 biggest customers by revenue in 2025?");
    expect(outcome.final_answer).toContain(rows[0]!.name);
  });

  it("counts every 2025 order month by month, and computes growth over those counts", async () => {
    const { outcome } = await runApproving(SAMPLES.find((s) => s.id === 6)!.request);
    const rows = (outcome.results.find((r) => r.task_id === "t1")!.data as { rows: { orders: string }[] })
      .rows;
    const { rows: total } = await t.db.pool.query<{ n: string }>(
      "select count(*) as n from demo.orders where extract(year from ordered_at) = 2025",
    );
    expect(rows).toHaveLength(12);
    expect(rows.reduce((sum, r) => sum + Number(r.orders), 0)).toBe(Number(total[0]!.n));
    expect(outcome.results.find((r) => r.task_id === "t2")!.summary).toMatch(
      /average growth -?\d+(\.\d+)?% per period/,
    );
  });

  it.each([
    ["Work out the first 15 numbers of the Fibonacci sequence", "377"],
    ["Check whether 7919 is prime", "prime: true"],
    ["How are SEV1 incidents handled according to the incident runbook?", "5 minutes"],
    ["What does the expense policy allow for meals while travelling?", "75 USD"],
  ])("rephrased request %j finds %j", async (request, fact) => {
    const { outcome } = await runApproving(request);
    expect(outcome.status).toBe("done");
    expect(outcome.final_answer).toContain(fact);
  });

  it("sends the all-agent sample's message exactly once, with the computed shares in it", async () => {
    const { outcome } = await runApproving(SAMPLES[0]!.request);
    const { rows } = await t.db.pool.query<{ body: string }>("select body from outbox where thread_id = $1", [
      outcome.thread_id,
    ]);
    expect(rows).toHaveLength(1);
    expect(rows[0]!.body).toMatch(/South \d+(\.\d+)?%/);
    expect(rows[0]!.body).toMatch(/Shipping Policy/);
  });
});
