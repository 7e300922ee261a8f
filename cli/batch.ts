import { KEEL } from "./render.js";
import { POLICY_CATALOG } from "../agents/index.js";
import fs from "node:fs/promises";
import cliProgress from "cli-progress";
import type { KeelConfig } from "../core/config.js";
import { createLogger } from "../observability/log.js";
import { InputError } from "../core/errors.js";
import { loadPolicy } from "../policy/file.js";
import { batchTasks, parseBatch, submitBatch, summarize, type BatchSummary } from "../runtime/batch.js";
import { callerQueue, DEFAULT_QUEUE } from "../runtime/queue.js";
import { moveToQueue } from "../runtime/task/store.js";
import { TaskWorker } from "../runtime/worker.js";
import { reportError, withDatabase } from "./common.js";

export interface BatchOptions {
  concurrency: number;
  out?: string;
  workers: boolean;
  json?: boolean;
}

const settled = (status: string) => status !== "queued" && status !== "running";
/** How long --no-workers waits with every task still queued before it says that no worker seems to run. */
const IDLE_WARNING_MS = 10_000;

function summaryLines(s: BatchSummary, seconds: number): string[] {
  const ms = (v: number | null) => (v === null ? "-" : `${(v / 1000).toFixed(2)}s`);
  const reasons = Object.entries(s.failures_by_reason)
    .map(([r, n]) => `${r} ${n}`)
    .join(", ");
  return [
    `batch: ${s.total} requests in ${seconds.toFixed(1)}s — done ${s.done}, failed ${s.failed}, waiting ${s.waiting}, cancelled ${s.cancelled}`,
    `  success rate ${(s.success_rate * 100).toFixed(1)}% · completion p50 ${ms(s.p50_ms)} p95 ${ms(s.p95_ms)}`,
    ...(reasons ? [`  failures by reason: ${reasons}`] : []),
  ];
}

/**
 * Submits every good line of a JSONL file (idempotently: re-running the file redoes nothing that finished), drives
 * them with in-process workers unless --no-workers, shows progress, and ends with a summary.
 */
