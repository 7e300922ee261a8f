import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dualRunReport } from "../../evals/dual-run.js";
import { DEFAULT_POLICY } from "../../policy/file.js";
import { isSettled } from "../../runtime/follow.js";
import { prepareQueue } from "../../runtime/queue.js";
import { SHADOW_QUEUE, startShadow, stopShadow } from "../../runtime/releases/shadows.js";
import { specFromConfig, type ReleaseSpec } from "../../runtime/releases/spec.js";
import { createRelease, type ReleaseRow } from "../../runtime/releases/store.js";
import { readTask } from "../../runtime/task/sql.js";
import { submit } from "../../runtime/task/store.js";
import { TaskWorker } from "../../runtime/worker.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";
import { waitForTask } from "../helpers/tasks.js";

let t: TestDatabase;
let spec: ReleaseSpec;
const workers: TaskWorker[] = [];
// Anything Keel might call on the side: the webhook tool's endpoint, and a model endpoint that never answers.
const calls: string[] = [];
let server: http.Server;
let base: string;

beforeAll(async () => {
  server = http.createServer((req) => {
    calls.push(req.url ?? "");
    // Never answers: a model endpoint that hangs (and a webhook that would, were it ever called).
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  t = await createTestDatabase({ KEEL_APPROVAL_TTL_SECONDS: "3600", KEEL_WEBHOOK_URL: `${base}/webhook` });
  await prepareQueue(t.db.pool);
  spec = specFromConfig(t.config, DEFAULT_POLICY);
  // The primaries' workers and the shadows' apart, as the docs advise: a shadow never takes a primary's place.
  workers.push(await TaskWorker.start(t.db, t.config, { concurrency: 2 }));
  workers.push(await TaskWorker.start(t.db, t.config, { concurrency: 2, queues: [SHADOW_QUEUE] }));
}, 60_000);
afterAll(async () => {
  await Promise.all(workers.map((w) => w.stop()));
  server.closeAllConnections();
  server.close();
  await t?.drop();
});

const make = async (name: string, change: Partial<ReleaseSpec>): Promise<ReleaseRow> =>
  (await createRelease(t.db.pool, { name, spec: { ...spec, ...change }, source: "test", createdBy: "test" }))
    .release;

describe("a shadow dual run", () => {
  it("simulates the candidate's send: recorded and reported, with no outbox row, no approval and no webhook call", async () => {
    const candidate = await make("next", { limits: { ...spec.limits, maxAgentSteps: 7 } });
    await startShadow(t.db.pool, { candidate, percent: 100, actor: "ana" });
    try {
      const request = "Email ops@harbor.example that the drill is on Friday";
      const { task: primary } = await submit(t.db.pool, t.config, { request });
      const { rows } = await t.db.pool.query<{ id: string }>("select id from tasks where shadow_of = $1", [
        primary.id,
      ]);
      expect(rows).toHaveLength(1);
      const shadowId = rows[0]!.id;
      const shadow = await waitForTask(t.db.pool, shadowId, isSettled, 60_000);
      expect(shadow).toMatchObject({
        status: "done",
        release_id: candidate.id,
        workflow: "shadow",
        queue: "shadow",
      });
      expect((await waitForTask(t.db.pool, primary.id, isSettled, 60_000)).status).toBe(
        "waiting_for_approval",
      );

      const count = async (sql: string) => (await t.db.pool.query<{ n: number }>(sql, [shadowId])).rows[0]!.n;
      expect(await count("select count(*)::int as n from outbox where thread_id = $1::text")).toBe(0);
      expect(await count("select count(*)::int as n from effects where thread_id = $1::text")).toBe(0);
      expect(
        await count(
          "select count(*)::int as n from approvals a join tasks c on c.id = a.task_id where c.root_id = $1",
        ),
      ).toBe(0);
      expect(calls).toEqual([]);
      const { rows: simulated } = await t.db.pool.query(
        "select tool, decision, args from simulated_effects where thread_id = $1::text",
        [shadowId],
      );
      expect(simulated).toEqual([
        {
          tool: "send_message",
          decision: "async_approval",
          args: expect.objectContaining({ subject: expect.any(String) }),
        },
      ]);

      const report = await dualRunReport(t.db.pool);
      const entry = report.entries.find((e) => e.primary.task_id === primary.id)!;
      expect(entry.shadow.simulated.map((s) => [s.tool, s.decision])).toEqual([
        ["send_message", "async_approval"],
      ]);
      expect(entry).toMatchObject({ settled: true, same_outcome: true, regressions: [] });
      expect(entry.trajectory!.superset).toBe(true);
      expect(entry.shadow.tools.map((c) => c.tool)).toEqual(["draft_message", "send_message"]);
      expect(entry.primary.tools.map((c) => c.tool)).toEqual(["draft_message"]);
    } finally {
      await stopShadow(t.db.pool);
    }
  }, 120_000);

  it("never delays or fails the primary when the candidate hangs or crashes", async () => {
    const hanging = await make("hanging", {
      model: { name: "gpt-4o", base_url: `${base}/v1`, max_tokens: 100, temperature: 0 },
      limits: { ...spec.limits, modelTimeoutMs: 60_000 },
    });
    const broken = await make("broken", { model: { name: "gpt-4o", max_tokens: 100, temperature: 0 } });
    for (const candidate of [hanging, broken]) {
      await startShadow(t.db.pool, { candidate, percent: 100, actor: "ana" });
      try {
        const { task } = await submit(t.db.pool, t.config, { request: "Is 97 a prime number?" });
        const done = await waitForTask(t.db.pool, task.id, isSettled, 60_000);
        expect(done.status).toBe("done");
        expect(done.final_answer).toMatch(/97/);
        const { rows } = await t.db.pool.query<{ id: string }>("select id from tasks where shadow_of = $1", [
          task.id,
        ]);
        const shadow = (await readTask(t.db.pool, rows[0]!.id))!;
        if (candidate === hanging)
          expect(shadow.status).not.toBe("done"); // still waiting on its model
        else {
          const ended = await waitForTask(t.db.pool, shadow.id, isSettled, 60_000);
          expect(ended).toMatchObject({ status: "failed", error_reason: "configuration_error" });
        }
      } finally {
        await stopShadow(t.db.pool);
      }
    }
    expect(calls.some((c) => c.startsWith("/v1/chat/completions"))).toBe(true);
  }, 180_000);
});
