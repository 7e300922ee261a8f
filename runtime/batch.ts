import { createHash } from "node:crypto";
import type pg from "pg";
import { z } from "zod";
import type { KeelConfig } from "../core/config.js";
import { failureOf, InputError, type FailureReason } from "../core/errors.js";
import { BlockedRequestError } from "../policy/guard.js";
import type { ScopePolicy } from "../policy/scope.js";
import { readTasks, type TaskRow } from "./task/sql.js";
import { submitRequest } from "./submit.js";

/** One line of a batch file. */
export const BatchLine = z.object({
  request: z.string().describe("What to do"),
  id: z.string().min(1).optional().describe("Your id for the line; the idempotency key is derived from it"),
  idempotency_key: z.string().min(1).optional().describe("Explicit idempotency key"),
});
export type BatchLine = z.infer<typeof BatchLine>;

export interface ParsedLine extends BatchLine {
  line: number;
}

export interface LineError {
  line: number;
  message: string;
  /** Why the line did not run: `invalid_request` for a malformed line, else the submit pipeline's reason. */
  reason: FailureReason;
}

/**
 * Reads a batch file into its lines; a line that is not JSON or not a batch line is reported. The requests
 * themselves are checked when they are submitted (`submitBatch`), like any other request.
 */
export function parseBatch(text: string): { lines: ParsedLine[]; errors: LineError[] } {
  const lines: ParsedLine[] = [];
  const errors: LineError[] = [];
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = index + 1;
    if (raw.trim() === "") return;
    let json: unknown;
    try {
      json = JSON.parse(raw);
    } catch (error) {
      errors.push({ line, message: `not JSON (${(error as Error).message})`, reason: "invalid_request" });
      return;
    }
    const parsed = BatchLine.safeParse(json);
    if (!parsed.success) {
      errors.push({
        line,
        message: parsed.error.issues.map((i) => `${i.path.join(".") || "line"}: ${i.message}`).join("; "),
        reason: "invalid_request",
      });
      return;
    }
    lines.push({ ...parsed.data, line });
  });
  return { lines, errors };
}

/** The key that makes a re-run of the same file redo nothing: explicit, or from the line's id, or its content. */
export function batchKey(line: BatchLine): string {
  if (line.idempotency_key) return line.idempotency_key;
  if (line.id) return `batch:id:${line.id}`;
  return `batch:sha256:${createHash("sha256").update(line.request).digest("hex").slice(0, 32)}`;
}

/**
 * Submits each line through the one submit pipeline (size, guard, guardrail event, idempotent insert). A line the
 * guard refuses is reported with its line number, as a malformed one is; the others go on.
 */
export async function submitBatch(
  pool: pg.Pool,
  config: KeelConfig,
  scope: ScopePolicy,
  lines: ParsedLine[],
  queue: string,
) {
  const submitted: { line: ParsedLine; task: TaskRow; created: boolean }[] = [];
  const refused: LineError[] = [];
  for (const line of lines) {
    try {
      const { task, created } = await submitRequest(pool, config, scope, {
        request: line.request,
        idempotencyKey: batchKey(line),
        queue,
      });
      submitted.push({ line, task, created });
    } catch (error) {
      if (!(error instanceof InputError || error instanceof BlockedRequestError)) throw error;
      refused.push({ line: line.line, message: error.message, reason: failureOf(error).reason });
    }
  }
  return { submitted, refused };
}

export interface BatchSummary {
  total: number;
  done: number;
  failed: number;
  waiting: number;
  cancelled: number;
  pending: number;
  success_rate: number;
  p50_ms: number | null;
  p95_ms: number | null;
  failures_by_reason: Record<string, number>;
}

function percentile(sorted: number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

export function summarize(tasks: TaskRow[]): BatchSummary {
  const count = (s: TaskRow["status"]) => tasks.filter((t) => t.status === s).length;
  const durations = tasks
    .filter((t) => t.status === "done" && t.finished_at)
    .map((t) => t.finished_at!.getTime() - t.created_at.getTime())
    .sort((a, b) => a - b);
  const failures: Record<string, number> = {};
  for (const t of tasks.filter((x) => x.status === "failed"))
    failures[t.error_reason ?? "internal"] = (failures[t.error_reason ?? "internal"] ?? 0) + 1;
  const done = count("done");
  const finished = done + count("failed") + count("cancelled");
  return {
    total: tasks.length,
    done,
    failed: count("failed"),
    waiting: count("waiting_for_approval"),
    cancelled: count("cancelled"),
    pending: count("queued") + count("running"),
    success_rate: finished === 0 ? 0 : done / finished,
    p50_ms: percentile(durations, 50),
    p95_ms: percentile(durations, 95),
    failures_by_reason: failures,
  };
}

export async function batchTasks(pool: pg.Pool, ids: string[]): Promise<TaskRow[]> {
  return readTasks(pool, ids);
}