export async function batchCommand(config: KeelConfig, file: string, opts: BatchOptions): Promise<number> {
  let text: string;
  try {
    text = await fs.readFile(file, "utf8");
  } catch (error) {
    return reportError(
      new InputError(
        `Cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}.`,
      ),
      opts.json,
    );
  }
  const parsed = parseBatch(text);
  for (const e of parsed.errors) console.error(`keel batch: line ${e.line}: ${e.message} (skipped)`);
  if (parsed.lines.length === 0)
    return reportError(new InputError(`${file} has no runnable lines.`), opts.json);
  const scope = loadPolicy(config.policyFile, POLICY_CATALOG).scope;

  return withDatabase(config, opts.json, async (db) => {
    const started = Date.now();
    // With its own workers, the batch runs on a queue of its own (lines of an earlier run of the file are taken
    // over); with --no-workers, on the queue that keel worker processes take work from.
    const queue = opts.workers ? callerQueue("batch") : DEFAULT_QUEUE;
    const { submitted, refused } = await submitBatch(db.pool, config, scope, parsed.lines, queue);
    for (const e of refused) console.error(`keel batch: line ${e.line}: ${e.message} (skipped)`);
    const errors = [...parsed.errors, ...refused].sort((a, b) => a.line - b.line);
    const lines = submitted.map((s) => s.line);
    if (lines.length === 0) throw new InputError(`${file} has no runnable lines.`);
    const ids = submitted.map((s) => s.task.id);
    if (opts.workers) await moveToQueue(db.pool, ids, queue);
    const fresh = submitted.filter((s) => s.created).length;
    const log = (line: string) => (opts.json ? console.error(line) : console.log(line));
    log(`keel batch: ${lines.length} requests (${fresh} new, ${lines.length - fresh} already submitted)`);

    const worker = opts.workers
      ? await TaskWorker.start(db, config, {
          concurrency: opts.concurrency,
          queues: [queue],
          releaseTo: DEFAULT_QUEUE,
          logger: createLogger(config.observability, { level: "warn" }),
        })
      : undefined;
    const tty = Boolean(process.stderr.isTTY) && !opts.json;
    const bar = tty
      ? new cliProgress.SingleBar(
          {
            format:
              "{bar} {value}/{total} | done {done} failed {failed} waiting {waiting} | {rate}/s | ETA {eta}s",
            stream: process.stderr,
          },
          cliProgress.Presets.shades_classic,
        )
      : undefined;
    const controller = new AbortController();
    const onSigint = () => controller.abort();
    process.once("SIGINT", onSigint);
    bar?.start(ids.length, 0, { done: 0, failed: 0, waiting: 0, rate: "0.0" });
    let lastLine = 0;
    let warnedIdle = false;
    let tasks = await batchTasks(db.pool, ids);
    const settledAtStart = tasks.filter((t) => settled(t.status)).length;
    try {
      while (!controller.signal.aborted) {
        tasks = await batchTasks(db.pool, ids);
        const s = summarize(tasks);
        const count = tasks.filter((t) => settled(t.status)).length;
        const rate = (count - settledAtStart) / Math.max(0.001, (Date.now() - started) / 1000);
        bar?.update(count, { done: s.done, failed: s.failed, waiting: s.waiting, rate: rate.toFixed(1) });
        if (!bar && Date.now() - lastLine > 5000) {
          lastLine = Date.now();
          const eta = rate > 0 ? `${Math.round((ids.length - count) / rate)}s` : "-";
          log(
            `keel batch: ${count}/${ids.length} settled — done ${s.done}, failed ${s.failed}, waiting ${s.waiting} · ${rate.toFixed(1)}/s · ETA ${eta}`,
          );
        }
        if (count === ids.length) break;
        // With --no-workers, say so when no worker has started anything: the batch would otherwise wait silently.
        if (
          !worker &&
          !warnedIdle &&
          Date.now() - started > IDLE_WARNING_MS &&
          tasks.every((t) => t.status === "queued")
        ) {
          warnedIdle = true;
          console.error(
            `keel batch: no worker has started any of these ${ids.length} tasks in ${IDLE_WARNING_MS / 1000} s; start one (${KEEL} worker) on the default queue, or run without --no-workers.`,
          );
        }
        await new Promise((r) => setTimeout(r, 300));
      }
    } finally {
      bar?.stop();
      process.removeListener("SIGINT", onSigint);
      await worker?.stop();
      // What is unfinished goes back to the workers' queue; running the file again takes it over again.
      if (worker) await moveToQueue(db.pool, ids, DEFAULT_QUEUE);
    }
    const summary = summarize(tasks);
    if (controller.signal.aborted) {
      log(
        `keel batch: interrupted with ${summary.pending} request(s) unfinished; run the same command again to finish them (finished ones are not redone)`,
      );
    }
    const byId = new Map(tasks.map((t) => [t.id, t]));
    const { rows: approvals } = await db.pool.query<{ id: string; task_id: string }>(
      "select id, task_id from approvals where task_id = any($1) and status = 'pending'",
      [ids],
    );
    // One result per input line: a line that did not run says why (malformed, refused by the submit pipeline).
    const ran = submitted.map(({ line, task }) => {
      const row = byId.get(task.id)!;
      return {
        line: line.line,
        id: line.id ?? null,
        task_id: task.id,
        status: row.status,
        final_answer: row.final_answer,
        error_reason: row.error_reason,
        error: row.last_error,
        approvals: approvals.filter((a) => a.task_id === task.id).map((a) => a.id),
      };
    });
    const idOf = new Map(parsed.lines.map((l) => [l.line, l.id ?? null]));
    const notRun = errors.map((e) => ({
      line: e.line,
      id: idOf.get(e.line) ?? null,
      task_id: null,
      status: parsed.errors.includes(e) ? "malformed" : "refused",
      final_answer: null,
      error_reason: e.reason,
      error: e.message,
      approvals: [] as string[],
    }));
    const results = [...ran, ...notRun].sort((a, b) => a.line - b.line);
    if (opts.out) await fs.writeFile(opts.out, results.map((r) => JSON.stringify(r)).join("\n") + "\n");
    if (opts.json) {
      console.log(JSON.stringify({ summary, malformed_lines: errors, results }, null, 2));
    } else {
      summaryLines(summary, (Date.now() - started) / 1000).forEach((l) => console.log(l));
      for (const r of results.filter((x) => x.status === "waiting_for_approval")) {
        console.log(
          `  waiting: line ${r.line} task ${r.task_id} — ${KEEL} approve ${r.approvals.join(" / ")}`,
        );
      }
      if (opts.out) console.log(`  results: ${opts.out}`);
    }
    if (controller.signal.aborted) return 130;
    if (errors.length > 0) return 2;
    return summary.failed > 0 ? 1 : 0;
  });
}
