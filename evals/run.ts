import { POLICY_CATALOG } from "../agents/index.js";
import type { Database } from "../checkpoints/database.js";
import type { KeelConfig } from "../core/config.js";
import type { GraphDeps } from "../graphs/deps.js";
import type { ProgressEvent } from "../graphs/progress.js";
import { TransientError } from "../core/errors.js";
import { parseRunResult } from "../graphs/result.js";
import { BlockedRequestError } from "../policy/guard.js";
import { loadPolicy, type Policy } from "../policy/file.js";
import { decide, listApprovals } from "../runtime/approvals.js";
import { followTask, isSettledForCaller } from "../runtime/follow.js";
import { callerQueue, DEFAULT_QUEUE } from "../runtime/queue.js";
import { childrenOf, readTask } from "../runtime/task/sql.js";
import { moveToQueue, type TaskRow } from "../runtime/task/store.js";
import { submitRequest } from "../runtime/submit.js";
import { TaskWorker } from "../runtime/worker.js";
import type { EvalCase } from "./dataset.js";
import type { ActualCall, CaseRun } from "./evaluators.js";

export interface RunOptions {
  concurrency: number;
  /** Longest a case may take, approvals included. */
  caseTimeoutMs: number;
  /** What the graphs are built with (tests break things on purpose through here). */
  deps?: Partial<GraphDeps>;
  /** The release every case runs on (its policy decides the approvals too); unset: the configuration's. */
  release?: { id: string; policy: Policy };
  /** Called with each case's run as it finishes (awaited: scoring and judging happen here). */
  onCaseDone: (c: EvalCase, run: CaseRun) => Promise<void>;
}

const SUBMITTER = "eval-submitter";
const REVIEWER = "eval-reviewer";

/**
 * Runs cases through the real runtime: the request passes the same guard as `keel submit`, is stored as a task,
 * and is driven by a worker in this process (Postgres, checkpoints, policy, ledger); approvals are answered from
 * the case, in order. Tool calls are taken from the worker's progress events, with their arguments as the
 * agents gave them.
 */
