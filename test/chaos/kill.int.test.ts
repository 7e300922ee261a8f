import { spawn, type ChildProcess } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SAMPLES } from "../../evals/samples.js";
import { decide, listApprovals } from "../../runtime/approvals.js";
import { prepareQueue } from "../../runtime/queue.js";
import { submit, type TaskRow } from "../../runtime/task/store.js";
import { KEEL_BIN } from "../helpers/cli.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";
import { seeded } from "../helpers/random.js";

/**
 * Chaos: worker processes are SIGKILLed at random moments while they hold running tasks, and replaced. Bounded:
 * 50 tasks, a fixed number of kills, loopback only, and every wait has a deadline.
 */
const TASKS = 50;
const KILLS = 6;
const LEASE_SECONDS = "3";

let t: TestDatabase;
const workers = new Set<ChildProcess>();
const env = () => ({
  PATH: process.env.PATH ?? "",
  HOME: process.env.HOME ?? "",
  DATABASE_URL: t.url,
  KEEL_LEASE_SECONDS: LEASE_SECONDS,
  KEEL_RETRY_BASE_MS: "100",
  KEEL_MAX_RETRIES: "8",
});

function startWorker(): ChildProcess {
  const child = spawn(process.execPath, [KEEL_BIN, "worker", "--concurrency", "3"], {
    env: env(),
    stdio: "ignore",
  });
  workers.add(child);
  child.on("exit", () => workers.delete(child));
  return child;
}

const random = seeded(42);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitUntil(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(250);
  }
}

beforeAll(async () => {
  t = await createTestDatabase({ KEEL_LEASE_SECONDS: LEASE_SECONDS });
  await prepareQueue(t.db.pool);
});

afterAll(async () => {
  for (const w of workers) w.kill("SIGKILL");
  await t?.drop();
});

describe("kill test", () => {
  it("survives workers killed mid-task: every task ends, no double writes, no repeated completed steps", async () => {
    for (let i = 0; i < 3; i++) startWorker();
    const ids: string[] = [];
    for (let i = 0; i < TASKS; i++) {
      const sample = SAMPLES[i % SAMPLES.length]!;
      ids.push((await submit(t.db.pool, t.config, { request: sample.request })).task.id);
    }
    const tasks = async () =>
      (await t.db.pool.query<TaskRow>("select * from tasks where id = any($1)", [ids])).rows;

    // Kill workers that hold running tasks, at random moments, and start replacements.
    let kills = 0;
    const chaosDeadline = Date.now() + 60_000;
    while (kills < KILLS && Date.now() < chaosDeadline) {
      await sleep(200 + random() * 600);
      const { rows } = await t.db.pool.query<{ lease_owner: string }>(
        "select lease_owner from tasks where id = any($1) and status = 'running' and lease_owner is not null",
        [ids],
      );
      const busyPids = new Set(rows.map((r) => Number(r.lease_owner.split(":")[1])));
      const victims = [...workers].filter((w) => busyPids.has(w.pid!));
      if (victims.length === 0) {
        if ((await tasks()).every((x) => x.status !== "queued" && x.status !== "running")) break;
        continue;
      }
      victims[Math.floor(random() * victims.length)]!.kill("SIGKILL");
      kills++;
      startWorker();
    }
    expect(kills).toBeGreaterThanOrEqual(3);

    const settled = (x: TaskRow) => x.status !== "queued" && x.status !== "running";
    await waitUntil(async () => (await tasks()).every(settled), 120_000, "every task to finish or wait");
    // A person approves everything that waits; the resumes run on the surviving workers.
    for (const approval of (await listApprovals(t.db.pool)).filter((a) => ids.includes(a.task_id))) {
      await decide(t.db.pool, approval.id, { action: "approve", reviewer: "chaos" });
    }
    const terminal = (x: TaskRow) => x.status === "done" || x.status === "failed" || x.status === "cancelled";
    await waitUntil(async () => (await tasks()).every(terminal), 120_000, "every task to end");

    // Workers stop cleanly on SIGTERM.
    const exits = [...workers].map((w) => new Promise<number | null>((resolve) => w.on("exit", resolve)));
    for (const w of workers) w.kill("SIGTERM");
    expect(await Promise.all(exits)).toEqual(exits.map(() => 0));

    const final = await tasks();
    expect(final.filter((x) => x.status === "done").length).toBe(TASKS);

    // Fencing: every state write by a worker came from the worker holding the latest claim.
    const { rows: events } = await t.db.pool.query<{
      task_id: string;
      from_status: string;
      to_status: string;
      worker: string | null;
      reason: string | null;
    }>(
      "select task_id, from_status, to_status, worker, reason from task_events where task_id = any($1) order by id",
      [ids],
    );
    const holder = new Map<string, string>();
    for (const e of events) {
      if (e.to_status === "running") holder.set(e.task_id, e.worker ?? "");
      else if (e.from_status === "running" && e.worker && e.reason !== "lease_expired") {
        expect(e.worker, `task ${e.task_id} written by a worker that did not hold it`).toBe(
          holder.get(e.task_id),
        );
      }
    }
    const takeovers = new Map<string, number>();
    for (const e of events.filter((x) => x.reason === "lease_expired"))
      takeovers.set(e.task_id, (takeovers.get(e.task_id) ?? 0) + 1);
    expect(takeovers.size).toBeGreaterThan(0);

    // Exactly one message per task that sends one, despite the kills.
    const needsMessage = new Set(SAMPLES.filter((s) => s.needsApproval).map((s) => s.request));
    const { rows: outbox } = await t.db.pool.query<{ thread_id: string; n: number }>(
      "select thread_id, count(*)::int as n from outbox where thread_id = any($1) group by thread_id",
      [ids],
    );
    for (const task of final) {
      const sent = outbox.find((o) => o.thread_id === task.id)?.n ?? 0;
      expect(sent, `outbox rows of task ${task.id}`).toBe(needsMessage.has(task.request!) ? 1 : 0);
    }

    // Resumed tasks did not repeat completed steps: only the step in flight at a kill (at most the 4 calls one
    // model turn makes) may run again; everything checkpointed before it does not.
    const { rows: repeats } = await t.db.pool.query<{ thread_id: string; repeated: number }>(
      `select thread_id, count(*)::int as repeated from (
         select thread_id, tool_call_id from tool_calls where thread_id = any($1) and status = 'ok'
          group by thread_id, tool_call_id having count(*) > 1) d group by thread_id`,
      [ids],
    );
    for (const r of repeats) expect(r.repeated).toBeLessThanOrEqual((takeovers.get(r.thread_id) ?? 0) * 4);
  }, 300_000);
});
