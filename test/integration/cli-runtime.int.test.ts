import { describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { StateGraph, StateSchema } from "@langchain/langgraph";
import { z } from "zod";
import { KeelSaver } from "../../checkpoints/keel-saver.js";
import { json, keel, KEEL_BIN } from "../helpers/cli.js";
import { useTestDatabase, type TestDatabase } from "../helpers/db.js";

let t: TestDatabase;
let env: Record<string, string>;
useTestDatabase((db, dbEnv) => ((t = db), (env = dbEnv)));

describe("keel submit / worker / status / list / watch", () => {
  it("submits idempotently, and refuses a key reused for another request", async () => {
    const first = json<{ task_id: string; created: boolean }>(
      await keel(["submit", "--json", "--idempotency-key", "cli-k1", "Calculate 4 * 4"], env),
    );
    const again = json<{ task_id: string; created: boolean }>(
      await keel(["submit", "--json", "--idempotency-key", "cli-k1", "Calculate 4 * 4"], env),
    );
    expect(first.created).toBe(true);
    expect(again).toEqual({ task_id: first.task_id, created: false, status: "queued", release_id: null });
    const conflict = await keel(["submit", "--idempotency-key", "cli-k1", "Calculate 5 * 5"], env);
    expect(conflict.code).toBe(2);
    expect(conflict.stderr).toMatch(/already used for a different request/);

    // A worker process runs it; watch follows it to the end; status and list show it.
    const worker = spawn(process.execPath, [KEEL_BIN, "worker", "--concurrency", "2"], {
      env: { ...process.env, ...env },
      stdio: "pipe",
    });
    let workerOut = "";
    worker.stdout.on("data", (d: Buffer) => (workerOut += d.toString()));
    const workerExit = new Promise<number | null>((resolve) => worker.on("close", resolve));
    const watched = await keel(["watch", first.task_id], env);
    expect(watched.code).toBe(0);
    expect(watched.stdout).toMatch(/queued -> running\s+\(claimed\)/);
    expect(watched.stdout).toMatch(/running -> done\s+\(finished\)/);
    const status = await keel(["status", first.task_id], env);
    expect(status.stdout).toMatch(new RegExp(`task ${first.task_id}: done \\(attempt 1/3`));
    expect(status.stdout).toMatch(/t1 code\s+done/);
    const listed = json<{ task_id: string; status: string }[]>(
      await keel(["list", "--status", "done", "--since", "1h", "--json"], env),
    );
    expect(listed.map((r) => r.task_id)).toContain(first.task_id);

    // SIGTERM: the worker stops taking work and exits cleanly.
    worker.kill("SIGTERM");
    expect(await workerExit).toBe(0);
    expect(workerOut).toMatch(/started, concurrency 2/);
    expect(workerOut).toMatch(/stopped/);
    // Seven keel processes one after another, and a worker: on a loaded 2-core machine that can pass a minute
    // (as can the tests below, which start four to six keel processes each).
  }, 180_000);
});

describe("queues: each process drives only the work it was started for", () => {
  const statusOf = async (id: string) =>
    (
      await t.db.pool.query<{ status: string; attempts: number; queue: string }>(
        "select status, attempts, queue from tasks where id = $1",
        [id],
      )
    ).rows[0]!;

  it("keel run leaves a stranger's queued task alone; keel worker --queue runs only its queue", async () => {
    const stranger = json<{ task_id: string }>(await keel(["submit", "--json", "Calculate 21 * 2"], env));
    const run = await keel(["run", "--json", "Calculate 3 * 3"], env);
    expect(run.code).toBe(0);
    expect(json<{ status: string }>(run).status).toBe("done");
    // The stranger's task was queued (and its job available) the whole time keel run's worker ran.
    expect(await statusOf(stranger.task_id)).toEqual({ status: "queued", attempts: 0, queue: "default" });

    const gpu = json<{ task_id: string }>(
      await keel(["submit", "--json", "--queue", "gpu", "Calculate 5 * 5"], env),
    );
    const worker = spawn(process.execPath, [KEEL_BIN, "worker", "--queue", "gpu"], {
      env: { ...process.env, ...env },
      stdio: "pipe",
    });
    const exited = new Promise<number | null>((resolve) => worker.on("close", resolve));
    try {
      expect((await keel(["watch", gpu.task_id], env)).code).toBe(0);
      expect(await statusOf(gpu.task_id)).toMatchObject({ status: "done", queue: "gpu" });
      expect(await statusOf(stranger.task_id)).toMatchObject({ status: "queued", attempts: 0 });
    } finally {
      worker.kill("SIGTERM");
    }
    expect(await exited).toBe(0);
    const badQueue = await keel(["worker", "--queue", "no spaces"], env);
    expect(badQueue.code).toBe(2);
    expect(badQueue.stderr).toMatch(/"no spaces" is not a queue name/);
  }, 180_000);

  it("a task keel run stops following goes back to the workers' queue; keel status shows why it failed", async () => {
    const waiting = json<{ task_id: string }>(
      await keel(
        ["run", "--no-input", "--json", "Email ops@harbor.example that the fire drill is at 3pm"],
        env,
      ),
    );
    expect(await statusOf(waiting.task_id)).toMatchObject({
      status: "waiting_for_approval",
      queue: "default",
    });
    const rejected = await keel(
      ["resume", waiting.task_id, "--reject", "--reason", "not now", "--json"],
      env,
    );
    expect(rejected.code).toBe(1);
    const status = json<{ status: string; error: Record<string, unknown> }>(
      await keel(["status", "--json", waiting.task_id], env),
    );
    expect(status.status).toBe("failed");
    expect(status.error).toMatchObject({ code: "rejected", fault: "policy", retryable: false });
    const human = await keel(["status", waiting.task_id], env);
    expect(human.stdout).toMatch(/error: rejected \(fault: policy\)/);
  }, 180_000);
});

describe("approvals, cancel and retry from the command line", () => {
  it("lists a held action, approves it once, and refuses a second decision", async () => {
    const run = json<{ task_id: string; pending_approvals: { approval_id: string }[] }>(
      await keel(
        ["run", "--no-input", "--json", "Email oncall@harbor.example that the drill is at noon"],
        env,
      ),
    );
    const approvalId = run.pending_approvals[0]!.approval_id;
    const listed = await keel(["approvals"], env);
    expect(listed.stdout).toContain(`approval needed [approval ${approvalId}]`);
    expect(listed.stdout).toMatch(/send_message \[risk: high, async approval\]/);
    expect(listed.stdout).toMatch(/why: send_message is high risk, and high risk means async approval/);
    const badEdit = await keel(["approve", approvalId, "--edit", "{nope"], env);
    expect(badEdit.code).toBe(2);
    const approved = await keel(["approve", approvalId, "--reviewer", "lee"], env);
    expect(approved.code).toBe(0);
    expect(approved.stdout).toMatch(/approved by lee/);
    const twice = await keel(["reject", approvalId], env);
    expect(twice.code).toBe(2);
    expect(twice.stderr).toMatch(/already approved \(by lee\); nothing was changed/);
  }, 180_000);

  it("cancels a waiting task and reports an unknown id as bad input", async () => {
    const run = json<{ task_id: string }>(
      await keel(["run", "--no-input", "--json", "Email ops@harbor.example that lunch is late"], env),
    );
    const cancelled = json<{ status: string; cancelled: number }>(
      await keel(["cancel", "--json", run.task_id], env),
    );
    expect(cancelled).toMatchObject({ status: "cancelled", cancelled: 2 });
    const again = await keel(["cancel", run.task_id], env);
    expect(again.stdout).toMatch(/already cancelled; nothing to cancel/);
    for (const command of [["status"], ["cancel"], ["watch"], ["retry"]]) {
      const unknown = await keel([...command, "7d3f1c2a-0000-4000-8000-000000000000"], env);
      expect(unknown.code).toBe(2);
      expect(unknown.stderr).toMatch(/No task has id/);
    }
    const retry = await keel(["retry", run.task_id], env);
    expect(retry.code).toBe(2);
    expect(retry.stderr).toMatch(/only a failed task can be retried/);
  }, 180_000);

  it("refuses bad option values", async () => {
    const badStatus = await keel(["list", "--status", "sleeping"], env);
    expect(badStatus.code).toBe(2);
    expect(badStatus.stderr).toMatch(/one of queued, running/);
    const badSince = await keel(["list", "--since", "yesterday-ish"], env);
    expect(badSince.code).toBe(2);
    const badConcurrency = await keel(["worker", "--concurrency", "0"], env);
    expect(badConcurrency.code).toBe(2);
  });
});

describe("keel prune and keel status: checkpoint retention from the command line", () => {
  it("shows what is due, applies it, and reports the checkpoint tables and the policy", async () => {
    // A request that finished 10 days ago, with a thread of four checkpoints (the default policy keeps every
    // checkpoint 7 days, then only the latest).
    const id = randomUUID();
    await t.db.pool.query(
      `insert into tasks (id, root_id, status, request, finished_at) values ($1, $1, 'done', 'r', now() - interval '10 days')`,
      [id],
    );
    const saver = new KeelSaver(t.db.pool);
    const graph = new StateGraph(new StateSchema({ n: z.number() }))
      .addNode("inc", (s) => ({ n: s.n + 1 }))
      .addEdge("__start__", "inc")
      .addEdge("inc", "__end__")
      .compile({ checkpointer: saver });
    for (let i = 0; i < 2; i++) await graph.invoke({ n: i }, { configurable: { thread_id: id } });
    const checkpoints = async () =>
      (await t.db.pool.query("select 1 from checkpoints where thread_id = $1", [id])).rows.length;
    const before = await checkpoints();

    const dry = json<{ dry_run: boolean; pruned: { thread_id: string; then: string }[] }>(
      await keel(["prune", "--dry-run", "--json"], env),
    );
    expect(dry.dry_run).toBe(true);
    // Other tests of this file leave requests too, finished just now: only this one is due.
    expect(dry.pruned.map((p) => [p.thread_id, p.then])).toEqual([[id, "latest"]]);
    expect(await checkpoints()).toBe(before);

    const applied = await keel(["prune"], env);
    expect(applied.code, applied.stderr).toBe(0);
    expect(applied.stdout).toContain(`kept only the latest checkpoint of request ${id}`);
    expect(applied.stdout).toMatch(/checkpoint tables: \d/);
    expect(await checkpoints()).toBe(1);

    const status = await keel(["status"], env);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toMatch(/^requests: (\d+ \w+, )*\d+ done/m);
    expect(status.stdout).toMatch(
      /^checkpoint tables: [\d.]+ \w+ \(\d+ checkpoint\(s\), \d+ pending write\(s\)/m,
    );
    expect(status.stdout).toMatch(
      /retention: keep all 7 day\(s\), then latest; applied to 1 thread\(s\) so far/,
    );

    const bad = await keel(["prune", "--limit", "0"], env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--limit/);
  }, 120_000);
});