export async function runCases(
  db: Database,
  config: KeelConfig,
  cases: readonly EvalCase[],
  options: RunOptions,
): Promise<void> {
  const events = new Map<string, ProgressEvent[]>();
  const faults = new Map<string, Map<string, number>>();
  // The cases run on a queue of this process's own: a `keel worker` beside it (without these faults and
  // answers) never takes one, and this process takes nobody else's task.
  const queue = callerQueue("eval");
  const submitted: string[] = [];
  const worker = await TaskWorker.start(db, config, {
    concurrency: options.concurrency,
    queues: [queue],
    releaseTo: DEFAULT_QUEUE,
    deps: {
      faults: (threadId, tool) => {
        const left = faults.get(threadId)?.get(tool) ?? 0;
        if (left <= 0) return;
        faults.get(threadId)!.set(tool, left - 1);
        throw new TransientError(`injected transient failure of ${tool}`, undefined, undefined, "tool_error");
      },
      ...options.deps,
    },
    onEvent: (taskId, event) => {
      const list = events.get(taskId) ?? [];
      list.push(event);
      events.set(taskId, list);
    },
  });
  const policy =
    options.release?.policy ?? options.deps?.policy ?? loadPolicy(config.policyFile, POLICY_CATALOG);
  let next = 0;
  try {
    await Promise.all(
      Array.from({ length: options.concurrency }, async () => {
        while (next < cases.length) {
          const c = cases[next++]!;
          await options.onCaseDone(c, await runCase(c));
        }
      }),
    );
  } finally {
    await worker.stop();
    // A case that timed out is left to the workers' queue rather than to a queue nobody works any more.
    await moveToQueue(db.pool, submitted, DEFAULT_QUEUE);
  }

  async function runCase(c: EvalCase): Promise<CaseRun> {
    const started = Date.now();
    const empty: CaseRun = {
      task_id: null,
      status: "blocked",
      reason: null,
      answer: "",
      agents: [],
      calls: [],
      approvals_requested: 0,
      outbox: [],
      handoffs: 0,
      failed_subtasks: 0,
      latency_ms: 0,
      tokens: 0,
      cost_usd: 0,
    };
    let task: TaskRow;
    try {
      ({ task } = await submitRequest(db.pool, config, policy.scope, {
        request: c.request,
        submittedBy: SUBMITTER,
        workflow: "eval",
        queue,
        releaseId: options.release?.id,
      }));
    } catch (error) {
      if (error instanceof BlockedRequestError) {
        return { ...empty, reason: error.event.reason, latency_ms: Date.now() - started };
      }
      throw error;
    }
    submitted.push(task.id);
    faults.set(task.id, new Map(c.faults.map((f) => [f.tool, f.failures])));
    const answers = [...c.approvals];
    const deadline = AbortSignal.timeout(options.caseTimeoutMs);
    let root: TaskRow;
    let timedOut = false;
    try {
      for (;;) {
        root = await followTask(
          db.pool,
          task.id,
          () => undefined,
          (r) => isSettledForCaller(db.pool, r),
          deadline,
        );
        if (root.status !== "waiting_for_approval") break;
        const pending = await listApprovals(db.pool, "pending", task.id);
        for (const approval of pending) {
          const answer = answers.shift() ?? { action: "reject" as const, reason: "the case gives no answer" };
          await decide(
            db.pool,
            approval.id,
            { ...answer, reviewer: REVIEWER },
            { confirm: approval.context.confirm, policy },
          );
        }
      }
    } catch (error) {
      if (!deadline.aborted) throw error;
      timedOut = true;
      root = (await readTask(db.pool, task.id))!;
    } finally {
      faults.delete(task.id);
    }
    return {
      ...(await collect(task.id, root)),
      latency_ms: Date.now() - started,
      ...(timedOut ? { status: "timeout" } : {}),
    };
  }

  async function collect(taskId: string, root: TaskRow): Promise<CaseRun> {
    const q = <T extends object>(sql: string) => db.pool.query<T>(sql, [taskId]).then((r) => r.rows);
    const { plan } = parseRunResult(root.result, root.id);
    const children = await childrenOf(db.pool, taskId);
    const approvals = await q<{ n: number }>(
      "select count(*)::int as n from approvals a join tasks t on t.id = a.task_id where t.root_id = $1",
    );
    const outbox = await q<{ to: string; subject: string; status: string }>(
      `select recipient as "to", subject, status from outbox where thread_id = $1::text order by id`,
    );
    const usage = await q<{ tokens: number; cost_usd: number }>(
      "select tokens::int, cost_usd::float8 from task_usage where thread_id = $1::text",
    );
    const evs = events.get(taskId) ?? [];
    events.delete(taskId);
    const args = new Map<string, Record<string, unknown>>();
    const calls: ActualCall[] = [];
    for (const e of evs) {
      if (e.type === "tool_call") args.set(e.tool_call_id, (e.args ?? {}) as Record<string, unknown>);
      if (e.type === "tool_result")
        calls.push({ agent: e.agent, tool: e.tool, args: args.get(e.tool_call_id) ?? {}, status: e.status });
    }
    return {
      task_id: taskId,
      status: root.status === "done" ? "done" : root.status === "cancelled" ? "cancelled" : "failed",
      reason: root.error_reason,
      answer: root.final_answer ?? "",
      agents: plan?.tasks.map((t) => t.type) ?? [],
      calls,
      approvals_requested: approvals[0]?.n ?? 0,
      outbox,
      handoffs: children.length,
      failed_subtasks: children.filter((c) => c.status === "failed").length,
      latency_ms: 0,
      tokens: usage[0]?.tokens ?? 0,
      cost_usd: usage[0]?.cost_usd ?? 0,
    };
  }
}
