import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { once } from "node:events";
import path from "node:path";
import { emptyCheckpoint } from "@langchain/langgraph";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { namedFailure } from "../../core/errors.js";
import { decide, listApprovals } from "../../runtime/approvals.js";
import { cancelTree, retryTask } from "../../runtime/task/cancel.js";
import { FencedSaver } from "../../runtime/fence.js";
import { isSettled } from "../../runtime/follow.js";
import { DEFAULT_QUEUE, prepareQueue, runJob, scheduleWatch } from "../../runtime/queue.js";
import { FencedOutError, IllegalTransitionError } from "../../runtime/task/rules.js";
import { getTree, inTransaction, submit, transition } from "../../runtime/task/store.js";
import { retryDelayMs } from "../../runtime/task/settle.js";
import { Runner } from "../../runtime/runner.js";
import { TaskWorker } from "../../runtime/worker.js";
import { fakeModel, scriptedDeps } from "../fakes/deps.js";
import { FlakyModel, HangingModel } from "../fakes/hanging-model.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";
import { eventsOfTask, waitForTask } from "../helpers/tasks.js";

/**
 * Leaves the task as a worker that claimed it and died leaves it: running, its lease in the past, no run job,
 * and a lease check due now. `set` adds columns to the update.
 */
async function diedHolding(taskId: string, set = ""): Promise<void> {
  await t.db.pool.query(
    `update tasks set status = 'running', lease_owner = 'dead-worker', lease_expires_at = now() - interval '1 second'${set} where id = $1`,
    [taskId],
  );
  await t.db.pool.query("select graphile_worker.remove_job($1)", [`run:${taskId}`]);
  await scheduleWatch(t.db.pool, taskId, new Date());
}

const DYING_RUNNER = path.join(import.meta.dirname, "../fakes/dying-job-runner.ts");

let t: TestDatabase;
const workers: TaskWorker[] = [];
beforeAll(async () => {
  t = await createTestDatabase({
    KEEL_LEASE_SECONDS: "2",
    KEEL_RETRY_BASE_MS: "50",
    KEEL_APPROVAL_TTL_SECONDS: "3600",
  });
  await prepareQueue(t.db.pool);
});
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop()));
});
afterAll(async () => {
  await t?.drop();
});

async function startWorker(deps?: Parameters<typeof TaskWorker.start>[2]["deps"], config = t.config) {
  const worker = await TaskWorker.start(t.db, config, { concurrency: 2, deps });
  workers.push(worker);
  return worker;
}
const submitRequest = (request: string, extra: { idempotencyKey?: string; maxRetries?: number } = {}) =>
  submit(t.db.pool, t.config, { request, ...extra });
const statuses = async (id: string) =>
  (await getTree(t.db.pool, id)).map((r) => [r.agent_task_id ?? "root", r.status]);

