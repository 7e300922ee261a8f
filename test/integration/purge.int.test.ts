import { AIMessage } from "@langchain/core/messages";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { KeelConfig } from "../../core/config.js";
import type { GraphDeps } from "../../graphs/deps.js";
import { DEFAULT_POLICY } from "../../policy/file.js";
import { decide, listApprovals } from "../../runtime/approvals.js";
import { PURGED } from "../../policy/pii.js";
import { purgeOlderThan, purgeRequest } from "../../runtime/purge.js";
import { prepareQueue } from "../../runtime/queue.js";
import { retryTask } from "../../runtime/task/cancel.js";
import { getTask, submit, type TaskRow } from "../../runtime/task/store.js";
import { TaskWorker } from "../../runtime/worker.js";
import { fakeModel, scriptedDeps } from "../fakes/deps.js";
import { keel, json } from "../helpers/cli.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";
import { waitForTask } from "../helpers/tasks.js";

let t: TestDatabase;
const workers: TaskWorker[] = [];
beforeAll(async () => {
  // A lease long enough that a loaded machine's slow heartbeat is not taken for a lost worker.
  t = await createTestDatabase({ KEEL_LEASE_SECONDS: "30", KEEL_MAX_RETRIES: "0" });
  await prepareQueue(t.db.pool);
});
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop()));
});
afterAll(async () => {
  await t?.drop();
});

const settled = (r: TaskRow) => r.status !== "queued" && r.status !== "running";
const CARD = "4111 1111 1111 1111";

/** Scripted models for one request: a communication task sends `body` to ops@harbor.example. */
function sending(body: string): Partial<GraphDeps> {
  return scriptedDeps(
    t.db.pool,
    t.config.limits,
    {
      planner: fakeModel().structuredResponse({
        tasks: [{ task_id: "t1", type: "communication", objective: "send the booking", depends_on: [] }],
      }),
      communication: fakeModel()
        .respondWithTools([
          {
            name: "send_message",
            args: { to: "ops@harbor.example", subject: "Booking", body, confidence: 0.95 },
            id: "send",
          },
        ])
        .respond(new AIMessage("Sent.")),
      synthesizer: fakeModel().respond(new AIMessage(`Booked: ${body}`)),
    },
    { policy: DEFAULT_POLICY },
  );
}

async function startWorker(deps: Partial<GraphDeps>, config: KeelConfig = t.config, queue?: string) {
  const worker = await TaskWorker.start(t.db, config, {
    concurrency: 2,
    deps,
    queues: queue ? [queue] : undefined,
  });
  workers.push(worker);
  return worker;
}

/** Runs a request carrying `marker` and a card number to the sync approval it needs; returns the waiting task. */
async function waitingRequest(marker: string): Promise<TaskRow> {
  // One worker at a time: its scripted models are this request's.
  await Promise.all(workers.splice(0).map((w) => w.stop()));
  // Each request on its own queue: no other request's job (a release, a resume) can spend its scripted models.
  const queue = `purge-${marker.toLowerCase()}`;
  await startWorker(sending(`Ref ${marker}, card ${CARD}.`), t.config, queue);
  const { task } = await submit(t.db.pool, t.config, {
    request: `Email ops@harbor.example to book ref ${marker} with card ${CARD}`,
    submittedBy: "sam",
    queue,
  });
  await waitForTask(t.db.pool, task.id, settled);
  return getTask(t.db.pool, task.id);
}

/** The same, approved by a second person and run to the end. */
async function finishedRequest(marker: string): Promise<TaskRow> {
  const waiting = await waitingRequest(marker);
  expect(waiting, `${waiting.error_reason}: ${waiting.last_error}`).toMatchObject({
    status: "waiting_for_approval",
  });
  const [approval] = await listApprovals(t.db.pool, "pending", waiting.id);
  await decide(t.db.pool, approval!.id, { action: "approve", reviewer: "ana" }, { confirm: "send_message" });
  return waitForTask(t.db.pool, waiting.id, (r) => r.status === "done" || r.status === "failed");
}

