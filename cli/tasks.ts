import fs from "node:fs";
import { POLICY_CATALOG } from "../agents/index.js";
import type { KeelConfig } from "../core/config.js";
import { getRelease } from "../runtime/releases/store.js";
import { createLogger } from "../observability/log.js";
import { isTerminal, followTask } from "../runtime/follow.js";
import { decide, listApprovals } from "../runtime/approvals.js";
import { cancelTree, retryTask } from "../runtime/task/cancel.js";
import { describeTask } from "../reports/status.js";
import type { TaskStatus } from "../runtime/task/rules.js";
import { getTask, listTasks } from "../runtime/task/store.js";
import { submitRequest } from "../runtime/submit.js";
import { DEFAULT_QUEUE } from "../runtime/queue.js";
import { GraphRegistry, registerGraphLogger } from "../runtime/registry.js";
import { TaskWorker } from "../runtime/worker.js";
import { loadPolicy } from "../policy/file.js";
import { printJson, reportError, withDatabase } from "./common.js";
import { ago, describeApproval, KEEL } from "./render.js";
import { purgeOlderThan, purgeRequest, type PurgeReport } from "../runtime/purge.js";
import { InputError } from "../core/errors.js";
import { decisionFromFlags } from "./run.js";

/** The options of `keel submit`, as commander parses them. */
export interface SubmitOptions {
  idempotencyKey?: string;
  maxRetries?: number;
  json?: boolean;
  as?: string;
  workflow?: string;
  queue?: string;
  /** A release (NAME, NAME@VERSION or id) to run it on. */
  release?: string;
}

export function submitCommand(config: KeelConfig, request: string, opts: SubmitOptions) {
  return withDatabase(config, opts.json, async (db) => {
    const release = opts.release ? await getRelease(db.pool, opts.release) : undefined;
    const { task, created } = await submitRequest(
      db.pool,
      config,
      // A request on a release is checked against that release's scope.
      release?.spec.policy.scope ?? loadPolicy(config.policyFile, POLICY_CATALOG).scope,
      {
        request,
        releaseId: release?.id,
        idempotencyKey: opts.idempotencyKey,
        maxRetries: opts.maxRetries,
        submittedBy: opts.as,
        workflow: opts.workflow,
        queue: opts.queue,
      },
    );
    if (opts.json) printJson({ task_id: task.id, created, status: task.status, release_id: task.release_id });
    else console.log(task.id);
    if (!created && !opts.json)
      console.error(
        `keel: idempotency key matched task ${task.id} (${task.status}); nothing new was queued.`,
      );
    return 0;
  });
}

/** Runs until SIGTERM or SIGINT: then stops taking work, releases what it holds, and exits 0. */
export function workerCommand(
  config: KeelConfig,
  opts: { concurrency: number; queue?: string[]; config?: string },
) {
  const queues = [...new Set(opts.queue ?? [DEFAULT_QUEUE])];
  // The graphs the Agent Server API's runs use: the langgraph.json named, or the one here if there is one.
  const file = opts.config ?? (fs.existsSync("langgraph.json") ? "langgraph.json" : undefined);
  const graphs = file ? GraphRegistry.open(file) : undefined;
  if (graphs)
    registerGraphLogger(createLogger(config.observability, { level: "info" }).child({ name: "graph" }));
  return withDatabase(config, false, async (db) => {
    const worker = await TaskWorker.start(db, config, {
      concurrency: opts.concurrency,
      queues,
      graphs,
      crons: true,
      onSettled: (id) => console.log(`keel worker: task ${id} settled`),
      logger: createLogger(config.observability, { level: "info" }),
    });
    console.log(
      `keel worker ${worker.id}: started, concurrency ${opts.concurrency}, lease ${config.runtime.leaseSeconds}s, queues ${queues.join(", ")}; ${graphs ? `runs of graphs ${graphs.ids().join(", ")}` : "no langgraph.json, so no Agent Server API runs"}`,
    );
    const stop = () => {
      console.log(`keel worker ${worker.id}: stopping (finishing or releasing running tasks)`);
      void worker.stop();
    };
    process.once("SIGTERM", stop);
    process.once("SIGINT", stop);
    await worker.done;
    console.log(`keel worker ${worker.id}: stopped`);
    return 0;
  });
}