describe("task store", () => {
  it("persists every transition with its event in one transaction and refuses illegal ones", async () => {
    const { task } = await submitRequest("Is 97 a prime number?");
    await expect(inTransaction(t.db.pool, (c) => transition(c, task.id, "done"))).rejects.toThrow(
      IllegalTransitionError,
    );
    await inTransaction(t.db.pool, (c) => transition(c, task.id, "cancelled", { reason: "test" }));
    expect(await eventsOfTask(t.db.pool, task.id)).toEqual([
      { from: null, to: "queued", reason: "submitted" },
      { from: "queued", to: "cancelled", reason: "test" },
    ]);
  });

  it("refuses a write with a stale fencing token, in the store and in the checkpointer", async () => {
    const { task } = await submitRequest("Calculate 6 * 7");
    await t.db.pool.query("update tasks set status = 'running', fencing_token = 5 where id = $1", [task.id]);
    await expect(
      inTransaction(t.db.pool, (c) => transition(c, task.id, "done", { token: "4" })),
    ).rejects.toThrow(FencedOutError);
    const saver = new FencedSaver(t.db.pool);
    saver.tokens.set(task.id, { taskId: task.id, token: "4" });
    const config = { configurable: { thread_id: task.id, checkpoint_ns: "" } };
    const writes = async () =>
      (
        await t.db.pool.query<{ n: number }>(
          "select count(*)::int as n from checkpoint_writes where thread_id = $1",
          [task.id],
        )
      ).rows[0]!.n;
    const withId = { configurable: { ...config.configurable, checkpoint_id: "c1" } };
    await expect(saver.putWrites(withId, [["x", 1]], "task")).rejects.toThrow(FencedOutError);
    expect(await writes()).toBe(0); // refused before anything was written
    saver.tokens.set(task.id, { taskId: task.id, token: "5" });
    await expect(saver.putWrites(withId, [["x", 1]], "task")).resolves.toBeUndefined();
    expect(await writes()).toBe(1);
    // A takeover bumps the token: the old holder's next checkpoint is refused, and the saver stays usable.
    await t.db.pool.query("update tasks set fencing_token = 6 where id = $1", [task.id]);
    const checkpoint = { ...emptyCheckpoint(), id: "c2" };
    await expect(saver.put(config, checkpoint, { source: "loop", step: 1, parents: {} }, {})).rejects.toThrow(
      FencedOutError,
    );
    expect(await saver.getTuple({ configurable: { thread_id: task.id } })).toBeUndefined();
    saver.tokens.set(task.id, { taskId: task.id, token: "6" });
    await saver.put(config, checkpoint, { source: "loop", step: 1, parents: {} }, {});
    expect((await saver.getTuple({ configurable: { thread_id: task.id } }))?.checkpoint.id).toBe("c2");
  });

  it("makes a takeover wait for a fenced checkpoint write in flight", async () => {
    const { task } = await submitRequest("Calculate 7 * 7");
    await t.db.pool.query("update tasks set status = 'running', fencing_token = 3 where id = $1", [task.id]);
    const holder = await t.db.pool.connect();
    try {
      // What a fenced write transaction does first: the share lock is held until it commits.
      await holder.query("begin");
      await holder.query("select keel_hold_fence($1, 3)", [task.id]);
      let tookOver = false;
      const takeover = t.db.pool
        .query("update tasks set fencing_token = fencing_token + 1 where id = $1", [task.id])
        .then(() => (tookOver = true));
      await new Promise((r) => setTimeout(r, 200));
      expect(tookOver).toBe(false);
      await holder.query("commit");
      await takeover;
      await expect(holder.query("select keel_hold_fence($1, 3)", [task.id])).rejects.toMatchObject({
        code: "KF001",
      });
    } finally {
      holder.release();
    }
  });
  it("refuses a fenced write that waited for a takeover in progress: it reads the token the takeover left", async () => {
    const { task } = await submitRequest("Calculate 8 * 7");
    await t.db.pool.query("update tasks set status = 'running', fencing_token = 3 where id = $1", [task.id]);
    const takeover = await t.db.pool.connect();
    try {
      // The takeover has moved the token but not committed: a write under the old token waits, then is refused.
      await takeover.query("begin");
      await takeover.query("update tasks set fencing_token = 4 where id = $1", [task.id]);
      let settled = false;
      const write = t.db.pool
        .query("select keel_hold_fence($1, 3)", [task.id])
        .finally(() => (settled = true));
      write.catch(() => undefined);
      await new Promise((r) => setTimeout(r, 200));
      expect(settled).toBe(false);
      await takeover.query("commit");
      await expect(write).rejects.toMatchObject({ code: "KF001" });
      // The new holder's writes go ahead.
      await expect(t.db.pool.query("select keel_hold_fence($1, 4)", [task.id])).resolves.toBeDefined();
    } finally {
      takeover.release();
    }
  });
});

describe("run context", () => {
  it("a fenced run without its fencing token fails loudly before any step runs", async () => {
    const runner = await Runner.withSaver(t.db, t.config, (pool) => new FencedSaver(pool));
    const threadId = randomUUID();
    await expect(
      runner.begin("Email ops@harbor.example that the drill is at noon", threadId),
    ).rejects.toThrow(/fenced but carries no fencing token/);
    const steps = await t.db.pool.query("select 1 from trajectory_steps where thread_id = $1", [threadId]);
    const outbox = await t.db.pool.query("select 1 from outbox where thread_id = $1", [threadId]);
    expect([steps.rowCount, outbox.rowCount]).toEqual([0, 0]);
  });
});

