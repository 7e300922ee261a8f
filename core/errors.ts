import { FAILURES, type Fault, type FailureReason } from "./failures.js";

export type { Fault, FailureReason } from "./failures.js";

/**
 * Keel's few typed errors. Each names who is at fault, carries its `FailureReason` code (which decides whether a
 * retry can help and which exit code a command ends with) and tells the reader what to do next.
 */
export type KeelErrorCode = FailureReason;

export interface KeelErrorOptions extends ErrorOptions {
  /** Overrides the reason's default in `FAILURES` (e.g. a transient model fault that another try may fix). */
  retryable?: boolean;
}

export class KeelError extends Error {
  readonly code: KeelErrorCode;
  /**
   * Who caused it: the person or script calling Keel, the model's output, Keel/its environment, or a rule of
   * the policy (a guardrail or a budget) that the work ran into.
   */
  readonly fault: Fault;
  /** Whether another attempt of the same work can end differently (as Temporal's non-retryable failures). */
  readonly retryable: boolean;

  constructor(code: KeelErrorCode, fault: Fault, message: string, options?: KeelErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.fault = fault;
    this.retryable = options?.retryable ?? FAILURES[code].retryable;
  }
}

/** The request or a command argument is wrong; fix the input and try again. */
export class InputError extends KeelError {
  constructor(message: string, code: KeelErrorCode = "invalid_request", options?: ErrorOptions) {
    super(code, "user", message, options);
  }
}

/** The planner produced something that cannot be executed (bad schema, unknown agent, cycle, …). */
export class PlanError extends KeelError {
  readonly problems: string[];
  constructor(problems: string[], options?: ErrorOptions) {
    super(
      "invalid_plan",
      "model",
      `The plan was rejected: ${problems.join("; ")}. Nothing was executed; rephrase the request or use a stronger model.`,
      options,
    );
    this.problems = problems;
  }
}

/** A named thing (thread, document, table) does not exist. */
export class NotFoundError extends KeelError {
  constructor(message: string) {
    super("not_found", "user", message);
  }
}

/** Keel's environment failed: database, configuration, model server. */
export class SystemError extends KeelError {
  constructor(code: KeelErrorCode, message: string, options?: ErrorOptions) {
    super(code, "system", message, options);
  }
}

/** Raised by a tool for a call that must be refused; the message goes back to the agent, not to the user. */
export class ToolCallError extends KeelError {
  constructor(message: string, code: KeelErrorCode = "tool_error") {
    super(code, "model", message);
  }
}

/**
 * The model's reply cannot be used: empty, cut off at the token limit, a call to a tool that does not exist,
 * arguments that are not JSON. Names the model; another try may do better.
 */
export class ModelOutputError extends KeelError {
  constructor(
    readonly model: string,
    problem: string,
  ) {
    super("model_error", "model", `The model ${model} ${problem}.`, { retryable: true });
  }
}

/** A tool's output broke its declared output schema; the agent is told, the call counts as a tool error. */
export class OutputContractError extends ToolCallError {}

/**
 * Keel's own parts are wired wrongly (a tool offered to an agent it does not belong to, two tools with one name):
 * found when the graphs are built, before any request runs. A bug to fix in code, never retried.
 */
export class WiringError extends KeelError {
  constructor(message: string) {
    super("internal", "system", message, { retryable: false });
  }
}

/**
 * A guardrail or budget stopped the work. `reason` names the rule (e.g. `injection:instruction_override`,
 * `budget_exceeded:tokens`); retrying the same request cannot help.
 */
export class PolicyError extends KeelError {
  constructor(
    code: "blocked" | "budget_exceeded",
    readonly reason: string,
    message: string,
  ) {
    super(code, "policy", message);
  }
}

/** An outside dependency (the model endpoint, an external tool) kept failing; says which and how often. */
export class DependencyError extends KeelError {
  constructor(
    readonly dependency: string,
    readonly failures: number,
    message: string,
    options?: ErrorOptions,
  ) {
    super("dependency_failed", "system", message, options);
  }
}

export function isKeelError(error: unknown): error is KeelError {
  return error instanceof KeelError;
}

/** The exit code a CLI process ends with for this error: the reason's, 1 for anything unexpected. */
export function exitCodeFor(error: unknown): number {
  return isKeelError(error) ? FAILURES[error.code].exitCode : 1;
}

/** The failure an error stands for, as a task stores it. An error that is not Keel's is `internal`. */
export function failureOf(error: unknown): {
  reason: FailureReason;
  fault: Fault;
  retryable: boolean;
  message: string;
  /** The policy rule that stopped the work (`budget_exceeded:tokens`, `injection:…`), if one did. */
  rule: string | null;
} {
  const message = error instanceof Error ? error.message : String(error);
  if (!isKeelError(error))
    return { reason: "internal", fault: "system", retryable: true, message, rule: null };
  return {
    reason: error.code,
    fault: error.fault,
    retryable: error.retryable,
    message,
    rule: error instanceof PolicyError ? error.reason : null,
  };
}

/**
 * A failure that another try may fix: an HTTP status (429, 5xx) with an optional Retry-After, or a failure a
 * test or an eval injects. The resilience layer reads `status`, `transient` and `retryAfterMs`.
 */
export class TransientError extends KeelError {
  readonly transient = true;
  constructor(
    message: string,
    readonly status?: number,
    readonly retryAfterMs?: number,
    code: KeelErrorCode = "dependency_failed",
  ) {
    super(code, "system", message, { retryable: true });
  }
}

/**
 * A streamed model reply stopped before it finished: the connection dropped, or the server ended the stream
 * without a finish reason. Another try may get the whole reply, so it is retried and counted by the breaker.
 */
export class ModelStreamCutError extends TransientError {
  constructor(
    readonly model: string,
    chunks: number,
    detail?: string,
    options?: ErrorOptions,
  ) {
    super(
      `The model ${model}'s reply stream was cut off mid-reply after ${chunks} chunk${chunks === 1 ? "" : "s"}${detail ? ` (${detail})` : ""}`,
    );
    if (options?.cause !== undefined) this.cause = options.cause;
  }
}

/** An HTTP answer that says the call failed; transient for 408/425/429/5xx (the resilience layer decides). */
export class HttpStatusError extends KeelError {
  constructor(
    message: string,
    readonly status: number,
    readonly headers?: Headers | Record<string, string | undefined>,
  ) {
    super("dependency_failed", "system", message);
  }
}

/** The worker running a task is stopping: the task goes back to the queue without using an attempt. */
export class WorkerStoppingError extends KeelError {
  constructor() {
    super("released", "system", "The worker running this task is stopping; the task was queued again.");
  }
}

/** The request's deadline passed (KEEL_REQUEST_DEADLINE_SECONDS). */
export class DeadlineError extends KeelError {
  constructor() {
    super("timeout", "system", "The request's deadline passed.");
  }
}

/** What a task stores about why it failed. */
export type Failure = ReturnType<typeof failureOf>;

/** A failure Keel names itself (no error object), with the reason's fault and retry rule from `FAILURES`. */
export function namedFailure(reason: FailureReason, message: string, rule: string | null = null): Failure {
  return { reason, fault: FAILURES[reason].fault, retryable: FAILURES[reason].retryable, message, rule };
}
