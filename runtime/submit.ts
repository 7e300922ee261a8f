import type pg from "pg";
import type { KeelConfig } from "../core/config.js";
import { recordGuardrailEvent } from "../observability/audit.js";
import { BlockedRequestError, guardRequest } from "../policy/guard.js";
import type { ScopePolicy } from "../policy/scope.js";
import { submit, type SubmitInput, type TaskRow } from "./task/store.js";

export interface SubmitRequest extends Omit<SubmitInput, "request"> {
  /** The request as the caller gave it: checked here, whatever its type. */
  request: unknown;
}

/**
 * The one way a request becomes a task, for every entry point (`keel run`, `submit`, `batch`, `eval`, the
 * server): size and emptiness, the input guard (injection, scope), a `guardrail_events` row for a blocked
 * request, then the idempotent insert of task, event and job in one transaction. A request that fails a check
 * stores nothing but its guardrail event, and the error says why (InputError, BlockedRequestError).
 */
export async function submitRequest(
  pool: pg.Pool,
  config: KeelConfig,
  scope: ScopePolicy,
  input: SubmitRequest,
): Promise<{ task: TaskRow; created: boolean }> {
  let request: string;
  try {
    request = guardRequest(input.request, { maxChars: config.limits.maxRequestChars, scope });
  } catch (error) {
    if (error instanceof BlockedRequestError) await recordGuardrailEvent(pool, error.event);
    throw error;
  }
  return submit(pool, config, { ...input, request });
}