describe("idempotent submit", () => {
  it("returns the same task for the same key and payload, sequentially and concurrently", async () => {
    const first = await submitRequest("Calculate 2 + 2", { idempotencyKey: "seq-1" });
    const again = await submitRequest("Calculate 2 + 2", { idempotencyKey: "seq-1" });
    expect([first.created, again.created]).toEqual([true, false]);
    expect(again.task.id).toBe(first.task.id);

    const racing = await Promise.all(
      Array.from({ length: 10 }, () => submitRequest("Calculate 3 + 3", { idempotencyKey: "race-1" })),
    );
    expect(new Set(racing.map((r) => r.task.id)).size).toBe(1);
    expect(racing.filter((r) => r.created)).toHaveLength(1);
    const { rows } = await t.db.pool.query(
      "select count(*)::int as n from tasks where idempotency_key = 'race-1'",
    );
    expect(rows[0].n).toBe(1);
  });

  it("refuses the same key with another payload, and forgets keys past their time", async () => {
    const { task } = await submitRequest("Calculate 5 + 5", { idempotencyKey: "conflict-1" });
    await expect(submitRequest("Calculate 9 + 9", { idempotencyKey: "conflict-1" })).rejects.toThrow(
      /already used for a different request/,
    );
    await t.db.pool.query(
      "update tasks set idempotency_expires_at = now() - interval '1 second' where id = $1",
      [task.id],
    );
    const later = await submitRequest("Calculate 9 + 9", { idempotencyKey: "conflict-1" });
    expect(later.created).toBe(true);
  });
});

