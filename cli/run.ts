import { POLICY_CATALOG } from "../agents/index.js";
import type { Database } from "../checkpoints/database.js";
import { isInteractiveTerminal, type KeelConfig } from "../core/config.js";
import { createLogger } from "../observability/log.js";
import { InputError, NotFoundError } from "../core/errors.js";
import { FAILURES } from "../core/failures.js";
import { SAMPLES } from "../evals/samples.js";
import type { ApprovalDecision } from "../graphs/approval.js";
import { describeModel } from "../models/index.js";
import { loadPolicy, type Policy } from "../policy/file.js";
import { decide } from "../runtime/approvals.js";
import { followTask, isSettledForCaller } from "../runtime/follow.js";
import { describeTask, type TaskOutcome } from "../reports/status.js";
import { callerQueue, DEFAULT_QUEUE } from "../runtime/queue.js";
import { getTask, moveToQueue, type TaskRow } from "../runtime/task/store.js";
import { submitRequest } from "../runtime/submit.js";
import { TaskWorker } from "../runtime/worker.js";
import { askForDecision } from "./ask.js";
import { printJson, reportError, withDatabase } from "./common.js";
import { describeApproval, KEEL, renderEvent, resumeHint } from "./render.js";

interface CommonOptions {
  input: boolean;
  json?: boolean;
  reviewer: string;
}
export interface RunOptions extends CommonOptions {
  sample?: number;
  idempotencyKey?: string;
  as?: string;
  workflow?: string;
}
export interface ResumeOptions extends CommonOptions {
  approve?: boolean;
  reject?: boolean;
  edit?: string;
  reason?: string;
  confirm?: string;
}

function pickRequest(request: string | undefined, sample: number | undefined): string {
  if (request !== undefined && sample !== undefined)
    throw new InputError("Give either a request or --sample, not both.");
  if (sample !== undefined) {
    const found = SAMPLES.find((s) => s.id === sample);
    if (!found)
      throw new InputError(
        `There is no sample ${sample}; samples are 1-${SAMPLES.length} (keel samples lists them).`,
      );
    return found.request;
  }
  if (request === undefined)
    throw new InputError(`Say what you want done: ${KEEL} run "<request>", or ${KEEL} run --sample 1.`);
  return request;
}

/** Parses --approve/--reject/--edit/--reason into one decision; a malformed combination is bad input. */
export function decisionFromFlags(opts: Omit<ResumeOptions, "input" | "json">): ApprovalDecision {
  if (opts.approve && opts.reject) throw new InputError("Give --approve or --reject, not both.");
  if (opts.reject && opts.edit !== undefined)
    throw new InputError("--edit approves with changes; it cannot go with --reject.");
  if (!opts.approve && !opts.reject && opts.edit === undefined) {
    throw new InputError("Say what to do: --approve, --reject [--reason …] or --edit '<json>'.");
  }
  const reason = opts.reason ? { reason: opts.reason } : {};
  if (opts.reject) return { action: "reject", reviewer: opts.reviewer, ...reason };
  if (opts.edit === undefined) return { action: "approve", reviewer: opts.reviewer, ...reason };
  let args: unknown;
  try {
    args = JSON.parse(opts.edit);
  } catch (error) {
    throw new InputError(
      `--edit must be a JSON object, e.g. '{"subject": "New subject"}' (${(error as Error).message}).`,
    );
  }
  if (!args || typeof args !== "object" || Array.isArray(args)) {
    throw new InputError(`--edit must be a JSON object of the arguments to change, got ${opts.edit}.`);
  }
  return { action: "edit", reviewer: opts.reviewer, args: args as Record<string, unknown>, ...reason };
}

function finish(outcome: TaskOutcome, opts: CommonOptions): number {
  const say = (line: string) => !opts.json && console.log(line);
  const reason = outcome.status === "failed" ? outcome.error?.code : null;
  const rule = reason ? FAILURES[reason] : undefined;
  if (reason && rule && (rule.fault === "user" || reason === "invalid_plan")) {
    // The request (or the plan made of it) could not run at all: report it as the named error it is.
    const error = {
      code: reason,
      name: reason === "invalid_plan" ? "PlanError" : "InputError",
      message: outcome.error?.message ?? "",
    };
    if (opts.json) printJson({ status: "error", task_id: outcome.task_id, error });
    console.error(`keel: ${error.name}: ${error.message}`);
    return rule.exitCode;
  }
  if (opts.json) printJson(outcome);
  if (outcome.status === "waiting_for_approval") {
    for (const p of outcome.pending_approvals) {
      describeApproval({ approval_id: p.approval_id, ...p.context }).forEach(say);
    }
    resumeHint(
      outcome.task_id,
      outcome.pending_approvals.map((p) => p.approval_id),
    ).forEach(say);
    return 3;
  }
  say("");
  say(outcome.final_answer ?? outcome.error?.message ?? "(no answer)");
  say("");
  say(
    `status: ${outcome.status}${outcome.error?.code ? ` (${outcome.error.code})` : ""} · task: ${outcome.task_id}`,
  );
  return outcome.status === "done" ? 0 : (rule?.exitCode ?? 1);
}

/**
 * Drives one request with a worker in this process and follows its events until it ends or waits for a person;
 * at a terminal, asks for each decision and carries on. Other workers may pick the task up instead; following
 * works the same either way.
 */