export function statusCommand(config: KeelConfig, taskId: string, opts: { json?: boolean }) {
  return withDatabase(config, opts.json, async (db) => {
    const outcome = await describeTask(db.pool, taskId);
    if (opts.json) {
      printJson(outcome);
      return 0;
    }
    const root = await getTask(db.pool, outcome.task_id);
    console.log(
      `task ${outcome.task_id}: ${outcome.status} (attempt ${outcome.attempts}/${outcome.max_attempts}, created ${ago(root.created_at)}${outcome.release ? `, release ${outcome.release.label}` : ""})`,
    );
    console.log(`  request: ${root.purged_at ? `[purged ${ago(root.purged_at)}]` : (root.request ?? "")}`);
    if (outcome.error) {
      const { code, fault, rule, message } = outcome.error;
      console.log(
        `  error: ${code ?? "?"} (fault: ${fault ?? "?"}${rule ? `, rule ${rule}` : ""})${message ? ` ${message}` : ""}`,
      );
    }
    for (const child of outcome.children) {
      console.log(
        `  ${child.agent_task_id} ${(child.agent ?? "").padEnd(13)} ${child.status}${child.error ? ` (${child.error})` : ""}`,
      );
    }
    for (const p of outcome.pending_approvals)
      describeApproval({ approval_id: p.approval_id, ...p.context }).forEach((l) => console.log(`  ${l}`));
    for (const effect of outcome.effects) {
      const failed = effect.state === "compensation_failed" || effect.state === "failed";
      console.log(
        `  effect ${effect.tool} (${effect.agent}): ${failed ? effect.state.toUpperCase() : effect.state}${effect.error ? ` — ${effect.error}` : ""}`,
      );
    }
    if (outcome.final_answer) console.log(`\n${outcome.final_answer}`);
    return 0;
  });
}

export function listCommand(
  config: KeelConfig,
  opts: { status?: TaskStatus; since?: Date; limit: number; workflow?: string; json?: boolean },
) {
  return withDatabase(config, opts.json, async (db) => {
    const rows = await listTasks(db.pool, opts);
    if (opts.json) {
      printJson(
        rows.map((r) => ({
          task_id: r.id,
          status: r.status,
          attempts: r.attempts,
          created_at: r.created_at,
          request: r.request,
          error_reason: r.error_reason,
          purged_at: r.purged_at,
        })),
      );
      return 0;
    }
    if (rows.length === 0) console.log("no tasks");
    for (const r of rows)
      console.log(
        `${r.id}  ${r.status.padEnd(20)} ${ago(r.created_at).padStart(9)}  ${r.purged_at ? "[purged]" : (r.request ?? "").slice(0, 70)}`,
      );
    return 0;
  });
}

/** Prints every event of a request as it happens, until the request is done, failed or cancelled. */
export function watchCommand(config: KeelConfig, taskId: string, opts: { json?: boolean }) {
  return withDatabase(config, opts.json, async (db) => {
    const task = await getTask(db.pool, taskId);
    const root = await followTask(
      db.pool,
      task.root_id,
      (e) =>
        opts.json
          ? console.log(JSON.stringify(e))
          : console.log(
              `${e.at.toISOString()}  ${(e.agent_task_id ?? "request").padEnd(8)} ${e.from_status ?? "-"} -> ${e.to_status}${e.reason ? `  (${e.reason})` : ""}`,
            ),
      isTerminal,
    );
    return root.status === "done" ? 0 : 1;
  });
}

export function cancelCommand(config: KeelConfig, taskId: string, opts: { json?: boolean }) {
  return withDatabase(config, opts.json, async (db) => {
    const { root, cancelled } = await cancelTree(db.pool, taskId);
    if (opts.json) printJson({ task_id: root.id, status: root.status, cancelled });
    else
      console.log(
        cancelled > 0
          ? `cancelled ${root.id} (${cancelled} task(s) stopped)`
          : `task ${root.id} is already ${root.status}; nothing to cancel`,
      );
    return 0;
  });
}

export function retryCommand(config: KeelConfig, taskId: string, opts: { json?: boolean }) {
  return withDatabase(config, opts.json, async (db) => {
    const task = await retryTask(db.pool, taskId);
    if (opts.json) printJson({ task_id: task.id, status: task.status });
    else console.log(`task ${task.id} queued again; a worker continues it from its last checkpoint`);
    return 0;
  });
}