describe("workers", () => {
  // Tasks the store tests left queued would be picked up by these workers and consume their scripts.
  beforeEach(async () => {
    const { rows } = await t.db.pool.query<{ id: string }>(
      "select id from tasks where status = 'queued' and parent_id is null",
    );
    for (const row of rows) await cancelTree(t.db.pool, row.id, "cleared between tests");
  });

  it("runs a task to done and records the child tree", async () => {
    await startWorker();
    const { task } = await submitRequest("Find the refund policy and count refunded orders by region");
    const done = await waitForTask(t.db.pool, task.id, (r) => r.status === "done");
    expect(done.attempts).toBe(1);
    expect(done.final_answer).toContain("[t2]");
    expect(await statuses(task.id)).toEqual([
      ["root", "done"],
      ["t1", "done"],
      ["t2", "done"],
    ]);
  });

  it("retries a failed attempt after a backoff and continues from the checkpoint", async () => {
    const flaky = new FlakyModel(1, "Calculate 6 * 7");
    await startWorker({ model: () => flaky });
    const { task } = await submitRequest("Calculate 6 * 7");
    const done = await waitForTask(t.db.pool, task.id, (r) => r.status === "done");
    expect(done.attempts).toBe(2);
    const events = await eventsOfTask(t.db.pool, task.id);
    expect(events.map((e) => e.to)).toEqual(["queued", "running", "failed", "queued", "running", "done"]);
    expect(events[3]!.reason).toMatch(/^retry in \d+ ms$/);
  });

  it("fails at once, without retrying, on errors a retry cannot fix", async () => {
    const planner = fakeModel().structuredResponse({
      tasks: [{ task_id: "t1", type: "finance", objective: "x" }],
    });
    await startWorker(scriptedDeps(t.db.pool, t.config.limits, { planner }));
    const { task } = await submitRequest("Audit the orders");
    const failed = await waitForTask(t.db.pool, task.id, (r) => r.status === "failed");
    expect(failed).toMatchObject({ attempts: 1, error_reason: "invalid_plan" });
    expect(failed.last_error).toMatch(/unknown agent type "finance"/);
  });

  it("takes over a task whose worker died once its lease expires, from the checkpoint", async () => {
    const { task } = await submitRequest("Calculate the first 10 Fibonacci numbers");
    // A worker claimed it and died: running, lease in the past, a lease check due now.
    await diedHolding(task.id, ", attempts = 1, fencing_token = 7");
    await startWorker();
    const done = await waitForTask(t.db.pool, task.id, (r) => r.status === "done");
    // The lost worker is a crash, not a failed attempt: the attempt it used is given back.
    expect(done).toMatchObject({ attempts: 1, crashes: 1 });
    expect(Number(done.fencing_token)).toBeGreaterThan(8);
    const reasons = (await eventsOfTask(t.db.pool, task.id)).map((e) => e.reason);
    expect(reasons).toContain("lease_expired");
  });

  it("re-queues a queued task whose job a dead worker had taken, when its watch comes round", async () => {
    const { task } = await submitRequest("Calculate 11 * 11");
    // A real job runner takes the run job and is killed holding it; the job stays locked by the dead process.
    const dying = spawn(process.execPath, ["--import", "tsx", DYING_RUNNER, t.url, runJob(DEFAULT_QUEUE)], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let said = "";
    dying.stdout.on("data", (chunk: Buffer) => (said += chunk.toString()));
    const [, signal] = (await once(dying, "exit")) as [number | null, string | null];
    expect([said.trim(), signal]).toEqual(["taken", "SIGKILL"]);
    expect((await getTree(t.db.pool, task.id))[0]!.status).toBe("queued");
    await scheduleWatch(t.db.pool, task.id, new Date()); // the watch comes round now rather than in a lease
    await startWorker();
    const done = await waitForTask(t.db.pool, task.id, (r) => r.status === "done");
    expect(done.attempts).toBe(1);
  });

  it("releases running tasks on a graceful stop; another worker finishes them without using an attempt", async () => {
    const hanging = new HangingModel();
    const first = await startWorker({ model: () => hanging });
    const { task } = await submitRequest("Is 13 a prime number?");
    await waitForTask(t.db.pool, task.id, (r) => r.status === "running");
    while (hanging.started === 0) await new Promise((r) => setTimeout(r, 20));
    await first.stop();
    // The stop reached the model call (a stray queued task of an earlier test may have been running too).
    expect(hanging.aborted).toBeGreaterThanOrEqual(1);
    expect(hanging.aborted).toBe(hanging.started);
    await startWorker();
    const done = await waitForTask(t.db.pool, task.id, (r) => r.status === "done");
    expect(done.attempts).toBe(1);
    // A clean release is not a failure: running -> queued, then the next worker's run.
    const events = await eventsOfTask(t.db.pool, task.id);
    expect(events.map((e) => e.to)).toEqual(["queued", "running", "queued", "running", "done"]);
    expect(events[2]!.reason).toBe("released by a stopping worker");
  });

  it("fails a request past its deadline, aborting the model call", async () => {
    const hanging = new HangingModel();
    const config = { ...t.config, runtime: { ...t.config.runtime, requestDeadlineSeconds: 1 } };
    await startWorker({ model: () => hanging }, config);
    const { task } = await submit(t.db.pool, config, { request: "Is 17 a prime number?" });
    const failed = await waitForTask(t.db.pool, task.id, (r) => r.status === "failed");
    expect(failed.error_reason).toBe("timeout");
    expect(hanging.aborted).toBe(1);
  });
});

describe("cancel", () => {
  it("cancels a queued tree: it never starts", async () => {
    const { task } = await submitRequest("Calculate 1 + 1");
    const { cancelled } = await cancelTree(t.db.pool, task.id);
    expect(cancelled).toBe(1);
    await startWorker();
    await new Promise((r) => setTimeout(r, 1500));
    expect(await statuses(task.id)).toEqual([["root", "cancelled"]]);
    expect((await cancelTree(t.db.pool, task.id)).cancelled).toBe(0); // idempotent
  });

  it("cancels a running tree: the abort reaches the model call at once", async () => {
    const hanging = new HangingModel();
    await startWorker({ model: () => hanging });
    const { task } = await submitRequest("Is 19 a prime number?");
    await waitForTask(t.db.pool, task.id, (r) => r.status === "running");
    while (hanging.started === 0) await new Promise((r) => setTimeout(r, 20));
    await cancelTree(t.db.pool, task.id);
    const deadline = Date.now() + 5_000;
    while (hanging.aborted === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(hanging.aborted).toBe(1);
    expect(await statuses(task.id)).toEqual([["root", "cancelled"]]);
  });

  it("cancels a waiting tree: its approvals are withdrawn and cannot be decided", async () => {
    await startWorker();
    const { task } = await submitRequest("Email oncall@harbor.example that the drill is cancelled");
    await waitForTask(t.db.pool, task.id, isSettled);
    const [approval] = (await listApprovals(t.db.pool)).filter((a) => a.task_id === task.id);
    await cancelTree(t.db.pool, task.id);
    expect(await statuses(task.id)).toEqual([
      ["root", "cancelled"],
      ["t1", "cancelled"],
    ]);
    await expect(decide(t.db.pool, approval!.id, { action: "approve" })).rejects.toThrow(/already withdrawn/);
  });
});

describe("approvals", () => {
  it("hold the full context, resume the thread on approve, and refuse a second decision", async () => {
    await startWorker();
    const { task } = await submitRequest("Email oncall@harbor.example that the drill moves to Friday");
    await waitForTask(t.db.pool, task.id, isSettled);
    const [approval] = (await listApprovals(t.db.pool)).filter((a) => a.task_id === task.id);
    expect(approval!.context).toMatchObject({
      request: "Email oncall@harbor.example that the drill moves to Friday",
      agent: "communication",
      actions: [{ tool: "send_message", risk: "high", args: { to: "oncall@harbor.example" } }],
      why: expect.stringMatching(/send_message is high risk, and high risk means async approval/),
    });
    await decide(t.db.pool, approval!.id, { action: "approve", reviewer: "ana" });
    await expect(decide(t.db.pool, approval!.id, { action: "reject" })).rejects.toThrow(
      /already approved \(by ana\)/,
    );
    const done = await waitForTask(t.db.pool, task.id, (r) => r.status === "done");
    expect(done.final_answer).toMatch(/Sent "The drill moves to Friday"/);
    const { rows } = await t.db.pool.query("select approved_by from outbox where thread_id = $1", [task.id]);
    expect(rows).toEqual([{ approved_by: "ana" }]);
  });

  it("keeps a decision when the worker resuming it dies: the next worker resumes with it", async () => {
    await startWorker();
    const { task } = await submitRequest("Email oncall@harbor.example that the drill moved to Monday");
    await waitForTask(t.db.pool, task.id, isSettled);
    await Promise.all(workers.splice(0).map((w) => w.stop()));
    const [approval] = (await listApprovals(t.db.pool)).filter((a) => a.task_id === task.id);
    await decide(t.db.pool, approval!.id, { action: "approve", reviewer: "kim" });
    // A worker claimed the resume (which uses no attempt) and died before it wrote anything.
    await diedHolding(task.id, ", claim_counted = false");
    await startWorker();
    const done = await waitForTask(t.db.pool, task.id, (r) => r.status === "done");
    expect(done.final_answer).toMatch(/Sent/);
    expect(done).toMatchObject({ crashes: 1, attempts: 2 }); // the first run and the retry after the crash
    const { rows } = await t.db.pool.query("select status from approvals where task_id = $1", [task.id]);
    expect(rows).toEqual([{ status: "approved" }]);
    const outbox = await t.db.pool.query("select approved_by from outbox where thread_id = $1", [task.id]);
    expect(outbox.rows).toEqual([{ approved_by: "kim" }]);
  });

  it("expire: the task fails with reason approval_expired", async () => {
    const config = { ...t.config, runtime: { ...t.config.runtime, approvalTtlSeconds: 1 } };
    await startWorker(undefined, config);
    const { task } = await submit(t.db.pool, config, {
      request: "Email oncall@harbor.example that the drill is on",
    });
    const failed = await waitForTask(t.db.pool, task.id, (r) => r.status === "failed", 30_000);
    expect(failed.error_reason).toBe("approval_expired");
    const { rows } = await t.db.pool.query("select status from approvals where task_id = $1", [task.id]);
    expect(rows).toEqual([{ status: "expired" }]);
  });

  it("a manual retry queues a failed task again", async () => {
    const { task } = await submitRequest("Calculate 8 * 8", { maxRetries: 0 });
    await inTransaction(t.db.pool, async (c) => {
      await transition(c, task.id, "running");
      await transition(c, task.id, "failed", { patch: { failure: namedFailure("internal", "boom") } });
    });
    await expect(retryTask(t.db.pool, task.id)).resolves.toMatchObject({ status: "queued" });
    await expect(retryTask(t.db.pool, task.id)).rejects.toThrow(/only a failed task can be retried/);
  });
});

describe("retry backoff", () => {
  it("grows exponentially and is jittered", () => {
    expect(retryDelayMs(1, 1000, () => 1)).toBe(1000);
    expect(retryDelayMs(3, 1000, () => 1)).toBe(4000);
    expect(retryDelayMs(3, 1000, () => 0.5)).toBe(2000);
    expect(retryDelayMs(3, 1000, () => 0)).toBe(0);
  });
});
