import { spawn, type ChildProcess } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decide, listApprovals } from "../../runtime/approvals.js";
import { prepareQueue } from "../../runtime/queue.js";
import type { TaskRow } from "../../runtime/task/store.js";
import { startOtlpReceiver } from "../fakes/otlp-receiver.js";
import { json, keel, KEEL_BIN } from "../helpers/cli.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";
import { waitForTask } from "../helpers/tasks.js";

/**
 * Exactly once: a worker is killed (SIGKILL, by the `after_effect_commit` failpoint) right after a message's
 * outbox row and ledger row commit, before the step's checkpoint is written. Another worker takes the task over
 * when the lease runs out and re-runs the step from the checkpoint: the ledger returns the committed result
 * instead of sending again. The request is submitted by another process, and every process traces to one
 * loopback OTLP receiver: the task is one trace across submit, worker, crash and takeover.
 */
let t: TestDatabase;
let receiver: Awaited<ReturnType<typeof startOtlpReceiver>>;
const children = new Set<ChildProcess>();

function startWorker(extra: Record<string, string> = {}): ChildProcess {
  const child = spawn(process.execPath, [KEEL_BIN, "worker", "--concurrency", "1"], {
    env: {
      PATH: process.env.PATH ?? "",
      HOME: process.env.HOME ?? "",
      DATABASE_URL: t.url,
      KEEL_LEASE_SECONDS: "2",
      KEEL_RETRY_BASE_MS: "50",
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      ...extra,
    },
    stdio: "ignore",
  });
  children.add(child);
  child.on("exit", () => children.delete(child));
  return child;
}

beforeAll(async () => {
  receiver = await startOtlpReceiver();
  t = await createTestDatabase({ KEEL_LEASE_SECONDS: "2" });
  await prepareQueue(t.db.pool);
});
afterAll(async () => {
  for (const child of children) child.kill("SIGKILL");
  await receiver?.stop();
  await t?.drop();
});

describe("effect ledger under a crash", () => {
  it("writes exactly one outbox row and one ledger row when a worker dies between the effect and the checkpoint", async () => {
    const doomed = startWorker({ KEEL_FAILPOINT: "after_effect_commit" });
    const died = new Promise<NodeJS.Signals | null>((resolve) =>
      doomed.on("exit", (_code, signal) => resolve(signal)),
    );
    const submitted = await keel(
      ["submit", "Email oncall@harbor.example that the drill is at noon", "--json"],
      {
        DATABASE_URL: t.url,
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      },
    );
    const task = { id: json<{ task_id: string }>(submitted).task_id };
    await waitForTask(t.db.pool, task.id, (r) => r.status === "waiting_for_approval", 30_000);
    // A person takes a moment to decide: long enough for the first worker's spans of the run to be exported.
    const deadline = Date.now() + 10_000;
    while (!receiver.spans.some((s) => s.resource["process.pid"] === doomed.pid) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 100));
    const [approval] = (await listApprovals(t.db.pool)).filter((a) => a.task_id === task.id);
    await decide(t.db.pool, approval!.id, { action: "approve", reviewer: "ana" });

    expect(await died).toBe("SIGKILL");
    const rows = async (sql: string): Promise<Record<string, unknown>[]> =>
      (await t.db.pool.query<Record<string, unknown>>(sql, [task.id])).rows;
    // The effect committed before the crash; the step that made it has no checkpoint yet.
    expect(await rows("select state from effects where thread_id = $1")).toEqual([{ state: "committed" }]);
    expect(await rows("select 1 from outbox where thread_id = $1")).toHaveLength(1);

    const survivor = startWorker();
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

    // One trace: the submitting process, the worker that died (its spans up to the approval were exported) and
    // the one that took over, each with its own process id.
    const stopped = new Promise((resolve) => survivor.on("exit", resolve));
    survivor.kill("SIGTERM"); // a graceful stop flushes its spans
    await stopped;
    const submitSpan = receiver.spans.find(
      (s) => s.name === "submit task" && s.attributes["keel.task.id"] === task.id,
    );
    expect(submitSpan).toBeDefined();
    const ours = receiver.spans.filter((s) => s.attributes["keel.root_task.id"] === task.id);
    expect(new Set(ours.map((s) => s.traceId))).toEqual(new Set([submitSpan!.traceId]));
    const drives = ours.filter((s) => s.name === "invoke_agent orchestrator");
    expect(drives.every((d) => d.parentSpanId === submitSpan!.spanId)).toBe(true);
    const pids = new Set(ours.map((s) => s.resource["process.pid"]));
    expect(pids).toEqual(new Set([submitSpan!.resource["process.pid"], doomed.pid, survivor.pid]));
    const takeover = drives.find((d) => d.resource["process.pid"] === survivor.pid);
    expect(takeover?.attributes["keel.run.kind"]).toBe("retry");
    expect(
      receiver.spans.some(
        (s) => s.name === "execute_tool send_message" && s.resource["process.pid"] === survivor.pid,
      ),
    ).toBe(true);
  }, 120_000);
});