async function driveAndFollow(
  db: Database,
  config: KeelConfig,
  taskId: string,
  queue: string,
  opts: CommonOptions,
): Promise<number> {
  const say = (line: string) => !opts.json && console.log(line);
  // This process drives the task on a queue of its own (no stranger's task runs here), and hands it back to the
  // workers' queue when it stops following.
  await moveToQueue(db.pool, [taskId], queue);
  const worker = await TaskWorker.start(db, config, {
    logger: createLogger(config.observability, { level: "warn" }),
    concurrency: 2,
    queues: [queue],
    releaseTo: DEFAULT_QUEUE,
    onEvent: (id, event) => id === taskId && renderEvent(event, say),
  });
  // Read when a decision is first made at the prompt, once for the whole run.
  let loaded: Policy | undefined;
  const policy = () => (loaded ??= loadPolicy(config.policyFile, POLICY_CATALOG));
  const controller = new AbortController();
  const onSigint = () => controller.abort(new Error("interrupted"));
  process.once("SIGINT", onSigint);
  try {
    const settled = (root: TaskRow) => isSettledForCaller(db.pool, root);
    for (;;) {
      const root = await followTask(db.pool, taskId, () => undefined, settled, controller.signal);
      const outcome = await describeTask(db.pool, taskId);
      const interactive = opts.input && !opts.json && isInteractiveTerminal();
      // A sync approval needs a second person: the prompt of the one who submitted cannot decide it.
      const sync = outcome.pending_approvals.some((p) => p.mode === "sync");
      if (
        root.status !== "waiting_for_approval" ||
        !interactive ||
        outcome.pending_approvals.length === 0 ||
        sync
      )
        return finish(outcome, opts);
      for (const pending of outcome.pending_approvals) {
        for (;;) {
          const decision = await askForDecision(
            { approval_id: pending.approval_id, ...pending.context },
            opts.reviewer,
            controller.signal,
          );
          try {
            await decide(db.pool, pending.approval_id, decision, { policy: policy() });
            break;
          } catch (error) {
            if (!(error instanceof InputError)) throw error;
            console.log(`${error.message} Try again.`);
          }
        }
      }
    }
  } catch (error) {
    if (!controller.signal.aborted) throw error;
  } finally {
    process.removeListener("SIGINT", onSigint);
    await worker.stop();
    await moveToQueue(db.pool, [taskId], DEFAULT_QUEUE);
  }
  // Only Ctrl-C gets here (every other way out returns or throws above): the work so far is in the checkpoint;
  // say where the task is and how to go on.
  const outcome = await describeTask(db.pool, taskId);
  const lines =
    outcome.status === "waiting_for_approval"
      ? resumeHint(
          outcome.task_id,
          outcome.pending_approvals.map((p) => p.approval_id),
        )
      : ACTIVE.includes(outcome.status)
        ? [
            `Interrupted. Task ${outcome.task_id} is ${outcome.status}, on the default queue: a running ${KEEL} worker continues it from its checkpoint,`,
            `or continue it here with: ${KEEL} resume ${outcome.task_id}`,
          ]
        : [`Interrupted. Task ${outcome.task_id} is ${outcome.status}.`];
  if (opts.json) printJson({ ...outcome, interrupted: true });
  for (const line of lines) console.error(line);
  return 130;
}

const ACTIVE: readonly string[] = ["queued", "running"];

export async function runCommand(
  config: KeelConfig,
  requestArg: string | undefined,
  opts: RunOptions,
): Promise<number> {
  let request: string;
  try {
    request = pickRequest(requestArg, opts.sample);
  } catch (error) {
    return reportError(error, opts.json);
  }
  return withDatabase(config, opts.json, async (db) => {
    const queue = callerQueue("run");
    const { task } = await submitRequest(
      db.pool,
      config,
      loadPolicy(config.policyFile, POLICY_CATALOG).scope,
      {
        request,
        queue,
        idempotencyKey: opts.idempotencyKey,
        submittedBy: opts.as,
        workflow: opts.workflow,
      },
    );
    if (!opts.json) console.log(`keel: task ${task.id} · ${describeModel(config)} · ${db.kind} Postgres`);
    return driveAndFollow(db, config, task.id, queue, opts);
  });
}

/** Decides every pending approval of a task the same way, then drives it on. */
export async function resumeCommand(
  config: KeelConfig,
  taskId: string,
  opts: ResumeOptions,
): Promise<number> {
  const decides = opts.approve || opts.reject || opts.edit !== undefined;
  let decision: ApprovalDecision | undefined;
  try {
    if (decides) decision = decisionFromFlags(opts);
  } catch (error) {
    return reportError(error, opts.json);
  }
  return withDatabase(config, opts.json, async (db) => {
    const task = await getTask(db.pool, taskId).catch((error: unknown) => {
      throw error instanceof NotFoundError
        ? new NotFoundError(`No run has thread id ${taskId}. Check the id printed by keel run.`)
        : error;
    });
    const outcome = await describeTask(db.pool, task.root_id);
    if (!decision) {
      // No decision to give: continue a task that is queued or running (e.g. after Ctrl-C), here.
      if (outcome.status === "waiting_for_approval") {
        throw new InputError(
          `Task ${outcome.task_id} waits for a decision: give --approve, --reject [--reason …] or --edit '<json>'.`,
        );
      }
      if (!ACTIVE.includes(outcome.status)) {
        throw new InputError(
          `Task ${outcome.task_id} is ${outcome.status}; there is nothing to continue.`,
          "conflict",
        );
      }
      return driveAndFollow(db, config, task.root_id, callerQueue("run"), opts);
    }
    if (outcome.pending_approvals.length === 0) {
      throw new InputError(
        `Task ${taskId} is not waiting for approval (it is ${outcome.status}).`,
        "conflict",
      );
    }
    for (const pending of outcome.pending_approvals)
      await decide(db.pool, pending.approval_id, decision, {
        confirm: opts.confirm,
        policy: loadPolicy(config.policyFile, POLICY_CATALOG),
      });
    return driveAndFollow(db, config, task.root_id, callerQueue("run"), opts);
  });
}