/** Every row of every table in the database's public schema whose text holds `needle`, by table. */
async function rowsHolding(needle: string): Promise<Record<string, number>> {
  const tables = await t.db.pool.query<{ table_name: string; blobs: string[] }>(
    `select t.table_name, coalesce(array_agg(c.column_name::text) filter (where c.data_type = 'bytea'), '{}') as blobs
       from information_schema.tables t join information_schema.columns c using (table_schema, table_name)
      where t.table_schema = 'public' and t.table_type = 'BASE TABLE' group by t.table_name`,
  );
  const found: Record<string, number> = {};
  for (const { table_name, blobs } of tables.rows) {
    // Checkpoint blobs are bytea, whose text form is hex: search their bytes as well.
    const inBlobs = blobs.map((c) => ` or position(convert_to($1, 'UTF8') in x."${c}") > 0`).join("");
    const { rows } = await t.db.pool.query<{ n: number }>(
      `select count(*)::int as n from "${table_name}" x where position($1 in x::text) > 0${inBlobs}`,
      [needle],
    );
    if (rows[0]!.n > 0) found[table_name] = rows[0]!.n;
  }
  return found;
}

const checkpointsOf = async (threadId: string) =>
  (
    await t.db.pool.query<{ n: number }>(
      `select (select count(*) from checkpoints where thread_id = $1)
            + (select count(*) from checkpoint_blobs where thread_id = $1)
            + (select count(*) from checkpoint_writes where thread_id = $1) as n`,
      [threadId],
    )
  ).rows[0]!.n;

describe("keel purge", () => {
  it("erases a finished request's content everywhere, checkpoints included, and keeps what audit needs", async () => {
    const task = await finishedRequest("QUOKKA-4471");
    expect(task.status).toBe("done");
    // The run stored the request raw while it lived: the purge below has something to remove.
    const before = await rowsHolding("QUOKKA-4471");
    expect(Object.keys(before)).toEqual(expect.arrayContaining(["tasks", "checkpoint_writes", "outbox"]));
    expect(Number(await checkpointsOf(task.id))).toBeGreaterThan(0);

    const report = await purgeRequest(t.db.pool, task.id.slice(0, 8));
    expect(report).toMatchObject({ task_id: task.id, status: "done", outbox: 1, approvals: 1, effects: 1 });
    expect(report.checkpoints).toBeGreaterThan(0);

    expect(await rowsHolding("QUOKKA-4471")).toEqual({});
    expect(await rowsHolding("1111 1111")).toEqual({});
    expect(Number(await checkpointsOf(task.id))).toBe(0);
    // What stays: the outcome, who asked and who approved, the ledger's states, the costs.
    const root = await getTask(t.db.pool, task.id);
    expect(root).toMatchObject({ status: "done", submitted_by: "sam", request: null, final_answer: null });
    expect(root.purged_at).toBeInstanceOf(Date);
    const [approval] = await listApprovals(t.db.pool, "all", task.id);
    expect(approval).toMatchObject({ status: "approved", reviewer: "ana" });
    const outbox = await t.db.pool.query(
      "select recipient, body, approved_by from outbox where thread_id = $1",
      [task.id],
    );
    expect(outbox.rows).toEqual([{ recipient: PURGED, body: PURGED, approved_by: "ana" }]);
    const effects = await t.db.pool.query("select tool, state from effects where thread_id = $1", [task.id]);
    expect(effects.rows).toEqual([{ tool: "send_message", state: "committed" }]);

    // Purging again changes nothing more and keeps the first time.
    const again = await purgeRequest(t.db.pool, task.id);
    expect(again.purged_at).toEqual(report.purged_at);
    expect(again.checkpoints).toBe(0);
  });

  it("refuses a request that is still waiting for a person, and changes nothing", async () => {
    const task = await waitingRequest("WOMBAT-1902");
    expect(task.status).toBe("waiting_for_approval");
    const before = await rowsHolding("WOMBAT-1902");
    const checkpoints = await checkpointsOf(task.id);
    await expect(purgeRequest(t.db.pool, task.id)).rejects.toMatchObject({
      code: "conflict",
      message: expect.stringMatching(/is not finished \(it is waiting_for_approval\).*cancel it first/),
    });
    expect(await rowsHolding("WOMBAT-1902")).toEqual(before);
    expect(await checkpointsOf(task.id)).toEqual(checkpoints);
    expect((await getTask(t.db.pool, task.id)).purged_at).toBeNull();
  });

  it("refuses while a compensation is still owed, since it undoes effects from their arguments", async () => {
    const task = await finishedRequest("NUMBAT-3310");
    await t.db.pool.query(
      "select graphile_worker.add_job('keel_compensate', json_build_object('task_id', $1::text), job_key := $2, run_at := now() + interval '1 day')",
      [task.id, `compensate:${task.id}`],
    );
    try {
      await expect(purgeRequest(t.db.pool, task.id)).rejects.toMatchObject({
        code: "conflict",
        message: expect.stringMatching(/still has a compensation to run/),
      });
      expect(Object.keys(await rowsHolding("NUMBAT-3310")).length).toBeGreaterThan(0);
    } finally {
      await t.db.pool.query("select graphile_worker.remove_job($1)", [`compensate:${task.id}`]);
    }
    await purgeRequest(t.db.pool, task.id);
    expect(await rowsHolding("NUMBAT-3310")).toEqual({});
  });

  it("names an unknown id, and a purged request cannot be retried", async () => {
    await expect(purgeRequest(t.db.pool, "00000000-0000-4000-8000-000000000000")).rejects.toMatchObject({
      code: "not_found",
    });
    const { task } = await submit(t.db.pool, t.config, {
      request: "a request that fails",
      submittedBy: "sam",
    });
    await t.db.pool.query(
      "update tasks set status = 'failed', finished_at = now(), error_reason = 'internal' where id = $1",
      [task.id],
    );
    await purgeRequest(t.db.pool, task.id);
    await expect(retryTask(t.db.pool, task.id)).rejects.toMatchObject({
      code: "conflict",
      message: expect.stringMatching(/was purged/),
    });
    expect((await getTask(t.db.pool, task.id)).status).toBe("failed");
  });

  it("a dry run reports what it would erase and erases nothing", async () => {
    const task = await finishedRequest("DINGO-5521");
    const before = await rowsHolding("DINGO-5521");
    const report = await purgeRequest(t.db.pool, task.id, { dryRun: true });
    expect(report).toMatchObject({ task_id: task.id, outbox: 1 });
    expect(await rowsHolding("DINGO-5521")).toEqual(before);
    expect((await getTask(t.db.pool, task.id)).purged_at).toBeNull();
  });

  it("the retention setting purges finished requests past it, by the workers' housekeeping, and no others", async () => {
    const old = await finishedRequest("BILBY-7003");
    const recent = await finishedRequest("POTOROO-7004");
    await Promise.all(workers.splice(0).map((w) => w.stop()));
    await t.db.pool.query("update tasks set finished_at = now() - interval '40 days' where root_id = $1", [
      old.id,
    ]);
    expect((await purgeOlderThan(t.db.pool, 30, { dryRun: true })).purged.map((r) => r.task_id)).toContain(
      old.id,
    );
    // The housekeeping job runs when a worker starts (unless one is already scheduled), then hourly.
    await t.db.pool.query("select graphile_worker.remove_job('prune-trajectories')");
    await startWorker({}, { ...t.config, runtime: { ...t.config.runtime, purgeAfterDays: 30 } });
    await waitForTask(t.db.pool, old.id, async () => (await getTask(t.db.pool, old.id)).purged_at !== null);
    expect(await rowsHolding("BILBY-7003")).toEqual({});
    expect(Object.keys(await rowsHolding("POTOROO-7004")).length).toBeGreaterThan(0);
    expect((await getTask(t.db.pool, recent.id)).purged_at).toBeNull();
  });
});

