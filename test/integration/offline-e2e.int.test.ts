import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SAMPLES } from "../../evals/samples.js";
import type { ProgressEvent } from "../../graphs/progress.js";
import { Runner, type RunOutcome } from "../../runtime/runner.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";

let t: TestDatabase;
let runner: Runner;
beforeAll(async () => {
  t = await createTestDatabase();
  runner = await Runner.open(t.config);
});
afterAll(async () => {
  await runner?.close();
  await t?.drop();
});

/** Runs a request on the offline model, approving every held action, and returns the outcome and events. */
async function runApproving(
  request: string,
): Promise<{ outcome: RunOutcome; events: ProgressEvent[]; approvals: number }> {
  const events: ProgressEvent[] = [];
  const onEvent = (e: ProgressEvent) => events.push(e);
  let outcome = await runner.start(request, randomUUID(), t.config.limits.maxRequestChars, { onEvent });
  let approvals = 0;
  while (outcome.status === "waiting_for_approval" && approvals < 5) {
    approvals++;
    outcome = await runner.resume(outcome.thread_id, { action: "approve", reviewer: "test" }, { onEvent });
  }
  return { outcome, events, approvals };
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
