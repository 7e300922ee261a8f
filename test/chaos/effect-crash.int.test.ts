import { spawn, type ChildProcess } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decide, listApprovals } from "../../runtime/approvals.js";
import { prepareQueue } from "../../runtime/queue.js";
import { submit, type TaskRow } from "../../runtime/store.js";
import { KEEL_BIN } from "../helpers/cli.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";
import { waitForTask } from "../helpers/tasks.js";

/**
 * Exactly once: a worker is killed (SIGKILL, by the `after_effect_commit` failpoint) right after a message's
 * outbox row and ledger row commit, before the step's checkpoint is written. Another worker takes the task over
 * when the lease runs out and re-runs the step from the checkpoint: the ledger returns the committed result
 * instead of sending again.
 */
let t: TestDatabase;
const children = new Set<ChildProcess>();

function startWorker(extra: Record<string, string> = {}): ChildProcess {
  const child = spawn(process.execPath, [KEEL_BIN, "worker", "--concurrency", "1"], {
    env: {
      PATH: process.env.PATH ?? "",
      HOME: process.env.HOME ?? "",
      DATABASE_URL: t.url,
      KEEL_LEASE_SECONDS: "2",
      KEEL_RETRY_BASE_MS: "50",
      ...extra,
    },
    stdio: "ignore",
  });
  children.add(child);
  child.on("exit", () => children.delete(child));
  return child;
}

beforeAll(async () => {
  t = await createTestDatabase({ KEEL_LEASE_SECONDS: "2" });
  await prepareQueue(t.db.pool);
});
afterAll(async () => {
  for (const child of children) child.kill("SIGKILL");
  await t?.drop();
});

describe("effect ledger under a crash", () => {
  it("writes exactly one outbox row and one ledger row when a worker dies between the effect and the checkpoint", async () => {
    const doomed = startWorker({ KEEL_FAILPOINT: "after_effect_commit" });
    const died = new Promise<NodeJS.Signals | null>((resolve) =>
      doomed.on("exit", (_code, signal) => resolve(signal)),
    );
    const { task } = await submit(t.db.pool, t.config, {
      request: "Email oncall@harbor.example that the drill is at noon",
    });
    await waitForTask(t.db.pool, task.id, (r) => r.status === "waiting_for_approval", 30_000);
    const [approval] = (await listApprovals(t.db.pool)).filter((a) => a.task_id === task.id);
    await decide(t.db.pool, approval!.id, { action: "approve", reviewer: "ana" });

    expect(await died).toBe("SIGKILL");
    const rows = async (sql: string): Promise<Record<string, unknown>[]> =>
      (await t.db.pool.query<Record<string, unknown>>(sql, [task.id])).rows;
    // The effect committed before the crash; the step that made it has no checkpoint yet.
    expect(await rows("select state from effects where thread_id = $1")).toEqual([{ state: "committed" }]);
    expect(await rows("select 1 from outbox where thread_id = $1")).toHaveLength(1);

    startWorker();
    const done = await waitForTask(t.db.pool, task.id, (r: TaskRow) => r.status === "done", 60_000);
    expect(done.final_answer).toMatch(/Sent "The drill is at noon"/);
    expect(await rows("select approved_by, status from outbox where thread_id = $1")).toEqual([
      { approved_by: "ana", status: "queued" },
    ]);
    expect(await rows("select tool, state from effects where thread_id = $1")).toEqual([
      { tool: "send_message", state: "committed" },
    ]);
    // The task was taken over after the lease ran out, not started over.
    const events = await rows("select reason from task_events where task_id = $1 order by id");
    expect(events.map((e) => e.reason)).toContain("lease_expired");
  }, 120_000);
});