describe("keel purge (CLI)", () => {
  const env = () => ({ DATABASE_URL: t.url });

  it("needs a task id or --older-than, not both, and says so", async () => {
    const neither = await keel(["purge"], env());
    expect(neither.code).not.toBe(0);
    expect(neither.stderr).toMatch(/Say what to purge: .*purge <task-id>, or .*--older-than <days>/);
    const both = await keel(["purge", "abcd1234", "--older-than", "30", "--json"], env());
    expect(both.code).not.toBe(0);
    expect(json(both)).toMatchObject({ status: "error", error: { code: "invalid_argument" } });
    const bad = await keel(["purge", "--older-than", "soon"], env());
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/--older-than/);
  });

  it("purges by id prefix with --json, and names an unknown id", async () => {
    const { task } = await submit(t.db.pool, t.config, {
      request: "order ref KOALA-8812",
      submittedBy: "sam",
    });
    await t.db.pool.query("update tasks set status = 'cancelled', finished_at = now() where id = $1", [
      task.id,
    ]);
    const done = await keel(["purge", task.id.slice(0, 8), "--json"], env());
    expect(done.code).toBe(0);
    expect(json(done)).toMatchObject({ dry_run: false, task_id: task.id, status: "cancelled", tasks: 1 });
    expect(await rowsHolding("KOALA-8812")).toEqual({});
    const unknown = await keel(["purge", "ffffffff"], env());
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toMatch(/ffffffff/);
  });
});