export function approvalsCommand(config: KeelConfig, opts: { all?: boolean; json?: boolean }) {
  return withDatabase(config, opts.json, async (db) => {
    const rows = await listApprovals(db.pool, opts.all ? "all" : "pending");
    if (opts.json) {
      printJson(rows);
      return 0;
    }
    if (rows.length === 0) console.log(opts.all ? "no approvals" : "no pending approvals");
    for (const a of rows) {
      describeApproval({ approval_id: a.id, ...a.context }).forEach((l) => console.log(l));
      console.log(
        `  status: ${a.status}${a.reviewer ? ` by ${a.reviewer}` : ""} · expires ${a.expires_at.toISOString()} · task ${a.task_id}\n`,
      );
    }
    return 0;
  });
}

export function decideCommand(
  config: KeelConfig,
  approvalId: string,
  opts: {
    approve?: boolean;
    reject?: boolean;
    edit?: string;
    reason?: string;
    reviewer: string;
    confirm?: string;
    json?: boolean;
  },
) {
  let decision;
  try {
    decision = decisionFromFlags(opts);
  } catch (error) {
    return Promise.resolve(reportError(error, opts.json));
  }
  return withDatabase(config, opts.json, async (db) => {
    const row = await decide(db.pool, approvalId, decision, {
      confirm: opts.confirm,
      policy: loadPolicy(config.policyFile, POLICY_CATALOG),
    });
    if (opts.json) printJson(row);
    else if (row.status === "pending") {
      // The edit made the call riskier: it now waits for a second person.
      describeApproval({ approval_id: row.id, ...row.context }).forEach((l) => console.log(l));
    } else
      console.log(
        `approval ${row.id} ${row.status} by ${row.reviewer ?? "?"}; task ${row.task_id} continues when a worker picks it up`,
      );
    return row.status === "pending" ? 3 : 0;
  });
}

/** The options of `keel purge`, as commander parses them. */
export interface PurgeOptions {
  olderThan?: number;
  dryRun?: boolean;
  json?: boolean;
}

/** Erases one finished request's stored content, or every finished request older than `--older-than` days. */
export function purgeCommand(config: KeelConfig, taskId: string | undefined, opts: PurgeOptions) {
  return withDatabase(config, opts.json, async (db) => {
    if ((taskId === undefined) === (opts.olderThan === undefined)) {
      throw new InputError(
        `Say what to purge: ${KEEL} purge <task-id>, or ${KEEL} purge --older-than <days> for every finished request that old (not both).`,
        "invalid_argument",
      );
    }
    const verb = opts.dryRun ? "would purge" : "purged";
    if (taskId !== undefined) {
      const report = await purgeRequest(db.pool, taskId, { dryRun: opts.dryRun });
      if (opts.json) printJson({ dry_run: Boolean(opts.dryRun), ...report });
      else printPurge(verb, report);
      return 0;
    }
    const { purged, skipped } = await purgeOlderThan(db.pool, opts.olderThan!, {
      dryRun: opts.dryRun,
      limit: 10_000,
    });
    if (opts.json) {
      printJson({ dry_run: Boolean(opts.dryRun), older_than_days: opts.olderThan, purged, skipped });
      return 0;
    }
    if (purged.length === 0 && skipped.length === 0)
      console.log(`keel: no finished request older than ${opts.olderThan} day(s) is left to purge`);
    for (const report of purged) printPurge(verb, report);
    for (const s of skipped) console.log(`skipped ${s.task_id}: ${s.reason}`);
    if (purged.length > 1) console.log(`keel: ${verb} ${purged.length} request(s)`);
    return skipped.length > 0 ? 1 : 0;
  });
}

function printPurge(verb: string, r: PurgeReport): void {
  console.log(
    `${verb} ${r.task_id} (${r.status}): ${r.tasks} task(s), ${r.checkpoints} checkpoint(s) and ${r.checkpoint_writes} write(s) deleted; content erased from ${r.approvals} approval(s), ${r.outbox} outbox message(s), ${r.effects} effect(s), ${r.trajectory_steps} trace step(s), ${r.policy_decisions} decision(s), ${r.guardrail_events} guardrail event(s)`,
  );
  if (r.outbox_unsent > 0)
    console.log(`  note: ${r.outbox_unsent} outbox message(s) were still queued, not marked sent by a relay`);
}
